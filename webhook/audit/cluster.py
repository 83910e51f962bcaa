"""Shell: ``audit cluster``'s report: every function workload, as Pulsar sees its identity.

``summarize_workload`` turns a function StatefulSet into a ``FunctionRow`` (token audience and
expiration, service account, Pulsar role, CA Secret, policy findings, the topics it uses) with
the pure core; ``summarize_pod`` compares a pod's real identity with its template;
``stored_token`` grades a ``pf-secret-*`` token's expiry. ``cluster_report`` adds the roles
shared by several functions, the stored tokens by status, the pods that differ and, on request,
the grants per role; ``render_cluster_text`` prints it. The cluster is read by ``webhook.audit.scan``.
Lists are bounded by ``limit``; what is left out is counted, never silently dropped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from webhook.core import grants, mutation, policy, tokens, workload
from webhook.core.cluster import ClusterFacts
from webhook.core.config import Config
from webhook.core.errors import printable

TOKEN_SECRET_PREFIX = "pf-secret-"
DEFAULT_WARN_DAYS = 14


@dataclass(frozen=True)
class StoredToken:
    """What a ``pf-secret-*`` Secret's token says (KubernetesSecretsTokenAuthProvider): the
    decoded claims only; the token itself is dropped as soon as it is decoded."""

    namespace: str
    secret: str
    status: str  # ok, expiring, expired, never-expires, missing, unreadable, no-token, not-a-jwt
    subject: str | None = None
    issuer: str | None = None
    audiences: tuple[str, ...] = ()
    expires: int | None = None
    problem: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.secret}"

    def as_json(self) -> dict[str, Any]:
        return {
            "secret": self.secret,
            "status": self.status,
            "subject": self.subject,
            "issuer": self.issuer,
            "audiences": list(self.audiences),
            "expires": _iso(self.expires),
            "problem": self.problem,
        }


def _iso(seconds: int | None) -> str | None:
    if seconds is None:
        return None
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
    except (OverflowError, OSError, ValueError):
        return None


def stored_token(
    namespace: str, secret: str, claims: Mapping[str, Any], *, now: float, warn_days: int
) -> StoredToken:
    """The status of a stored token from its claims: expired, expiring within ``warn_days``,
    never expiring (no ``exp``), or ok."""
    exp = claims.get("exp")
    expires = None
    if isinstance(exp, int | float) and not isinstance(exp, bool) and math.isfinite(exp):
        expires = int(exp)
    if expires is None:
        status = "never-expires"
    elif expires <= now:
        status = "expired"
    elif expires - now <= warn_days * 86400:
        status = "expiring"
    else:
        status = "ok"
    aud = claims.get("aud")
    auds = (
        [aud]
        if isinstance(aud, str)
        else [a for a in aud if isinstance(a, str)]
        if isinstance(aud, list)
        else []
    )
    sub, iss = claims.get("sub"), claims.get("iss")
    return StoredToken(
        namespace=namespace,
        secret=secret,
        status=status,
        subject=sub if isinstance(sub, str) else None,
        issuer=iss if isinstance(iss, str) else None,
        audiences=tuple(auds),
        expires=expires,
        claims=dict(claims),
    )


@dataclass(frozen=True)
class PodRow:
    """A pod of a function: the identity it really runs with, which an edit of the pod (or a
    template changed since) may have made differ from the StatefulSet's template."""

    name: str
    service_account: str
    role: str
    tokens: tuple[tokens.Projection, ...]
    token_secrets: tuple[str, ...]
    differs: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "serviceAccount": self.service_account,
            "role": self.role,
            "tokens": [
                {
                    "volume": t.volume,
                    "audience": t.audience,
                    "expirationSeconds": t.expiration_seconds,
                }
                for t in self.tokens
            ],
            "tokenSecrets": list(self.token_secrets),
            "differsFromTemplate": list(self.differs),
        }


def _account(pod: Mapping[str, Any]) -> str:
    return str(pod.get("serviceAccountName") or pod.get("serviceAccount") or "default")


