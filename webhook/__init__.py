"""pf-webhook: a Kubernetes admission webhook for Apache Pulsar Functions StatefulSets.

The pure core (config, workload, command, naming, secrets, tokens, customizer, quantity,
policy, mutation, patch, review) maps plain data to plain data and does no I/O; the shell
(server with handlers, resources, facts, wire, logs; audit with its audit_* modules; kube,
certs, cli) gathers facts and talks to the world. pyproject.toml's import-linter contracts
hold the layers.
"""

__version__ = "0.1.0"
