"""Shell: the cluster. One kubeconfig policy and one API-error mapper for every command
(`client`), and the watch-fed caches that answer the validation's lookups (`caches`)."""