def token_secret_names(pod: Mapping[str, Any]) -> tuple[str, ...]:
    """``pf-secret-*`` Secrets mounted as volumes (the worker's token-Secret layout)."""
    found = []
    for volume in pod.get("volumes") or []:
        secret = volume.get("secret") if isinstance(volume, Mapping) else None
        name = secret.get("secretName") if isinstance(secret, Mapping) else None
        if isinstance(name, str) and name.startswith(TOKEN_SECRET_PREFIX):
            found.append(name)
    return tuple(dict.fromkeys(found))


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
    selector: Mapping[str, str] = field(default_factory=dict, repr=False)
    needs: grants.Needs | None = None
    token_secrets: tuple[str, ...] = ()
    pods: tuple[PodRow, ...] = ()
    stored: tuple[StoredToken, ...] = ()
    broker: Mapping[str, Any] | None = None

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

    @property
    def uses_token_secret(self) -> bool:
        return bool(self.token_secrets) or any(p.token_secrets for p in self.pods)

    @property
    def pulsar_roles(self) -> tuple[str, ...]:
        """The roles the broker sees: the stored token's subject for a token-Secret function,
        else the service accounts of the template and of the pods."""
        if self.uses_token_secret:
            subjects = [t.subject for t in self.stored if t.subject]
            return tuple(dict.fromkeys(subjects)) or ("(unknown: stored token unreadable)",)
        return tuple(dict.fromkeys([self.role, *(p.role for p in self.pods)]))

    def as_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
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
            "pulsarRoles": list(self.pulsar_roles),
            "caSecrets": list(self.ca_secrets),
            "tokenSecrets": [t.as_json() for t in self.stored],
            "pods": [p.as_json() for p in self.pods],
            "allowed": not self.denied,
            "findings": list(self.findings),
        }
        if self.needs is not None:
            doc["topics"] = {
                "consume": list(self.needs.consume),
                "patterns": list(self.needs.patterns),
                "produce": list(self.needs.produce),
                "subscription": self.needs.subscription,
            }
        if self.broker is not None:
            doc["broker"] = dict(self.broker)
        return doc


def _projection_text(found: Sequence[tokens.Projection]) -> str:
    return (
        ", ".join(f"{t.audience or '(default)'}/{t.expiration_seconds}s" for t in found) or "none"
    )


def summarize_pod(pod_obj: Mapping[str, Any], row: FunctionRow) -> PodRow:
    """A pod of ``row``'s function, compared with the template."""
    spec = pod_obj.get("spec") or {}
    account = _account(spec)
    found = tuple(tokens.projections(spec))
    secrets = token_secret_names(spec)
    differs = []
    if account != row.service_account:
        differs.append(f"service account {account} (template: {row.service_account})")
    mine, template = _projection_text(found), _projection_text(row.tokens)
    if mine != template:
        differs.append(f"token projection {mine} (template: {template})")
    if secrets != row.token_secrets:
        differs.append(
            f"token Secret {', '.join(secrets) or 'none'} (template: {', '.join(row.token_secrets) or 'none'})"
        )
    metadata = pod_obj.get("metadata") or {}
    return PodRow(
        name=str(metadata.get("name") or "?"),
        service_account=account,
        role=f"system:serviceaccount:{row.namespace}:{account}",
        tokens=found,
        token_secrets=secrets,
        differs=tuple(differs),
    )


def owner_statefulset(pod_obj: Mapping[str, Any]) -> str | None:
    for ref in (pod_obj.get("metadata") or {}).get("ownerReferences") or []:
        if isinstance(ref, Mapping) and ref.get("kind") == "StatefulSet":
            name = ref.get("name")
            return str(name) if name else None
    return None


def match_pod(pod_obj: Mapping[str, Any], rows: Sequence[FunctionRow]) -> FunctionRow | None:
    """The function whose StatefulSet owns the pod, or whose selector selects its labels."""
    metadata = pod_obj.get("metadata") or {}
    namespace = metadata.get("namespace")
    owner = owner_statefulset(pod_obj)
    labels = metadata.get("labels") or {}
    candidates = [r for r in rows if r.namespace == namespace]
    if owner is not None:
        return next((r for r in candidates if r.name == owner), None)
    for row in candidates:
        if row.selector and all(labels.get(k) == v for k, v in row.selector.items()):
            return row
    return None


