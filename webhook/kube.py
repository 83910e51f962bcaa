"""Shell: the cluster facts the validation needs, from watch-fed caches (kubernetes-asyncio).

Secrets, StatefulSets and ServiceAccounts are listed once, then watched. A Secret or
ServiceAccount missing from the cache gets one live read, all of a review's reads within one
budget of `webhook.kube.timeoutSeconds`, so one created a moment before its StatefulSet is never
reported missing, and an API server that does not answer always gives the same facts. Of a
ServiceAccount only its existence is kept. Of a Secret only its key names are kept: values are
dropped as soon as an event is decoded.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

from webhook import kubeclient, policy
from webhook.config import Config

log = logging.getLogger("pf_webhook.kube")
T = TypeVar("T")
Key = tuple[str, str]


class KubeError(RuntimeError):
    """The cluster could not be reached or configured; one line."""


@dataclass
class Reflector(Generic[T]):
    """list, then watch from the list's resourceVersion; relist after errors and 410 Gone."""

    name: str
    list_all: Callable[..., Awaitable[Any]]
    transform: Callable[[Any], T]
    store: dict[Key, T]
    synced: asyncio.Event

    @staticmethod
    def key(obj: Any) -> Key:
        return (obj.metadata.namespace or "", obj.metadata.name)

    async def run(self) -> None:
        backoff = 0.5
        while True:
            try:
                listed = await self.list_all()
                self.store.clear()
                self.store.update({self.key(o): self.transform(o) for o in listed.items or []})
                version = listed.metadata.resource_version
                self.synced.set()
                backoff = 0.5
                while True:
                    stream = watch.Watch()
                    async with stream:
                        async for event in stream.stream(
                            self.list_all,
                            resource_version=version,
                            timeout_seconds=240,
                            allow_watch_bookmarks=True,
                        ):
                            self._apply(event)
                    version = stream.resource_version or version
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "%s watch failed (%s); relisting in %.1fs",
                    self.name,
                    type(exc).__name__,
                    backoff,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)

    def _apply(self, event: Mapping[str, Any]) -> None:
        kind, obj = event.get("type"), event.get("object")
        if kind in ("ADDED", "MODIFIED") and obj is not None:
            self.store[self.key(obj)] = self.transform(obj)
        elif kind == "DELETED" and obj is not None:
            self.store.pop(self.key(obj), None)


def secret_keys(secret: Any) -> frozenset[str]:
    """The key names of a Secret; the values are never kept."""
    return frozenset((secret.data or {}).keys()) | frozenset((secret.string_data or {}).keys())


def exists(_: Any) -> bool:
    """Of a ServiceAccount only its existence is kept."""
    return True


def statefulset_summary(sts: Any) -> policy.OtherStatefulSet:
    selector = (sts.spec.selector.match_labels if sts.spec and sts.spec.selector else None) or {}
    template = (
        sts.spec.template.metadata.labels
        if sts.spec and sts.spec.template and sts.spec.template.metadata
        else None
    )
    return policy.OtherStatefulSet(
        name=sts.metadata.name, selector=dict(selector), template_labels=dict(template or {})
    )


