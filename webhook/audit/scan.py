"""Shell: ``audit cluster``'s reads: function StatefulSets and their pods, the ``pf-secret-*``
tokens they mount, and (with ``--broker-config``) the broker's answer for each function.

Lists are read page by page and only what the report needs is kept of each page. A stored token
is read with the auditor's own credentials, decoded, and dropped: only its claims go further.
The cluster's issuer and key algorithms, read as the auditor, stand in for what the broker's
own API server announces.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from webhook.audit import broker, documents, jwt_parse
from webhook.audit.cluster import (
    DEFAULT_WARN_DAYS,
    FunctionRow,
    PodRow,
    StoredToken,
    is_function_pod,
    match_pod,
    stored_token,
    summarize_pod,
    summarize_workload,
)
from webhook.audit.lookups import AuditLookups, statefulset_summary
from webhook.core import broker_config, cluster, workload
from webhook.core.config import Config
from webhook.kube.client import KubeError, call, connect, host_of

LIST_PAGE = 500


@dataclass
class Scan:
    """What ``scan_cluster`` read: one row per function, and what was listed."""

    rows: list[FunctionRow]
    scanned: int
    pods_scanned: int = 0
    orphan_pods: list[str] = field(default_factory=list)


async def _pages(
    api: Any, host: str, kind: str, namespace: str | None
) -> AsyncIterator[list[dict[str, Any]]]:
    """Every object of ``kind`` (StatefulSet or Pod), one page at a time, as plain dicts: the
    caller keeps what it needs of a page, so memory stays bounded by the page size."""
    from kubernetes_asyncio import client

    by_ns: Any
    everywhere: Any
    if kind == "StatefulSet":
        apps = client.AppsV1Api(api)
        by_ns, everywhere = (
            apps.list_namespaced_stateful_set,
            apps.list_stateful_set_for_all_namespaces,
        )
        api_version = "apps/v1"
    else:
        core = client.CoreV1Api(api)
        by_ns, everywhere = core.list_namespaced_pod, core.list_pod_for_all_namespaces
        api_version = "v1"
    what = f"listing {kind}s in {namespace}" if namespace else f"listing {kind}s"
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"limit": LIST_PAGE, "_request_timeout": 30}
        if token:
            kwargs["_continue"] = token
        request = by_ns(namespace, **kwargs) if namespace else everywhere(**kwargs)
        page = await call(request, what=what, host=host)
        found: list[dict[str, Any]] = []
        for item in page.items or []:
            obj = api.sanitize_for_serialization(item)
            if isinstance(obj, dict):
                obj.setdefault("apiVersion", api_version)  # list items come without them
                obj.setdefault("kind", kind)
                found.append(obj)
        yield found
        token = getattr(page.metadata, "_continue", None) if page.metadata else None
        if not token:
            return


async def _read_stored_token(
    api: Any, host: str, namespace: str, name: str, *, now: float, warn_days: int
) -> StoredToken:
    """The claims of the token in Secret ``name``, read with the auditor's credentials; the
    token itself is decoded and dropped here, never kept, printed or logged."""
    import base64
    import binascii

    from kubernetes_asyncio import client

    from webhook.audit.errors import AuditError

    core = client.CoreV1Api(api)
    try:
        secret: Any = await call(
            core.read_namespaced_secret(name, namespace, _request_timeout=documents.HTTP_TIMEOUT),
            what=f"reading Secret {namespace}/{name}",
            host=host,
        )
    except KubeError as exc:
        status = "missing" if exc.status == 404 else "unreadable"
        return StoredToken(namespace, name, status, problem=str(exc))
    encoded = (secret.data or {}).get("token")
    secret = None  # the values go no further
    if not encoded:
        return StoredToken(namespace, name, "no-token", problem="the Secret has no key 'token'")
    try:
        claims = dict(
            jwt_parse.parse_token(base64.b64decode(encoded, validate=True).decode("utf-8")).claims
        )
    except (binascii.Error, ValueError, AuditError):
        return StoredToken(namespace, name, "not-a-jwt", problem="key 'token' is not a JWT")
    finally:
        del encoded
    return stored_token(namespace, name, claims, now=now, warn_days=warn_days)


async def _api_server(api: Any, host: str) -> tuple[broker.ApiServer, list[str]]:
    """The cluster's issuer and key algorithms, read as the auditor, standing in for what the
    broker's own API server announces."""
    from webhook.audit.errors import AuditError

    try:
        doc, keyset = await documents.issuer_documents(api, host)
    except (AuditError, KubeError):
        return broker.ApiServer(host=host, issuer=None), []
    issuer = doc.get("issuer") if isinstance(doc.get("issuer"), str) else None
    listed = keyset.get("keys")
    algs = [
        str(k["alg"])
        for k in (listed if isinstance(listed, list) else [])
        if isinstance(k, Mapping) and "alg" in k
    ]
    return broker.ApiServer(host=host, issuer=issuer), list(dict.fromkeys(algs))