def is_function_pod(pod_obj: Mapping[str, Any]) -> bool:
    labels = (pod_obj.get("metadata") or {}).get("labels") or {}
    return labels.get("component") in workload.COMPONENTS and all(
        k in labels for k in ("tenant", "namespace", "name")
    )


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


def summarize_workload(
    obj: dict[str, Any], config: Config, facts: ClusterFacts | None = None
) -> FunctionRow:
    """One function workload (a plain-dict StatefulSet) as a report row; with ``facts`` (what
    the cluster says) its findings are the whole policy's, the cluster-backed rules included."""
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
    account = _account(pod)
    try:
        role = mutation.pulsar_role(obj, namespace)
    except (KeyError, TypeError, AttributeError):
        role = f"system:serviceaccount:{namespace}:{account}"
    cas = [*tokens.ca_secrets(pod), *_worker_ca_secrets(pod)]
    result = policy.validate(obj, config, facts=facts, namespace=namespace)
    findings: list[dict[str, str]] = []
    if result.refusal:
        findings.append({"rule": "object", "action": "deny", "path": "", "message": result.refusal})
    findings.extend(
        {"rule": d.rule, "action": d.action, "path": d.path, "message": d.message}
        for d in result.decisions
    )
    selector = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    document = grants.details_document(obj)
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
        selector={str(k): str(v) for k, v in selector.items()}
        if isinstance(selector, Mapping)
        else {},
        needs=grants.needs(document) if document is not None else None,
        token_secrets=token_secret_names(pod),
    )


def _bounded(items: Sequence[Any], limit: int) -> tuple[list[Any], int]:
    return list(items[:limit]), max(0, len(items) - limit)


def cluster_report(
    rows: Sequence[FunctionRow],
    *,
    scanned: int,
    limit: int,
    scope: str,
    with_grants: bool = False,
    orphan_pods: Sequence[str] = (),
    pods_scanned: int = 0,
    warn_days: int = DEFAULT_WARN_DAYS,
    broker: str | None = None,
) -> dict[str, Any]:
    """The JSON document of ``audit cluster``: rows (at most ``limit``) and a summary of all."""
    ordered = sorted(rows, key=lambda r: (r.namespace, r.name))
    by_role: dict[str, list[str]] = {}
    for row in ordered:
        for role in row.pulsar_roles:
            by_role.setdefault(role, []).append(row.key)
    shared = sorted(
        ((role, keys) for role, keys in by_role.items() if len(keys) > 1),
        key=lambda item: (-len(item[1]), item[0]),
    )
    with_token = [r for r in ordered if r.tokens]
    without_audience = [r.key for r in with_token if any(t.audience is None for t in r.tokens)]
    denied = [r for r in ordered if r.denied]
    stored = [(r.key, t) for r in ordered for t in r.stored]
    by_status: dict[str, list[str]] = {}
    for key, t in stored:
        by_status.setdefault(t.status, []).append(f"{key} ({t.secret})")
    differing = [f"{r.namespace}/{p.name}: {d}" for r in ordered for p in r.pods for d in p.differs]
    refused = [r for r in ordered if r.broker is not None and not r.broker.get("accepted")]
    functions, left_out = _bounded(ordered, limit)
    report: dict[str, Any] = {
        "scope": scope,
        "functions": [r.as_json() for r in functions],
        "leftOut": left_out,
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
        "podsDifferingFromTemplate": differing[:limit],
        "podsDifferingLeftOut": max(0, len(differing) - limit),
        "podsWithoutStatefulSet": list(orphan_pods[:limit]),
        "tokenSecrets": {
            "warnDays": warn_days,
            **{status: keys[:limit] for status, keys in sorted(by_status.items())},
        },
        "counts": {
            "statefulSets": scanned,
            "pods": pods_scanned,
            "functions": len(ordered),
            "withToken": len(with_token),
            "withoutToken": len(ordered) - len(with_token),
            "withoutAudience": len(without_audience),
            "withTokenSecret": sum(1 for r in ordered if r.uses_token_secret),
            "tokenSecretsExpired": len(by_status.get("expired", [])),
            "tokenSecretsExpiring": len(by_status.get("expiring", [])),
            "tokenSecretsNeverExpiring": len(by_status.get("never-expires", [])),
            "podsDiffering": len(differing),
            "podsWithoutStatefulSet": len(orphan_pods),
            "denied": len(denied),
            "withFindings": sum(1 for r in ordered if r.findings),
            "sharedRoles": len(shared),
            "brokerRefused": len(refused),
        },
        "allowed": not denied,
        "ok": not denied and not by_status.get("expired") and not refused,
    }
    if broker is not None:
        report["brokerConfig"] = broker
    if with_grants:
        needs_by_role: dict[str, list[grants.Needs]] = {}
        for row in ordered:
            if row.needs is None:
                continue
            for role in row.pulsar_roles:
                needs_by_role.setdefault(role, []).append(row.needs)
        granted = [grants.commands(role, found) for role, found in sorted(needs_by_role.items())]
        report["grants"] = [g.as_json() for g in granted[:limit]]
        report["grantsLeftOut"] = max(0, len(granted) - limit)
    return report


