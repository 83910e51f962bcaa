"""Shell: ``audit cluster``: every function workload in a cluster, as Pulsar sees its identity.

``scan_cluster`` pages through the StatefulSets (one namespace or all) and keeps the function
workloads; ``summarize_workload`` turns each into a ``FunctionRow`` (token audience and
expiration, service account, Pulsar role, CA Secret, policy findings) with the pure core;
``cluster_report`` adds the roles shared by several functions and the tokens without audience.
Lists are bounded by ``limit``; what is left out is counted, never silently dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from webhook import audit_api, mutation, policy, tokens, workload
from webhook.audit_text import show
from webhook.config import Config

LIST_PAGE = 500


@dataclass(frozen=True)
class FunctionRow:
    """One function workload as ``audit cluster`` reports it."""

    namespace: str
    name: str
    tenant: str | None
    pulsar_namespace: str | None
    function: str | None
    tokens: tuple[tokens.Projection, ...]
    service_account: str
    role: str
    ca_secrets: tuple[str, ...]
    findings: tuple[dict[str, str], ...]

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def audience(self) -> str | None:
        auds = [t.audience for t in self.tokens if t.audience]
        return ",".join(dict.fromkeys(auds)) or None

    @property
    def expiration(self) -> int | None:
        values = [t.expiration_seconds for t in self.tokens if t.expiration_seconds is not None]
        return min(values) if values else None

    @property
    def denied(self) -> bool:
        return any(f["action"] == "deny" for f in self.findings)

    @property
    def fqfn(self) -> str:
        parts = (self.tenant, self.pulsar_namespace, self.function)
        return "/".join(p or "?" for p in parts) if any(parts) else "-"

    def as_json(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "name": self.name,
            "function": {
                "tenant": self.tenant,
                "namespace": self.pulsar_namespace,
                "name": self.function,
            },
            "audience": self.audience,
            "expirationSeconds": self.expiration,
            "tokens": [
                {
                    "volume": t.volume,
                    "audience": t.audience,
                    "expirationSeconds": t.expiration_seconds,
                }
                for t in self.tokens
            ],
            "serviceAccount": self.service_account,
            "role": self.role,
            "caSecrets": list(self.ca_secrets),
            "allowed": not self.denied,
            "findings": list(self.findings),
        }


def _worker_ca_secrets(pod: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The worker's own layout: a `ca-cert` Secret volume (beside the token, both at /etc/auth)."""
    found = []
    for volume in pod.get("volumes") or []:
        secret = volume.get("secret") if isinstance(volume, Mapping) else None
        if volume.get("name") == tokens.WORKER_CA_VOLUME and isinstance(secret, Mapping):
            for item in secret.get("items") or [{"key": tokens.CA_KEY, "path": tokens.CA_KEY}]:
                if isinstance(item, Mapping) and item.get("path") == tokens.CA_KEY:
                    found.append((str(secret.get("secretName")), str(item.get("key"))))
    return found


def summarize_workload(obj: dict[str, Any], config: Config) -> FunctionRow:
    """One function workload (a plain-dict StatefulSet) as a report row."""
    metadata = obj.get("metadata") or {}
    namespace = str(metadata.get("namespace") or "default")
    pod = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    labels = workload.object_labels(obj)
    tenant, pns, fname = (labels.get(k) for k in ("tenant", "namespace", "name"))
    try:
        details, _ = workload.read_details(obj, workload.function_container_index(obj))
    except (workload.WorkloadError, KeyError, IndexError, TypeError, AttributeError):
        details = None
    if details is not None:
        tenant, pns, fname = (
            details.tenant or tenant,
            details.namespace or pns,
            details.name or fname,
        )
    account = str(pod.get("serviceAccountName") or pod.get("serviceAccount") or "default")
    try:
        role = mutation.pulsar_role(obj, namespace)
    except (KeyError, TypeError, AttributeError):
        role = f"system:serviceaccount:{namespace}:{account}"
    cas = [*tokens.ca_secrets(pod), *_worker_ca_secrets(pod)]
    result = policy.validate(obj, config, namespace=namespace)
    findings: list[dict[str, str]] = []
    if result.refusal:
        findings.append({"rule": "object", "action": "deny", "path": "", "message": result.refusal})
    findings.extend(
        {"rule": d.rule, "action": d.action, "path": d.path, "message": d.message}
        for d in result.decisions
    )
    return FunctionRow(
        namespace=namespace,
        name=str(metadata.get("name") or "?"),
        tenant=str(tenant) if tenant is not None else None,
        pulsar_namespace=str(pns) if pns is not None else None,
        function=str(fname) if fname is not None else None,
        tokens=tuple(tokens.projections(pod)),
        service_account=account,
        role=role,
        ca_secrets=tuple(dict.fromkeys(f"{name}/{key}" for name, key in cas)),
        findings=tuple(findings),
    )