def broker_answer(
    row: FunctionRow,
    settings: broker_config.BrokerSettings,
    api: broker.ApiServer,
    algorithms: Sequence[str],
    *,
    now: float,
) -> dict[str, Any]:
    """The broker's answer for ``row``: its stored token's claims, or the claims its projected
    token would carry (the cluster's issuer, the configured audience, the service account)."""
    if row.uses_token_secret:
        readable = [t for t in row.stored if t.claims]
        if not readable:
            return broker.Verdict(
                accepted=False,
                undetermined=True,
                code="UNKNOWN",
                reason="the function's pf-secret-* token could not be read",
            ).as_json()
        verdict = broker.claims_verdict(readable[0].claims, settings, api=api, now=now)
        verdict.notes.append(
            "a pf-secret-* token is the submitter's; a broker may also accept it through "
            "AuthenticationProviderToken (static JWT), which these settings do not describe"
        )
        return verdict.as_json()
    if not row.tokens:
        return broker.Verdict(
            accepted=False,
            code="ERROR_DECODING_JWT",
            reason="the function has no token (no projected service-account token, no "
            "pf-secret-* Secret)",
        ).as_json()
    if api.issuer is None:
        return broker.Verdict(
            accepted=False,
            undetermined=True,
            code="UNKNOWN",
            reason="the cluster's issuer could not be read (/.well-known/openid-configuration)",
        ).as_json()
    projection = row.tokens[0]
    seconds = projection.expiration_seconds or 3600
    claims = {
        "iss": api.issuer,
        # no audience: the API server's default (its --api-audiences, by default the issuer)
        "aud": [projection.audience or api.issuer],
        "sub": row.role,
        "iat": int(now),
        "nbf": int(now),
        "exp": int(now) + seconds,
    }
    verdict = broker.claims_verdict(claims, settings, api=api, now=now, algorithms=algorithms)
    for pod in row.pods:
        if pod.role != row.role:
            verdict.notes.append(f"pod {pod.name} runs as {pod.role}: the broker sees that role")
    if projection.audience is None:
        verdict.notes.append(
            "no audience configured: the token gets the API server's default audience, assumed "
            "to be the issuer"
        )
    return verdict.as_json()


async def scan_cluster(
    kubeconfig: str | None,
    namespace: str | None,
    config: Config,
    *,
    warn_days: int = DEFAULT_WARN_DAYS,
    settings: broker_config.BrokerSettings | None = None,
    now: float | None = None,
) -> Scan:
    """Function StatefulSets and their pods, the pf-secret tokens they mount (claims only), and
    with the broker's ``settings`` its answer for each function."""
    now = time.time() if now is None else now
    api = await connect(kubeconfig)
    async with api:
        host = host_of(api)
        # the selector-collision check needs every StatefulSet of a namespace: a first pass
        # keeps only their names and labels, the second runs the policy on each function
        others: dict[str, list[cluster.OtherStatefulSet]] = {}
        async for page in _pages(api, host, "StatefulSet", namespace):
            for obj in page:
                ns = str((obj.get("metadata") or {}).get("namespace") or "default")
                others.setdefault(ns, []).append(statefulset_summary(obj))
        lookups = AuditLookups(api, host)
        rows: list[FunctionRow] = []
        scanned = 0
        async for page in _pages(api, host, "StatefulSet", namespace):
            scanned += len(page)
            for obj in page:
                if not workload.is_function_workload(obj):
                    continue
                ns = str((obj.get("metadata") or {}).get("namespace") or "default")
                facts = await lookups.facts(
                    obj, namespace=ns, config=config, others=tuple(others.get(ns, ()))
                )
                rows.append(summarize_workload(obj, config, facts))
        in_namespace: dict[str, list[FunctionRow]] = {}
        for row in rows:
            in_namespace.setdefault(row.namespace, []).append(row)
        by_row: dict[str, list[PodRow]] = {}
        orphans: list[str] = []
        pods_scanned = 0
        async for page in _pages(api, host, "Pod", namespace):
            pods_scanned += len(page)
            for pod_obj in page:
                ns = str((pod_obj.get("metadata") or {}).get("namespace"))
                owner = match_pod(pod_obj, in_namespace.get(ns, []))
                if owner is not None:
                    by_row.setdefault(owner.key, []).append(summarize_pod(pod_obj, owner))
                elif is_function_pod(pod_obj):
                    meta = pod_obj.get("metadata") or {}
                    orphans.append(f"{meta.get('namespace')}/{meta.get('name')}")
        wanted = sorted(
            {
                (r.namespace, name)
                for r in rows
                for name in (
                    *r.token_secrets,
                    *(n for p in by_row.get(r.key, []) for n in p.token_secrets),
                )
            }
        )
        stored = {
            (ns, name): await _read_stored_token(api, host, ns, name, now=now, warn_days=warn_days)
            for ns, name in wanted
        }
        server, algorithms = await _api_server(api, host) if settings is not None else (None, [])
    finished = []
    for row in rows:
        pods_of = tuple(sorted(by_row.get(row.key, []), key=lambda p: p.name))
        names = dict.fromkeys([*row.token_secrets, *(n for p in pods_of for n in p.token_secrets)])
        row = replace(row, pods=pods_of, stored=tuple(stored[(row.namespace, n)] for n in names))
        if settings is not None and server is not None:
            row = replace(row, broker=broker_answer(row, settings, server, algorithms, now=now))
        finished.append(row)
    return Scan(finished, scanned, pods_scanned, sorted(orphans))