_COLUMNS = (  # title, widest a cell may be (longer values end in "~"; JSON has them whole)
    ("NAMESPACE", 63),
    ("NAME", 52),
    ("FUNCTION", 60),
    ("AUDIENCE", 30),
    ("EXPIRY", 10),
    ("SERVICE ACCOUNT", 40),
    ("ROLE", 100),
    ("CA SECRET", 40),
    ("PODS", 12),
    ("TOKEN SECRET", 40),
    ("BROKER", 40),
    ("FINDINGS", 0),
)


def _cell(value: str, width: int) -> str:
    value = printable(value)
    if len(value) > width > 0:
        value = value[: width - 1] + "~"
    return value


def _table(rows: Sequence[Sequence[str]], columns: Sequence[tuple[str, int]]) -> list[str]:
    """Aligned columns: each as wide as its widest cell, up to the column's cap."""
    cells = [
        [_cell(c, cap) for c, (_, cap) in zip(row, columns, strict=True)]
        for row in [[title for title, _ in columns], *rows]
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]


def _broker_cell(fn: Mapping[str, Any]) -> str:
    verdict = fn.get("broker")
    if verdict is None:
        return "-"
    if verdict["accepted"]:
        return "accepted"
    if verdict.get("undetermined"):
        return "undetermined"
    return f"REFUSED {verdict['code']}"


def _secret_cell(fn: Mapping[str, Any]) -> str:
    stored = fn["tokenSecrets"]
    if not stored:
        return "-"
    return ",".join(f"{t['secret']} {t['status']}" for t in stored)


def _pods_cell(fn: Mapping[str, Any]) -> str:
    pods = fn["pods"]
    differing = sum(1 for p in pods if p["differsFromTemplate"])
    return f"{len(pods)}" + (f" ({differing} differ)" if differing else "")