def cluster_report(
    rows: Sequence[FunctionRow], *, scanned: int, limit: int, scope: str
) -> dict[str, Any]:
    """The JSON document of ``audit cluster``: rows (at most ``limit``) and a summary of all."""
    ordered = sorted(rows, key=lambda r: (r.namespace, r.name))
    by_role: dict[str, list[str]] = {}
    for row in ordered:
        by_role.setdefault(row.role, []).append(row.key)
    shared = sorted(
        ((role, keys) for role, keys in by_role.items() if len(keys) > 1),
        key=lambda item: (-len(item[1]), item[0]),
    )
    with_token = [r for r in ordered if r.tokens]
    without_audience = [r.key for r in with_token if any(t.audience is None for t in r.tokens)]
    denied = [r for r in ordered if r.denied]
    return {
        "scope": scope,
        "functions": [r.as_json() for r in ordered[:limit]],
        "leftOut": max(0, len(ordered) - limit),
        "sharedRoles": [
            {
                "role": role,
                "count": len(keys),
                "functions": keys[:limit],
                "leftOut": max(0, len(keys) - limit),
            }
            for role, keys in shared[:limit]
        ],
        "sharedRolesLeftOut": max(0, len(shared) - limit),
        "withoutAudience": without_audience[:limit],
        "withoutAudienceLeftOut": max(0, len(without_audience) - limit),
        "counts": {
            "statefulSets": scanned,
            "functions": len(ordered),
            "withToken": len(with_token),
            "withoutToken": len(ordered) - len(with_token),
            "withoutAudience": len(without_audience),
            "denied": len(denied),
            "withFindings": sum(1 for r in ordered if r.findings),
            "sharedRoles": len(shared),
        },
        "allowed": not denied,
    }


_COLUMNS = (  # title, widest a cell may be (longer values end in "~"; JSON has them whole)
    ("NAMESPACE", 63),
    ("NAME", 52),
    ("FUNCTION", 60),
    ("AUDIENCE", 30),
    ("EXPIRY", 10),
    ("SERVICE ACCOUNT", 40),
    ("ROLE", 100),
    ("CA SECRET", 40),
    ("FINDINGS", 0),
)


def _cell(value: str, width: int) -> str:
    value = show(value)
    if len(value) > width > 0:
        value = value[: width - 1] + "~"
    return value


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    """Aligned columns: each as wide as its widest cell, up to the column's cap."""
    cells = [
        [_cell(c, cap) for c, (_, cap) in zip(row, _COLUMNS, strict=True)]
        for row in [[title for title, _ in _COLUMNS], *rows]
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(_COLUMNS))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]