class ClusterFacts:
    """The FactsProvider the server uses when a cluster is configured."""

    def __init__(self, api: client.ApiClient, *, timeout: float) -> None:
        self._api = api
        self._core = client.CoreV1Api(api)
        self._apps = client.AppsV1Api(api)
        self._timeout = timeout
        self.secrets: Reflector[frozenset[str]] = Reflector(
            "secrets", self._core.list_secret_for_all_namespaces, secret_keys, {}, asyncio.Event()
        )
        self.statefulsets: Reflector[policy.OtherStatefulSet] = Reflector(
            "statefulsets",
            self._apps.list_stateful_set_for_all_namespaces,
            statefulset_summary,
            {},
            asyncio.Event(),
        )
        self.service_accounts: Reflector[bool] = Reflector(
            "serviceaccounts",
            self._core.list_service_account_for_all_namespaces,
            exists,
            {},
            asyncio.Event(),
        )
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(r.run(), name=f"watch-{r.name}")
            for r in (self.secrets, self.statefulsets, self.service_accounts)
        ]

    def ready(self) -> bool:
        return (
            self.secrets.synced.is_set()
            and self.statefulsets.synced.is_set()
            and self.service_accounts.synced.is_set()
        )

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._api.close()

    async def _live_secret(self, namespace: str, name: str) -> frozenset[str] | None:
        try:
            secret = await self._core.read_namespaced_secret(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise KubeError(
                f"reading Secret {namespace}/{name}: HTTP {exc.status} {exc.reason}"
            ) from None
        keys = secret_keys(secret)
        self.secrets.store[(namespace, name)] = keys
        return keys

    async def _live_service_account(self, namespace: str, name: str) -> bool:
        try:
            await self._core.read_namespaced_service_account(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise KubeError(
                f"reading ServiceAccount {namespace}/{name}: HTTP {exc.status} {exc.reason}"
            ) from None
        self.service_accounts.store[(namespace, name)] = True
        return True

    async def facts(self, obj: Any, *, namespace: str, config: Config) -> policy.ClusterFacts:
        """What the caches know, plus live reads for cache misses, all within one `Budget`."""
        refs, cas = policy.needed_secrets(obj, config)
        budget = Budget(config.kube.timeout_seconds)
        found: dict[str, frozenset[str] | None] = {}
        for name in sorted(refs | cas):
            cached = self.secrets.store.get((namespace, name))
            if cached is not None:
                found[name] = cached
                continue
            # a miss: the Secret may be seconds old, or absent; ask once, within the budget
            done, keys = await budget.read(
                f"Secret {namespace}/{name}", functools.partial(self._live_secret, namespace, name)
            )
            if done:
                found[name] = keys
        accounts: dict[str, bool] = {}
        account = policy.named_service_account(obj)
        if account is not None:
            if (namespace, account) in self.service_accounts.store:
                accounts[account] = True
            else:
                done, there = await budget.read(
                    f"ServiceAccount {namespace}/{account}",
                    functools.partial(self._live_service_account, namespace, account),
                )
                if done:
                    accounts[account] = bool(there)
        unavailable = budget.failed
        others = None
        if self.statefulsets.synced.is_set():
            others = tuple(s for (ns, _), s in self.statefulsets.store.items() if ns == namespace)
        else:
            unavailable = unavailable or "StatefulSet cache not synced yet"
        return policy.ClusterFacts(
            secrets=found, statefulsets=others, unavailable=unavailable, service_accounts=accounts
        )


class Budget:
    """One review's live reads share one deadline (`webhook.kube.timeoutSeconds` from the
    start of the review's lookups); after one fails, no other is made. So an API server that
    does not answer always gives the same facts, and the same decision."""

    def __init__(self, seconds: float) -> None:
        self.deadline = asyncio.get_running_loop().time() + seconds
        self.late = f"API server did not answer within {seconds:g}s"
        self.failed: str | None = None

    async def read(self, what: str, read: Callable[[], Awaitable[T]]) -> tuple[bool, T | None]:
        """(True, result) of `read()`, or (False, None) with `failed` saying why."""
        if self.failed is not None:
            return False, None
        try:
            async with asyncio.timeout_at(self.deadline):
                return True, await read()
        except TimeoutError:
            self.failed = self.late
        except KubeError as exc:
            self.failed = str(exc)
        except Exception as exc:  # the client's own errors: connection refused, reset, ...
            self.failed = f"reading {what}: {type(exc).__name__}"
        return False, None


async def api_client(kubeconfig: str | None) -> client.ApiClient | None:
    """A client for the configured cluster: a kubeconfig file, else in-cluster, else None."""
    try:
        return await kubeclient.api_client(kubeconfig)
    except kubeclient.KubeClientError as exc:
        raise KubeError(str(exc)) from None


async def create_provider(config: Config, kubeconfig: str | None = None) -> ClusterFacts | None:
    """Start the caches for the configured cluster, or None when no cluster is configured."""
    api = await api_client(kubeconfig or config.kube.kubeconfig)
    if api is None:
        return None
    provider = ClusterFacts(api, timeout=config.kube.timeout_seconds)
    provider.start()
    return provider
