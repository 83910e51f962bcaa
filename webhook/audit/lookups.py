"""Shell: the cluster facts ``/validate`` uses, read for ``audit cluster`` with the auditor's
own credentials, so the audit's policy findings are the webhook's whole decision.

The lookups are the webhook's (``policy.needed_secrets``, ``policy.named_service_account``,
the other StatefulSets of the namespace) and the answer is the same ``cluster.ClusterFacts``;
only the reads differ. Of a Secret only its key names are kept: its values are dropped as soon
as it is read, never printed or logged. Each Secret and ServiceAccount is read once per scan.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webhook.audit import documents
from webhook.core import cluster, policy
from webhook.core.config import Config
from webhook.kube.client import KubeError, call


def statefulset_summary(obj: Mapping[str, Any]) -> cluster.OtherStatefulSet:
    """A plain-dict StatefulSet as the selector-collision check sees it."""
    spec = obj.get("spec") or {}
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    template = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    return cluster.OtherStatefulSet(
        name=str((obj.get("metadata") or {}).get("name") or ""),
        selector={str(k): str(v) for k, v in selector.items()},
        template_labels={str(k): str(v) for k, v in template.items()},
    )


class AuditLookups:
    """Secret key names and ServiceAccount existence, read as the auditor, once each."""

    def __init__(self, api: Any, host: str) -> None:
        from kubernetes_asyncio import client

        self._core = client.CoreV1Api(api)
        self._host = host
        # (namespace, name) -> key names, None = no such Secret, or the reason it was not read
        self._secrets: dict[tuple[str, str], frozenset[str] | KubeError | None] = {}
        self._accounts: dict[tuple[str, str], bool | KubeError] = {}

    async def _secret_keys(self, namespace: str, name: str) -> frozenset[str] | KubeError | None:
        if (namespace, name) not in self._secrets:
            try:
                secret: Any = await call(
                    self._core.read_namespaced_secret(
                        name, namespace, _request_timeout=documents.HTTP_TIMEOUT
                    ),
                    what=f"reading Secret {namespace}/{name}",
                    host=self._host,
                )
                keys: frozenset[str] | KubeError | None = frozenset(
                    (secret.data or {}).keys()
                ) | frozenset((secret.string_data or {}).keys())
                secret = None  # the values go no further
            except KubeError as exc:
                keys = None if exc.status == 404 else exc
            self._secrets[(namespace, name)] = keys
        return self._secrets[(namespace, name)]

    async def _account(self, namespace: str, name: str) -> bool | KubeError:
        if (namespace, name) not in self._accounts:
            try:
                await call(
                    self._core.read_namespaced_service_account(
                        name, namespace, _request_timeout=documents.HTTP_TIMEOUT
                    ),
                    what=f"reading ServiceAccount {namespace}/{name}",
                    host=self._host,
                )
                there: bool | KubeError = True
            except KubeError as exc:
                there = False if exc.status == 404 else exc
            self._accounts[(namespace, name)] = there
        return self._accounts[(namespace, name)]

    async def facts(
        self,
        obj: Mapping[str, Any],
        *,
        namespace: str,
        config: Config,
        others: tuple[cluster.OtherStatefulSet, ...],
    ) -> cluster.ClusterFacts:
        """What ``/validate`` would be told about ``obj``; a read that failed (forbidden,
        unreachable) leaves its name out, so the rule says it could not check, and why."""
        refs, cas = policy.needed_secrets(obj, config)
        unavailable: str | None = None
        found: dict[str, frozenset[str] | None] = {}
        for name in sorted(refs | cas):
            keys = await self._secret_keys(namespace, name)
            if isinstance(keys, KubeError):
                unavailable = unavailable or str(keys)
            else:
                found[name] = keys
        accounts: dict[str, bool] = {}
        account = policy.named_service_account(obj)
        if account is not None:
            there = await self._account(namespace, account)
            if isinstance(there, KubeError):
                unavailable = unavailable or str(there)
            else:
                accounts[account] = there
        return cluster.ClusterFacts(
            secrets=found, statefulsets=others, unavailable=unavailable, service_accounts=accounts
        )
