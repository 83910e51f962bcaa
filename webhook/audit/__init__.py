"""Shell: `pf-webhook audit token|cluster`: which JWT audiences and Pulsar roles functions
really get, read from tokens, the API server and the broker's settings."""
