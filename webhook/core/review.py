"""Pure: AdmissionReview admission.k8s.io/v1 in, AdmissionReview out.

`parse` reads a review once into a frozen `Review` (the object detected, analysed and its
command line parsed, once); `lookups` says what `/validate` needs from the cluster; `respond`
answers. Two error channels, kept apart: a request we cannot read raises ReviewError (the
server turns it into an HTTP 4xx); an object we refuse is `response.allowed=false` with a
message.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, TypedDict

from webhook.core import bounded, mutation, patch, policy, selector
from webhook.core.analysis import Subject, classify
from webhook.core.cluster import ClusterFacts, Lookups
from webhook.core.config import Config
from webhook.core.errors import UserError

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"
MAX_WARNING = 120
MAX_WARNINGS = 50
MAX_MESSAGE = 4000  # a denial's status message; the API server shows it to the client
# parsing a body: deep enough for any configured maxJsonDepth, shallow enough for the stack
ENVELOPE_LIMITS = bounded.Limits(max_json_depth=500, max_number_digits=1000)
Mode = Literal["mutate", "validate"]
Operation = Literal["CREATE", "UPDATE", "DELETE", "CONNECT"]


class GroupVersionKind(TypedDict):
    group: str
    version: str
    kind: str


class AdmissionRequest(TypedDict, total=False):
    uid: str
    kind: GroupVersionKind
    name: str
    namespace: str
    operation: Operation
    object: Any
    oldObject: Any
    dryRun: bool


class Status(TypedDict, total=False):
    code: int
    message: str
    reason: str


class AdmissionResponse(TypedDict, total=False):
    uid: str
    allowed: bool
    status: Status
    patch: str
    patchType: Literal["JSONPatch"]
    warnings: list[str]
    auditAnnotations: dict[str, str]


class AdmissionReview(TypedDict, total=False):
    apiVersion: Literal["admission.k8s.io/v1"]
    kind: Literal["AdmissionReview"]
    request: AdmissionRequest
    response: AdmissionResponse


class ReviewError(UserError, ValueError):
    """The body is not an AdmissionReview we can answer (-> HTTP 400)."""


@dataclass(frozen=True)
class Review:
    """One AdmissionReview, read once: who asks, about what, and what the object is to us.

    Everything a review's answer (and the cluster lookups for it) needs is decided here, once:
    the namespace (the request's, else the object's own), the name, the object with its kind,
    and the one pass over the object (`analysis.classify`: detected, analysed, its command
    line parsed), or the reason it is refused. `config` is the one the review is answered by.
    """

    uid: str
    operation: Operation
    kind: str  # request.kind.kind
    namespace: str  # "" when neither the request nor the object names one
    name: str
    dry_run: bool
    config: Config
    subject: Subject  # subject.obj: request.object with apiVersion/kind (CREATE, UPDATE)


@dataclass(frozen=True)
class Outcome:
    """What happened, for the log line and the metrics (never object contents)."""

    uid: str
    kind: str
    namespace: str
    name: str
    operation: str
    decision: Literal["allowed", "patched", "denied"]
    rules: tuple[tuple[str, str], ...] = ()
    warnings: int = 0
    dry_run: bool = False


def parse(doc: Mapping[str, Any], config: Config) -> Review:
    """Check the envelope (ReviewError with one line saying what is wrong), then read the
    object once: within the configured limits, what it is, its analysis."""
    if not isinstance(doc, Mapping):
        raise ReviewError(
            f"body must be a JSON object (an AdmissionReview), got {type(doc).__name__}"
        )
    if doc.get("apiVersion") != API_VERSION or doc.get("kind") != KIND:
        raise ReviewError(
            f"expected apiVersion {API_VERSION} kind {KIND}, got apiVersion {doc.get('apiVersion')!r} kind {doc.get('kind')!r}"
        )
    request = doc.get("request")
    if not isinstance(request, Mapping):
        raise ReviewError("request is missing or not an object")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise ReviewError("request.uid is missing or not a string")
    operation = request.get("operation")
    if operation not in ("CREATE", "UPDATE", "DELETE", "CONNECT"):
        raise ReviewError(
            f"request.operation {operation!r} is not CREATE, UPDATE, DELETE or CONNECT"
        )
    for key in ("name", "namespace"):
        if request.get(key) is not None and not isinstance(request[key], str):
            raise ReviewError(f"request.{key} must be a string")
    kind = request.get("kind")
    if kind is not None and not isinstance(kind, Mapping):
        raise ReviewError("request.kind must be an object {group, version, kind}")
    raw = request.get("object")
    if operation in ("CREATE", "UPDATE") and not isinstance(raw, Mapping):
        raise ReviewError(f"request.object must be an object for {operation}")
    obj = _with_kind(raw, kind or {}) if isinstance(raw, Mapping) else None
    metadata = obj.get("metadata") if obj else None
    if not isinstance(metadata, Mapping):
        metadata = {}
    namespace = request.get("namespace") or metadata.get("namespace")
    name = request.get("name") or metadata.get("name") or ""
    return Review(
        uid=uid,
        operation=operation,
        kind=str(kind.get("kind", "")) if kind else "",
        namespace=namespace if isinstance(namespace, str) else "",
        name=str(name),
        dry_run=bool(request.get("dryRun")),
        config=config,
        subject=_subject(raw, obj, operation, config),
    )


def _subject(raw: Any, obj: dict[str, Any] | None, operation: str, config: Config) -> Subject:
    if operation not in ("CREATE", "UPDATE") or obj is None:
        return Subject("other", obj)
    problem = bounded.problem_in(raw, config.limits)
    if problem:
        # every later step walks the object: refuse it before any of them can be unbounded
        return Subject("other", obj, refusal=f"request.object: {problem}")
    return classify(obj, config.limits)


def lookups(parsed: Review) -> Lookups:
    """The cluster lookups `/validate` needs for this review (nothing for most objects)."""
    return policy.lookups(parsed.subject, parsed.config)


def _with_kind(obj: Mapping[str, Any], kind: Mapping[str, Any]) -> dict[str, Any]:
    """The object, with apiVersion/kind from request.kind when the object omits them."""
    group, version = kind.get("group", ""), kind.get("version", "")
    defaults = {"apiVersion": f"{group}/{version}" if group else version, "kind": kind.get("kind")}
    return {**{k: v for k, v in defaults.items() if v}, **obj}


def short(text: str, limit: int = MAX_WARNING) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _bounded_warnings(warnings: list[str]) -> list[str]:
    """At most MAX_WARNINGS warnings, each at most MAX_WARNING characters."""
    shown = [short(w) for w in warnings[:MAX_WARNINGS]]
    if len(warnings) > MAX_WARNINGS:
        shown[-1] = f"... and {len(warnings) - MAX_WARNINGS + 1} more warnings"
    return shown


def _envelope(response: AdmissionResponse) -> AdmissionReview:
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}


def respond(
    parsed: Review, *, mode: Mode, facts: ClusterFacts | None = None
) -> tuple[AdmissionReview, Outcome]:
    """The answer to a parsed review, and what was decided."""
    uid = parsed.uid
    base = Outcome(
        uid=uid,
        kind=parsed.kind,
        namespace=parsed.namespace,
        name=parsed.name,
        operation=parsed.operation,
        decision="allowed",
        dry_run=parsed.dry_run,
    )
    subject = parsed.subject
    if subject.refusal is None and subject.kind == "other":
        return _envelope({"uid": uid, "allowed": True}), base
    namespace = parsed.namespace or None
    if mode == "mutate":
        return _mutate(subject, parsed.config, uid=uid, namespace=namespace, base=base)
    return _validate(subject, parsed.config, uid=uid, namespace=namespace, facts=facts, base=base)


def _refuse(uid: str, message: str) -> AdmissionResponse:
    return {
        "uid": uid,
        "allowed": False,
        "status": {"code": 400, "reason": "BadRequest", "message": short(message, MAX_MESSAGE)},
    }


def _mutate(
    subject: Subject, config: Config, *, uid: str, namespace: str | None, base: Outcome
) -> tuple[AdmissionReview, Outcome]:
    result = mutation.mutate_subject(subject, config, namespace=namespace)
    if result.refusal:
        return _envelope(_refuse(uid, result.refusal)), replace(base, decision="denied")
    if result.denial:
        # Denied here, not by the validating webhook: the API server's own validation runs
        # between the two and would answer 422 for what we deny (a selector-key override).
        denied: AdmissionResponse = {
            "uid": uid,
            "allowed": False,
            "status": {
                "code": 403,
                "reason": "Forbidden",
                "message": short(result.denial, MAX_MESSAGE),
            },
        }
        rules = ((selector.RULE, "deny"),)
        return _envelope(denied), replace(base, decision="denied", rules=rules)
    response: AdmissionResponse = {"uid": uid, "allowed": True}
    ops = patch.diff(subject.obj, result.obj)
    if ops:
        response["patch"] = base64.b64encode(
            json.dumps(ops, separators=(",", ":")).encode()
        ).decode()
        response["patchType"] = "JSONPatch"
    if result.warnings:
        response["warnings"] = _bounded_warnings(list(result.warnings))
    if result.audit:
        response["auditAnnotations"] = dict(result.audit)
    decision: Literal["patched", "allowed"] = "patched" if ops else "allowed"
    return _envelope(response), replace(base, decision=decision, warnings=len(result.warnings))


def denial_message(decisions: list[policy.Decision]) -> str:
    """Every denial, each cut to a readable length, the whole within MAX_MESSAGE."""
    text = "; ".join(f"[{d.rule}] {short(d.path, 200)}: {short(d.message, 400)}" for d in decisions)
    return short(text, MAX_MESSAGE)


def _validate(
    subject: Subject,
    config: Config,
    *,
    uid: str,
    namespace: str | None,
    facts: ClusterFacts | None,
    base: Outcome,
) -> tuple[AdmissionReview, Outcome]:
    result = policy.validate_subject(subject, config, facts=facts, namespace=namespace)
    if result.refusal:
        return _envelope(_refuse(uid, result.refusal)), replace(base, decision="denied")
    rules = tuple((d.rule, d.action) for d in result.decisions)
    response: AdmissionResponse = {"uid": uid, "allowed": result.allowed}
    denials = [d for d in result.decisions if d.action == "deny"]
    if denials:
        response["status"] = {
            "code": 403,
            "reason": "Forbidden",
            "message": denial_message(denials),
        }
    warnings = [f"[{d.rule}] {d.message}" for d in result.decisions if d.action == "warn"]
    if warnings:
        response["warnings"] = _bounded_warnings(warnings)
    if rules:
        response["auditAnnotations"] = {
            "rules": ",".join(f"{rule}={action}" for rule, action in dict.fromkeys(rules))
        }
    decision: Literal["allowed", "denied"] = "allowed" if result.allowed else "denied"
    return _envelope(response), replace(
        base, decision=decision, rules=rules, warnings=len(warnings)
    )
