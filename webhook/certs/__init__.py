"""Shell: certificates. Issuing and reading PKI files (`certs generate`), putting the CA into
the webhook configurations (`certs inject`), the self-managed certificate Secret's layout, and
the pure schedule of when each certificate is renewed (`rotation`)."""