def render_cluster_text(report: Mapping[str, Any], *, limit: int) -> str:
    """The report as a table, the findings, shared roles, tokens without audience and a summary."""
    rows: list[tuple[str, ...]] = []
    finding_lines: list[str] = []
    for fn in report["functions"]:
        details = fn["function"]
        fqfn = (
            "/".join(str(details[k] or "?") for k in ("tenant", "namespace", "name"))
            if any(details.values())
            else "-"
        )
        counts: dict[str, int] = {}
        for f in fn["findings"]:
            counts[f["action"]] = counts.get(f["action"], 0) + 1
        summary = ", ".join(f"{n} {a}" for a, n in sorted(counts.items())) or "none"
        expiry = fn["expirationSeconds"]
        rows.append(
            (
                fn["namespace"],
                fn["name"],
                fqfn,
                fn["audience"] or ("(none)" if fn["tokens"] else "-"),
                str(expiry) if expiry is not None else "-",
                fn["serviceAccount"],
                fn["role"],
                ",".join(fn["caSecrets"]) or "-",
                summary,
            )
        )
        for f in fn["findings"]:
            path = f" {f['path']}:" if f["path"] else ":"
            finding_lines.append(
                f"{fn['namespace']}/{fn['name']}: {f['action'].upper()} [{f['rule']}]{path} "
                f"{show(f['message'])}"
            )
    lines = _table(rows)
    if not report["functions"]:
        lines.append(f"(no function workloads in {report['scope']})")
    if report["leftOut"]:
        lines.append(f"... {report['leftOut']} more functions left out (raise --limit)")
    if finding_lines:
        lines.append("")
        lines.append("findings:")
        lines.extend(f"  {line}" for line in finding_lines[:limit])
        if len(finding_lines) > limit:
            lines.append(f"  ... {len(finding_lines) - limit} more findings left out")
    lines.append("")
    if report["sharedRoles"]:
        lines.append("roles shared by several functions (they share Pulsar permissions):")
        for entry in report["sharedRoles"]:
            names = ", ".join(entry["functions"])
            more = f", ... {entry['leftOut']} more" if entry["leftOut"] else ""
            lines.append(f"  {entry['role']}  {entry['count']} functions: {names}{more}")
        if report["sharedRolesLeftOut"]:
            lines.append(f"  ... {report['sharedRolesLeftOut']} more shared roles left out")
    else:
        lines.append("roles shared by several functions: none")
    if report["withoutAudience"]:
        more = report["withoutAudienceLeftOut"]
        lines.append(
            "functions whose token has no audience: "
            + ", ".join(report["withoutAudience"])
            + (f", ... {more} more" if more else "")
        )
    else:
        lines.append("functions whose token has no audience: none")
    c = report["counts"]
    lines.append(
        f"summary: {c['statefulSets']} StatefulSets in {report['scope']}, {c['functions']} "
        f"functions ({c['withToken']} with a token, {c['withoutAudience']} without audience), "
        f"{c['withFindings']} with findings, {c['denied']} denied, "
        f"{c['sharedRoles']} shared roles"
    )
    return "\n".join(lines) + "\n"


async def scan_cluster(
    kubeconfig: str | None, namespace: str | None, config: Config
) -> tuple[list[FunctionRow], int]:
    """(one row per function workload, number of StatefulSets listed), paging through the list."""
    from kubernetes_asyncio import client

    api = await audit_api.client(kubeconfig)
    rows: list[FunctionRow] = []
    scanned = 0
    async with api:
        host = str(getattr(api.configuration, "host", "?"))
        apps = client.AppsV1Api(api)
        what = f"listing StatefulSets in {namespace}" if namespace else "listing StatefulSets"
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"limit": LIST_PAGE, "_request_timeout": 30}
            if token:
                kwargs["_continue"] = token
            if namespace:
                page = await audit_api.call(
                    apps.list_namespaced_stateful_set(namespace, **kwargs), what=what, host=host
                )
            else:
                page = await audit_api.call(
                    apps.list_stateful_set_for_all_namespaces(**kwargs), what=what, host=host
                )
            for item in page.items or []:
                scanned += 1
                obj = api.sanitize_for_serialization(item)
                if not isinstance(obj, dict):
                    continue
                obj.setdefault("apiVersion", "apps/v1")  # list items come without them
                obj.setdefault("kind", "StatefulSet")
                if workload.is_function_workload(obj):
                    rows.append(summarize_workload(obj, config))
            token = getattr(page.metadata, "_continue", None) if page.metadata else None
            if not token:
                break
    return rows, scanned
