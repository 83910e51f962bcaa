"""Shell: `pf-webhook serve`. The HTTPS listener and the ops listener, the handlers that answer
/mutate and /validate through the core, the server's shared state and long-lived resources
(review thread, facts provider, certificate and config reloads, self-managed certificates),
and its telemetry (JSON logs, Prometheus metrics)."""
