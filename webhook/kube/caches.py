"""Shell: the cluster facts the validation needs, from watch-fed caches (kubernetes-asyncio).

StatefulSets and ServiceAccounts are listed once, then watched; of a ServiceAccount only its
existence is kept. Secrets are watched as metadata only (PartialObjectMetadata: name and
resourceVersion, never data), in the function namespaces (`--function-namespace`) or
cluster-wide when none are given. The key names of a Secret are read (one GET) only when a
function names that Secret, and again only when its resourceVersion changes; of that read only
the key names are kept. A Secret or ServiceAccount missing from the cache gets one live read,
all of a review's reads within one budget of `webhook.kube.timeoutSeconds` and at most
MAX_LIVE_READS of them, so one created a moment before its StatefulSet is never reported
missing, and an API server that does not answer always gives the same facts. The core says
what to look up (`cluster.Lookups`); this module does not read objects itself.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Generic, TypeVar

from kubernetes_asyncio import client, watch

from webhook.core.cluster import ClusterFacts, Lookups, OtherStatefulSet
from webhook.core.config import Config
from webhook.kube.client import KubeError, api_client, call

log = logging.getLogger("pf_webhook.kube")
T = TypeVar("T")
Key = tuple[str, str]


@dataclass
class Reflector(Generic[T]):
    """list, then watch from the list's resourceVersion; relist after errors and 410 Gone.

    The store is indexed by namespace (namespace -> name -> value): a review reads its own
    namespace's entries, never walks every namespace's."""

    name: str
    list_all: Callable[..., Awaitable[Any]]
    transform: Callable[[Any], T]
    synced: asyncio.Event = field(default_factory=asyncio.Event)
    return_type: str | None = None  # for list functions without a generated docstring
    store: dict[str, dict[str, T]] = field(default_factory=dict)

    @staticmethod
    def key(obj: Any) -> Key:
        return (obj.metadata.namespace or "", obj.metadata.name)

    def get(self, namespace: str, name: str) -> T | None:
        return self.store.get(namespace, {}).get(name)

    def put(self, namespace: str, name: str, value: T) -> None:
        self.store.setdefault(namespace, {})[name] = value

    def in_namespace(self, namespace: str) -> Mapping[str, T]:
        return self.store.get(namespace, {})

    def _remove(self, namespace: str, name: str) -> None:
        entries = self.store.get(namespace)
        if entries is not None:
            entries.pop(name, None)
            if not entries:
                del self.store[namespace]

    async def run(self) -> None:
        backoff = 0.5
        while True:
            try:
                listed = await self.list_all()
                store: dict[str, dict[str, T]] = {}
                for item in listed.items or []:
                    namespace, name = self.key(item)
                    store.setdefault(namespace, {})[name] = self.transform(item)
                self.store = store
                version = listed.metadata.resource_version
                self.synced.set()
                backoff = 0.5
                while True:
                    stream = watch.Watch(return_type=self.return_type)
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
            self.put(*self.key(obj), self.transform(obj))
        elif kind == "DELETED" and obj is not None:
            self._remove(*self.key(obj))


METADATA_LIST: Final = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
METADATA_WATCH: Final = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
MAX_KEY_CACHE: Final = 10_000
# live reads one review may cause (its cache misses); beyond them, "could not check"
MAX_LIVE_READS: Final = 256


def secret_metadata_lister(api: client.ApiClient, namespace: str) -> Callable[..., Awaitable[Any]]:
    """list/watch Secrets as PartialObjectMetadata: the API server sends no data, so Secret
    values never reach this process. `namespace` "" lists all namespaces. Only JSON metadata
    is accepted: a server that cannot send it fails the request (406) rather than sending
    whole Secrets."""
    path = f"/api/v1/namespaces/{namespace}/secrets" if namespace else "/api/v1/secrets"

    async def list_metadata(**kwargs: Any) -> Any:
        is_watch = bool(kwargs.get("watch"))
        names = {
            "watch": "watch",
            "resource_version": "resourceVersion",
            "timeout_seconds": "timeoutSeconds",
            "allow_watch_bookmarks": "allowWatchBookmarks",
        }
        query = [(names[k], v) for k, v in kwargs.items() if k in names and v is not None]
        response = await api.call_api(
            path,
            "GET",
            path_params={},
            query_params=query,
            header_params={"Accept": METADATA_WATCH if is_watch else METADATA_LIST},
            response_types_map={200: "V1SecretList" if is_watch else "object"},
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
            _preload_content=kwargs.get("_preload_content", True),
            _request_timeout=kwargs.get("_request_timeout"),
        )
        if is_watch:
            return response  # the raw stream; the Watch decodes each event
        return _metadata_list(response)

    return list_metadata


def _metadata_list(body: Any) -> client.V1SecretList:
    """A PartialObjectMetadataList as a V1SecretList of metadata (the generated model refuses
    the empty list the API server sends as `items: null`)."""
    body = body if isinstance(body, dict) else {}
    items = []
    for item in body.get("items") or []:
        meta = item.get("metadata") or {} if isinstance(item, dict) else {}
        items.append(
            client.V1Secret(
                metadata=client.V1ObjectMeta(
                    name=meta.get("name"),
                    namespace=meta.get("namespace"),
                    resource_version=meta.get("resourceVersion"),
                )
            )
        )
    version = (body.get("metadata") or {}).get("resourceVersion")
    return client.V1SecretList(items=items, metadata=client.V1ListMeta(resource_version=version))


async def _read_or_none(
    read: Callable[[str, str], Awaitable[Any]], kind: str, namespace: str, name: str
) -> Any | None:
    """One live read: the object, None when it does not exist, `KubeError` for any other
    failure (the API server's words stay out: the text reaches the object's author)."""
    try:
        return await call(
            read(name, namespace), what=f"reading {kind} {namespace}/{name}", quote_server=False
        )
    except KubeError as exc:
        if exc.status == 404:
            return None
        raise


def resource_version(obj: Any) -> str:
    return str(obj.metadata.resource_version or "")


def secret_keys(secret: Any) -> frozenset[str]:
    """The key names of a Secret; the values are never kept."""
    return frozenset((secret.data or {}).keys()) | frozenset((secret.string_data or {}).keys())


def exists(_: Any) -> bool:
    """Of a ServiceAccount only its existence is kept."""
    return True


def statefulset_summary(sts: Any) -> OtherStatefulSet:
    selector = (sts.spec.selector.match_labels if sts.spec and sts.spec.selector else None) or {}
    template = (
        sts.spec.template.metadata.labels
        if sts.spec and sts.spec.template and sts.spec.template.metadata
        else None
    )
    return OtherStatefulSet(
        name=sts.metadata.name, selector=dict(selector), template_labels=dict(template or {})
    )


class ClusterCaches:
    """The FactsProvider the server uses when a cluster is configured: watch-fed caches, and
    live reads for what they miss."""

    def __init__(
        self, api: client.ApiClient, *, timeout: float, namespaces: tuple[str, ...] = ()
    ) -> None:
        self._api = api
        self._core = client.CoreV1Api(api)
        self._apps = client.AppsV1Api(api)
        self._timeout = timeout
        # Secret metadata (resourceVersion) per watched namespace; "" = all namespaces
        self.namespaces = tuple(sorted(set(namespaces)))
        self.secret_meta: dict[str, Reflector[str]] = {
            ns: Reflector(
                f"secrets {ns}" if ns else "secrets",
                secret_metadata_lister(api, ns),
                resource_version,
                return_type="V1Secret",
            )
            for ns in self.namespaces or ("",)
        }
        # key names of the Secrets a function named, with the resourceVersion they were read at
        self.secret_keys: dict[Key, tuple[str, frozenset[str]]] = {}
        self.statefulsets: Reflector[OtherStatefulSet] = Reflector(
            "statefulsets", self._apps.list_stateful_set_for_all_namespaces, statefulset_summary
        )
        self.service_accounts: Reflector[bool] = Reflector(
            "serviceaccounts", self._core.list_service_account_for_all_namespaces, exists
        )
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        reflectors: list[Reflector[Any]] = [
            *self.secret_meta.values(),
            self.statefulsets,
            self.service_accounts,
        ]
        self._tasks = [asyncio.create_task(r.run(), name=f"watch-{r.name}") for r in reflectors]

    def ready(self) -> bool:
        return (
            self.statefulsets.synced.is_set()
            and self.service_accounts.synced.is_set()
            and all(r.synced.is_set() for r in self.secret_meta.values())
        )

    def _watched(self, namespace: str) -> Reflector[str] | None:
        return self.secret_meta.get(namespace) or self.secret_meta.get("")

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._api.close()

    async def _live_secret(self, namespace: str, name: str) -> frozenset[str] | None:
        secret = await _read_or_none(self._core.read_namespaced_secret, "Secret", namespace, name)
        if secret is None:
            return None
        keys = secret_keys(secret)
        if len(self.secret_keys) >= MAX_KEY_CACHE:
            self.secret_keys.clear()
        self.secret_keys[(namespace, name)] = (resource_version(secret), keys)
        return keys

    async def _live_service_account(self, namespace: str, name: str) -> bool:
        read = self._core.read_namespaced_service_account
        if await _read_or_none(read, "ServiceAccount", namespace, name) is None:
            return False
        self.service_accounts.put(namespace, name, True)
        return True

    async def facts(self, lookups: Lookups, *, namespace: str, timeout: float) -> ClusterFacts:
        """What the caches know, plus live reads for cache misses, all within one `Budget`."""
        budget = Budget(timeout)
        found: dict[str, frozenset[str] | None] = {}
        not_watched = None
        watched = self._watched(namespace)
        names = lookups.secrets
        if watched is None and names:
            not_watched = (
                f"namespace {namespace} is not a function namespace of this webhook "
                "(--function-namespace): its Secrets cannot be checked"
            )
            names = ()
        for name in names:
            assert watched is not None
            version = watched.get(namespace, name)
            cached = self.secret_keys.get((namespace, name))
            if version is not None and cached is not None and cached[0] == version:
                found[name] = cached[1]
                continue
            # a miss: the Secret may be seconds old, or absent; ask once, within the budget
            done, keys = await budget.read(
                f"Secret {namespace}/{name}", functools.partial(self._live_secret, namespace, name)
            )
            if done:
                found[name] = keys
        accounts: dict[str, bool] = {}
        for account in lookups.service_accounts:
            if self.service_accounts.get(namespace, account):
                accounts[account] = True
                continue
            done, there = await budget.read(
                f"ServiceAccount {namespace}/{account}",
                functools.partial(self._live_service_account, namespace, account),
            )
            if done:
                accounts[account] = bool(there)
        unavailable = budget.failed or not_watched
        others = None
        if lookups.statefulsets and self.statefulsets.synced.is_set():
            others = tuple(self.statefulsets.in_namespace(namespace).values())
        elif lookups.statefulsets:
            unavailable = unavailable or "StatefulSet cache not synced yet"
        return ClusterFacts(
            secrets=found, statefulsets=others, unavailable=unavailable, service_accounts=accounts
        )


class Budget:
    """One review's live reads share one deadline (`webhook.kube.timeoutSeconds` from the
    start of the review's lookups) and are at most `reads` (MAX_LIVE_READS); after one fails,
    or past the cap, no other is made. So an API server that does not answer always gives the
    same facts, and the same decision, and no object can make one review read without end."""

    def __init__(self, seconds: float, reads: int = MAX_LIVE_READS) -> None:
        self.deadline = asyncio.get_running_loop().time() + seconds
        self.late = f"API server did not answer within {seconds:g}s"
        self.failed: str | None = None
        self.left = reads
        self.cap = reads

    async def read(self, what: str, read: Callable[[], Awaitable[T]]) -> tuple[bool, T | None]:
        """(True, result) of `read()`, or (False, None) with `failed` saying why."""
        if self.failed is not None:
            return False, None
        if self.left <= 0:
            self.failed = f"more than {self.cap} cluster reads for one object; not read"
            return False, None
        self.left -= 1
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


async def create_provider(config: Config, kubeconfig: str | None = None) -> ClusterCaches | None:
    """Start the caches for the configured cluster, or None when no cluster is configured."""
    api = await api_client(kubeconfig or config.kube.kubeconfig)
    if api is None:
        return None
    provider = ClusterCaches(
        api, timeout=config.kube.timeout_seconds, namespaces=config.kube.function_namespaces
    )
    provider.start()
    return provider
