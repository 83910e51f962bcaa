"""Shell: ``audit token``'s checks: is this service-account token one Pulsar should accept?

``audit_token`` verifies the signature against a ``KeySource`` (asymmetric algorithms only, never
a shared secret) and checks the claims: ``iss`` is the issuer (when known), ``aud`` shares a
value with the accepted audiences, ``exp`` is in the future, ``nbf`` and ``iat`` are not
(``LEEWAY_SECONDS`` either way), and ``exp - iat`` is at most ``maxExpirationSeconds``. Each
failed check is a finding (exit code 1). ``now`` may be given (``--now``) to check a token as
of another moment. The report and its text show decoded claims only, never the token.
"""

from __future__ import annotations

import datetime
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jwt

from webhook.audit.errors import AuditError
from webhook.audit.jwt_parse import ParsedToken
from webhook.audit.keys import KeySource
from webhook.core.errors import printable

LEEWAY_SECONDS = 60
SIGNATURE_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
_SUB = re.compile(r"^system:serviceaccount:([^:]+):([^:]+)$")


@dataclass
class TokenReport:
    """What ``audit token`` found: the decoded token, the checks that failed, and notes."""

    verified: bool
    header: Mapping[str, Any]
    claims: Mapping[str, Any]
    issuer: str | None = None  # the expected issuer, when known
    key_origin: str | None = None
    findings: list[tuple[str, str]] = field(default_factory=list)  # (check, message)
    notes: list[str] = field(default_factory=list)

    @property
    def role(self) -> str | None:
        sub = self.claims.get("sub")
        return sub if isinstance(sub, str) else None

    @property
    def kube(self) -> Mapping[str, Any]:
        value = self.claims.get("kubernetes.io")
        return value if isinstance(value, Mapping) else {}

    def bound_object(self, name: str) -> Mapping[str, Any]:
        value = self.kube.get(name)
        return value if isinstance(value, Mapping) else {}

    @property
    def namespace(self) -> str | None:
        value = self.kube.get("namespace")
        if isinstance(value, str):
            return value
        match = _SUB.match(self.role or "")
        return match.group(1) if match else None

    @property
    def service_account(self) -> str | None:
        value = self.bound_object("serviceaccount").get("name")
        if isinstance(value, str):
            return value
        match = _SUB.match(self.role or "")
        return match.group(2) if match else None

    @property
    def pod(self) -> str | None:
        value = self.bound_object("pod").get("name")
        return value if isinstance(value, str) else None

    @property
    def audiences(self) -> list[str]:
        return _audiences(self.claims.get("aud"))

    @property
    def lifetime(self) -> float | None:
        exp, iat = _number(self.claims.get("exp")), _number(self.claims.get("iat"))
        return exp - iat if exp is not None and iat is not None else None

    @property
    def exit_code(self) -> int:
        return 1 if self.findings else 0

    def selected_claims(self) -> dict[str, Any]:
        picked: dict[str, Any] = {
            k: self.claims[k]
            for k in ("iss", "sub", "aud", "iat", "nbf", "exp", "jti")
            if k in self.claims
        }
        kube: dict[str, Any] = {}
        for key in ("namespace", "warnafter"):
            if key in self.kube:
                kube[key] = self.kube[key]
        for key in ("serviceaccount", "pod", "secret", "node"):
            bound = self.bound_object(key)
            if bound:
                kube[key] = {k: bound[k] for k in ("name", "uid") if k in bound}
        if kube:
            picked["kubernetes.io"] = kube
        return picked

    def as_json(self) -> dict[str, Any]:
        exp, iat = _number(self.claims.get("exp")), _number(self.claims.get("iat"))
        return {
            "verified": self.verified,
            "claims": self.selected_claims(),
            "role": self.role,
            "findings": [{"check": c, "message": m} for c, m in self.findings],
            "notes": list(self.notes),
            "issuer": self.issuer,
            "audiences": self.audiences,
            "namespace": self.namespace,
            "serviceAccount": self.service_account,
            "pod": self.pod,
            "issued": _iso(iat),
            "expires": _iso(exp),
            "lifetimeSeconds": self.lifetime,
            "keyId": self.header.get("kid"),
            "algorithm": self.header.get("alg"),
            "keySource": self.key_origin,
        }


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _audiences(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _iso(value: float | None) -> str | None:
    if value is None:
        return None
    try:
        moment = datetime.datetime.fromtimestamp(value, datetime.UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _duration(seconds: float) -> str:
    s = int(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            parts.append(f"{s // size}{unit}")
            s %= size
    if s or not parts:
        parts.append(f"{s}s")
    return "".join(parts)


def _verify(token: ParsedToken, keys: KeySource) -> tuple[bool, list[tuple[str, str]]]:
    """Check the signature against the key set; (verified, findings). AuditError when the key
    set itself is unusable."""
    from jwt.exceptions import InvalidSignatureError, PyJWKSetError, PyJWTError

    alg = token.header.get("alg")
    kid = token.header.get("kid")
    if not isinstance(alg, str) or alg not in SIGNATURE_ALGORITHMS:
        return False, [
            (
                "signature",
                f"signature NOT verified: algorithm {printable(alg)} is not an asymmetric signature "
                "algorithm a service-account issuer uses",
            )
        ]
    if not token.signed:
        return False, [("signature", "signature NOT verified: the token has no signature")]
    try:
        jwt.PyJWKSet.from_dict(dict(keys.jwks))  # the set as a whole must be usable
    except PyJWKSetError as exc:
        raise AuditError(f"key set from {keys.origin}: {exc}") from None
    except PyJWTError as exc:
        raise AuditError(f"key set from {keys.origin}: unusable: {type(exc).__name__}") from None
    # never a shared secret: a public key set holds public keys only
    raw = [k for k in keys.jwks.get("keys") or [] if isinstance(k, dict) and k.get("kty") != "oct"]
    matching = [k for k in raw if kid is None or k.get("kid") == kid]
    if not matching:
        known = ", ".join(sorted(printable(k.get("kid")) for k in raw)) or "none"
        return False, [
            (
                "signature",
                f"signature NOT verified: no key with id {printable(kid)} in the key set from "
                f"{keys.origin} (key ids: {known})",
            )
        ]
    candidates: list[jwt.PyJWK] = []
    mismatched: set[str] = set()
    for data in matching:
        declared = data.get("alg")
        if declared is not None and declared != alg:
            mismatched.add(printable(declared))
            continue
        try:  # a key without `alg` is tried with the token's algorithm, if its type fits
            candidates.append(jwt.PyJWK(data, algorithm=alg))
        except PyJWTError:
            mismatched.add(f"{printable(data.get('kty'))} keys")
    if not candidates:
        return False, [
            (
                "signature",
                f"signature NOT verified: the token says {alg} but the matching key is for "
                f"{', '.join(sorted(mismatched))}",
            )
        ]
    failure = "signature does not verify"
    for key in candidates:
        try:
            jwt.PyJWS().decode_complete(token.raw, key=key.key, algorithms=[alg])
        except InvalidSignatureError:
            continue
        except PyJWTError as exc:
            failure = f"signature check failed: {type(exc).__name__}: {exc}"
            continue
        return True, []
    which = f"key {printable(kid)}" if kid is not None else f"{len(candidates)} key(s)"
    return False, [("signature", f"{failure} with {which} from {keys.origin}: NOT verified")]


def audit_token(
    token: ParsedToken,
    *,
    keys: KeySource | None,
    audiences: Sequence[str] = (),
    max_lifetime: int = 86400,
    now: float | None = None,
    issuer: str | None = None,
) -> TokenReport:
    """Verify and check ``token``; findings make exit code 1."""
    now = time.time() if now is None else now
    expected_issuer = issuer or (keys.issuer if keys is not None else None)
    report = TokenReport(
        verified=False,
        header=token.header,
        claims=token.claims,
        issuer=expected_issuer,
        key_origin=keys.origin if keys is not None else None,
    )
    findings = report.findings
    if keys is None:
        findings.append(
            (
                "signature",
                "signature NOT verified: no key source (give --kubeconfig, --issuer or --jwks)",
            )
        )
    else:
        report.notes.extend(keys.notes)
        report.verified, found = _verify(token, keys)
        findings.extend(found)

    claims = token.claims
    iss = claims.get("iss")
    if expected_issuer is not None and iss != expected_issuer:
        findings.append(("iss", f"issuer {printable(iss)} is not {expected_issuer}"))
    elif iss is None:
        findings.append(("iss", "the token has no issuer"))

    token_auds = _audiences(claims.get("aud"))
    if not token_auds:
        findings.append(("aud", "the token has no audience"))
    elif audiences and not set(token_auds) & set(audiences):
        findings.append(
            (
                "aud",
                f"audience {', '.join(printable(a) for a in token_auds)} is not one of "
                f"{', '.join(audiences)}",
            )
        )

    exp, nbf, iat = (_number(claims.get(k)) for k in ("exp", "nbf", "iat"))
    for name, value in (("exp", exp), ("nbf", nbf), ("iat", iat)):
        if name in claims and value is None:
            findings.append((name, f"{name} is not a number"))
    if exp is None:
        if "exp" not in claims:
            findings.append(("exp", "the token has no expiration"))
    elif now >= exp + LEEWAY_SECONDS:
        findings.append(("exp", f"expired at {_iso(exp)} ({_duration(now - exp)} ago)"))
    if nbf is not None and nbf > now + LEEWAY_SECONDS:
        findings.append(("nbf", f"not valid before {_iso(nbf)} (in {_duration(nbf - now)})"))
    if iat is not None and iat > now + LEEWAY_SECONDS:
        findings.append(("iat", f"issued in the future, at {_iso(iat)}"))
    lifetime = report.lifetime
    if lifetime is not None and lifetime > max_lifetime:
        findings.append(
            (
                "lifetime",
                f"lifetime {_duration(lifetime)} ({int(lifetime)}s) is longer than "
                f"maxExpirationSeconds {max_lifetime}",
            )
        )

    sub = claims.get("sub")
    match = _SUB.match(sub) if isinstance(sub, str) else None
    if match is None:
        findings.append(("sub", f"subject {printable(sub)} is not a service account"))
    else:
        ns = report.kube.get("namespace")
        sa = report.bound_object("serviceaccount").get("name")
        if ns is not None and ns != match.group(1):
            findings.append(("sub", f"kubernetes.io.namespace {printable(ns)} does not match sub"))
        if sa is not None and sa != match.group(2):
            findings.append(
                ("sub", f"kubernetes.io.serviceaccount.name {printable(sa)} does not match sub")
            )

    warnafter = report.kube.get("warnafter")
    if warnafter is not None:
        when = _iso(_number(warnafter)) or printable(warnafter)
        report.notes.append(
            f"legacy extended token: kubernetes.io.warnafter {when}; the API server extended "
            "its lifetime (--service-account-extend-token-expiration), the requested one ends there"
        )
    return report


def render_token_text(report: TokenReport) -> str:
    def bound(name: str) -> str:
        value = report.bound_object(name)
        if not value:
            return "-"
        uid = value.get("uid")
        return printable(value.get("name", "?")) + (f" (uid {printable(uid)})" if uid else "")

    claims = report.claims
    exp, iat = _number(claims.get("exp")), _number(claims.get("iat"))
    lifetime = report.lifetime
    if report.verified:
        verified = f"yes (key from {printable(report.key_origin)})"
    elif report.key_origin:
        verified = f"NO (keys from {printable(report.key_origin)})"
    else:
        verified = "NO (no key source)"
    rows = [
        ("issuer", printable(claims.get("iss", "-"))),
        ("expected issuer", printable(report.issuer or "- (unknown: no --issuer or --kubeconfig)")),
        ("audiences", ", ".join(printable(a) for a in report.audiences) or "-"),
        ("subject", printable(claims.get("sub", "-"))),
        ("pulsar role", printable(report.role) if report.role else "-"),
        ("namespace", printable(report.namespace) if report.namespace else "-"),
        ("service account", bound("serviceaccount")),
        ("pod", bound("pod")),
        ("node", bound("node")),
        ("secret", bound("secret")),
        ("issued", _iso(iat) or "-"),
        ("expires", _iso(exp) or "-"),
        ("lifetime", f"{_duration(lifetime)} ({int(lifetime)}s)" if lifetime is not None else "-"),
        ("key id", printable(report.header.get("kid", "-"))),
        ("algorithm", printable(report.header.get("alg", "-"))),
        ("verified", verified),
    ]
    lines = [
        f"{label + ':':<17}{value}"
        for label, value in rows
        if value != "-" or label not in ("node", "secret")
    ]
    # notes and findings may quote a URL a network peer chose (a discovery document's jwks_uri)
    lines.extend(f"NOTE {printable(note)}" for note in report.notes)
    if report.findings:
        lines.extend(
            f"FINDING [{check}] {printable(message)}" for check, message in report.findings
        )
    else:
        lines.append("findings:        none")
    return "\n".join(lines) + "\n"
