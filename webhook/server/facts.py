"""Shell: where `/validate` gets what the cluster knows about an object.

The core says what to look up (`cluster.Lookups`: Secrets and their keys, the CA Secret, the
ServiceAccount, the other StatefulSets' selectors); a `FactsProvider` makes those lookups,
answers with `cluster.ClusterFacts` and says whether its caches are synced. Without a cluster (no kubeconfig, not
in a pod) there are no facts and the cluster-backed rules are not checked.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Protocol, cast

from webhook.core.cluster import ClusterFacts, Lookups
from webhook.core.config import Config

# The server's records all carry logger "webhook.server", whichever module writes them.
log = logging.getLogger("webhook.server")


class FactsProvider(Protocol):
    """What the cluster knows (Secrets, ServiceAccounts, other StatefulSets), for /validate."""

    async def facts(
        self, lookups: Lookups, *, namespace: str, timeout: float
    ) -> ClusterFacts | None:
        """The answers to `lookups` in `namespace`, all live reads within `timeout` seconds."""
        ...

    def ready(self) -> bool: ...


FactsFactory = Callable[[Config], Awaitable[FactsProvider]]


class NoClusterFacts:
    """No cluster: the cluster-backed rules are not checked, and we are always ready."""

    async def facts(
        self, lookups: Lookups, *, namespace: str, timeout: float
    ) -> ClusterFacts | None:
        return None

    def ready(self) -> bool:
        return True


async def no_cluster(config: Config) -> FactsProvider:
    return NoClusterFacts()


def cluster_facts_factory(config: Config) -> FactsFactory:
    """`webhook.kube.create_provider` when a cluster is configured (kubeconfig, or running in a
    pod) and that module is installed; otherwise no cluster checks."""
    if not (config.kube.kubeconfig or os.environ.get("KUBERNETES_SERVICE_HOST")):
        return no_cluster
    try:
        kube = importlib.import_module("webhook.kube.caches")
    except ModuleNotFoundError as exc:
        if exc.name != "webhook.kube.caches":
            raise
        kube = None
    create = getattr(kube, "create_provider", None)
    if create is None:
        log.warning("cluster checks are off: webhook.kube.create_provider is not available")
        return no_cluster
    return cast(FactsFactory, create)