def render_cluster_text(report: Mapping[str, Any], *, limit: int) -> str:
    """The report as a table, the findings, pods, stored tokens, broker answers, shared roles,
    grants, tokens without audience and a summary."""
    columns = [c for c in _COLUMNS if c[0] != "BROKER" or "brokerConfig" in report]
    rows: list[list[str]] = []
    finding_lines: list[str] = []
    broker_lines: list[str] = []
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
        cells = {
            "NAMESPACE": fn["namespace"],
            "NAME": fn["name"],
            "FUNCTION": fqfn,
            "AUDIENCE": fn["audience"] or ("(none)" if fn["tokens"] else "-"),
            "EXPIRY": str(expiry) if expiry is not None else "-",
            "SERVICE ACCOUNT": fn["serviceAccount"],
            "ROLE": ",".join(fn["pulsarRoles"]),
            "CA SECRET": ",".join(fn["caSecrets"]) or "-",
            "PODS": _pods_cell(fn),
            "TOKEN SECRET": _secret_cell(fn),
            "BROKER": _broker_cell(fn),
            "FINDINGS": summary,
        }
        rows.append([cells[title] for title, _ in columns])
        for f in fn["findings"]:
            path = f" {f['path']}:" if f["path"] else ":"
            finding_lines.append(
                f"{fn['namespace']}/{fn['name']}: {f['action'].upper()} [{f['rule']}]{path} "
                f"{printable(f['message'])}"
            )
        verdict = fn.get("broker")
        if verdict is not None:
            broker_lines.append(f"{fn['namespace']}/{fn['name']}: {printable(verdict['line'])}")
    lines = _table(rows, columns)
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
    if report["podsDifferingFromTemplate"] or report["podsWithoutStatefulSet"]:
        lines.append("")
        lines.append("pods:")
        lines.extend(f"  {printable(d)}" for d in report["podsDifferingFromTemplate"])
        if report["podsDifferingLeftOut"]:
            lines.append(f"  ... {report['podsDifferingLeftOut']} more left out")
        lines.extend(
            f"  {printable(p)}: function pod without a function StatefulSet"
            for p in report["podsWithoutStatefulSet"]
        )
    stored_lines = [
        f"  {fn['namespace']}/{fn['name']}: {t['secret']}: {t['status']}"
        + (f" (expires {t['expires']})" if t["expires"] else "")
        + (f", subject {printable(t['subject'])}" if t["subject"] else "")
        + (f", issuer {printable(t['issuer'])}" if t["issuer"] else "")
        + (f": {printable(t['problem'])}" if t["problem"] else "")
        for fn in report["functions"]
        for t in fn["tokenSecrets"]
    ]
    if stored_lines:
        lines.append("")
        lines.append(
            "tokens stored in pf-secret-* Secrets (the submitter's; replaced only when the "
            f"function is updated; expiring = within {report['tokenSecrets']['warnDays']} days):"
        )
        lines.extend(stored_lines)
    if broker_lines:
        lines.append("")
        lines.append(f"broker ({printable(report['brokerConfig'])}):")
        lines.extend(f"  {line}" for line in broker_lines)
    lines.append("")
    if report["sharedRoles"]:
        lines.append("roles shared by several functions (they share Pulsar permissions):")
        for entry in report["sharedRoles"]:
            names = ", ".join(entry["functions"])
            more = f", ... {entry['leftOut']} more" if entry["leftOut"] else ""
            lines.append(f"  {printable(entry['role'])}  {entry['count']} functions: {names}{more}")
        if report["sharedRolesLeftOut"]:
            lines.append(f"  ... {report['sharedRolesLeftOut']} more shared roles left out")
    else:
        lines.append("roles shared by several functions: none")
    if "grants" in report:
        lines.append("")
        lines.append("grants (exactly what each role's functions need):")
        for entry in report["grants"]:
            flag = f"  [SHARED by {len(entry['functions'])} functions]" if entry["shared"] else ""
            names = printable(", ".join(entry["functions"]))  # tenant/namespace/name: the author's
            lines.append(f"  # role {printable(entry['role'])}: {names}{flag}")
            lines.extend(f"  {printable(c)}" for c in entry["commands"])
            lines.extend(f"  # note: {printable(n)}" for n in entry["notes"])
        if report["grantsLeftOut"]:
            lines.append(f"  ... {report['grantsLeftOut']} more roles left out")
        lines.append("")
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
        f"summary: {c['statefulSets']} StatefulSets and {c['pods']} pods in {report['scope']}, "
        f"{c['functions']} functions ({c['withToken']} with a token, {c['withoutAudience']} "
        f"without audience, {c['withTokenSecret']} with a pf-secret token: "
        f"{c['tokenSecretsExpired']} expired, {c['tokenSecretsExpiring']} expiring, "
        f"{c['tokenSecretsNeverExpiring']} never expiring), "
        f"{c['withFindings']} with findings, {c['denied']} denied, "
        f"{c['sharedRoles']} shared roles, {c['podsDiffering']} pod differences"
        + (f", {c['brokerRefused']} not accepted by the broker" if "brokerConfig" in report else "")
    )
    return "\n".join(lines) + "\n"
