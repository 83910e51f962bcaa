"""Shell: would the broker's OpenID provider accept this token, and as which role?

``broker_verdict`` runs the broker's checks in the broker's order (see the provider's
``authenticateToken``): the settings must let the broker start; ``iss`` must be present and
either an exact member of ``openIDAllowedTokenIssuers`` or, under a Kubernetes fallback mode,
equal to the issuer the broker's API server announces; the discovery document's issuer must
equal ``iss``; a JWK must carry the token's ``kid`` exactly; the JWK's ``alg`` (when it has one)
must equal the token's; the key must be an RSA or EC public key; the token's ``alg`` must be one
of RS256/384/512 or ES256/384/512 and fit the key; the signature must verify; then ``aud``
(any of the allowed audiences), the presence of ``iat``, ``exp``, ``nbf``, ``sub`` and of the role
claim, ``exp`` (strictly after now − leeway), ``nbf`` and ``iat`` (not after now + leeway); last the
role is read from the role claim (a string, or the first string of an array).

A refusal is named with the broker's ``AuthenticationExceptionCode`` and its message. A token is
never printed: only claims, key ids and algorithm names appear.

``claims_verdict`` runs the same checks without a signature (``audit cluster``: a token the
auditor read from a Secret, or the token a function's template would get).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from webhook.audit.jwt_parse import ParsedToken
from webhook.audit.keys import KeySource
from webhook.core.broker_config import ACCEPTED_ALGORITHMS, BrokerSettings
from webhook.core.errors import printable

DISCOVERY_PATH = "/.well-known/openid-configuration/"
JWKS_PATH = "/openid/v1/jwks/"


@dataclass
class Verdict:
    """The broker's answer: accepted as ``role``, or refused with ``code`` and ``reason``."""

    accepted: bool
    role: str | None = None
    code: str | None = None  # AuthenticationExceptionCode, or STARTUP / NO_ROLE / UNKNOWN
    reason: str = ""
    path: str = ""  # how the broker found the keys
    endpoints: list[str] = field(default_factory=list)  # API-server endpoints it would read
    notes: list[str] = field(default_factory=list)
    undetermined: bool = False  # we could not learn what the broker would see
    warnings: list[str] = field(default_factory=list)  # settings that make the answer moot

    @property
    def exit_code(self) -> int:
        return 0 if self.accepted else 1

    def line(self) -> str:
        moot = "".join(f"; BUT {w}" for w in self.warnings)
        return self._line() + moot

    def _line(self) -> str:
        via = f" via {self.path}" if self.path else ""
        reads = f"; the broker reads {', '.join(self.endpoints)}" if self.endpoints else ""
        if self.accepted:
            return f"broker: ACCEPTED as {printable(self.role)}{via}{reads}"
        if self.undetermined:
            return f"broker: UNDETERMINED{via}: {self.reason}{reads}"
        if self.code == "STARTUP":
            return f"broker: WOULD NOT START: {self.reason}"
        return f"broker: REFUSED [{self.code}] {self.reason}{via and ' (' + via[1:] + ')'}{reads}"

    def as_json(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "role": self.role,
            "code": self.code,
            "reason": self.reason or None,
            "undetermined": self.undetermined,
            "keys": self.path or None,
            "apiServerEndpoints": list(self.endpoints),
            "notes": list(self.notes),
            "warnings": list(self.warnings),
            "line": self.line(),
        }


class _Refused(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _audiences(value: object) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return None


def _instant(value: object) -> int | None:
    """A NumericDate as java-jwt reads it: whole seconds; anything else is no date."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return int(value)


def _iso(seconds: int) -> str:
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
    except (OverflowError, OSError, ValueError):
        return f"{seconds} (seconds since the epoch)"


def role_of(claims: Mapping[str, Any], role_claim: str) -> str | None:
    """The provider's getRole: a string, or the first element of an array of strings."""
    value = claims.get(role_claim)
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return str(value[0])
    return None


def check_claims(claims: Mapping[str, Any], settings: BrokerSettings, now: float) -> str:
    """java-jwt's claim checks as the provider configures them; the role, or _Refused."""
    auds = _audiences(claims.get("aud"))
    if "aud" not in claims or auds is None:
        raise _Refused("INVALID_JWT_CLAIM", "The Claim 'aud' is not present in the JWT.")
    if not set(auds) & settings.audiences:
        raise _Refused(
            "INVALID_JWT_CLAIM",
            "The Claim 'aud' value doesn't contain the required audience. (token: "
            f"{', '.join(printable(a) for a in auds) or 'none'}; openIDAllowedAudiences: "
            f"{', '.join(sorted(settings.audiences))})",
        )
    required = ["iat", "exp", "nbf", "sub"]
    if not settings.role_claim_is_subject:
        required.append(settings.role_claim)
    for name in required:
        if name not in claims:
            extra = ""
            if name == "nbf":
                extra = " (brokers before apache/pulsar#25197 require nbf)"
            elif name == settings.role_claim:
                extra = f" (openIDRoleClaim={printable(settings.role_claim)})"
            raise _Refused(
                "INVALID_JWT_CLAIM",
                f"The Claim '{printable(name)}' is not present in the JWT.{extra}",
            )
    today = int(now)
    leeway = settings.leeway_seconds
    exp = _instant(claims.get("exp"))
    if exp is not None and not today - leeway < exp:
        raise _Refused("EXPIRED_JWT", f"JWT expired: The Token has expired on {_iso(exp)}.")
    for name in ("nbf", "iat"):
        value = _instant(claims.get(name))
        if value is not None and today + leeway < value:
            raise _Refused(
                "INVALID_JWT_CLAIM", f"The Token can't be used before {_iso(value)}. ({name})"
            )
    role = role_of(claims, settings.role_claim)
    if role is None:
        raise _Refused(
            "NO_ROLE",
            f"the role claim {printable(settings.role_claim)} is not a string or an array of strings: "
            "the broker gets a null role and the connection never completes",
        )
    return role


def _public_key(jwk: Mapping[str, Any]) -> Any:
    """An RSA or EC public key, as the broker's JWK reader accepts; _Refused otherwise."""
    from jwt.algorithms import ECAlgorithm, RSAAlgorithm
    from jwt.exceptions import PyJWTError

    kty = jwk.get("kty")
    reader: Any = (
        {"RSA": RSAAlgorithm, "EC": ECAlgorithm}.get(kty) if isinstance(kty, str) else None
    )
    if reader is None:
        raise _Refused(
            "INVALID_PUBLIC_KEY",
            f"Invalid public key: the key type {printable(kty)} is not RSA or EC",
        )
    try:
        key = reader.from_jwk(json.dumps(dict(jwk)))
    except (PyJWTError, ValueError, TypeError, KeyError) as exc:
        raise _Refused("INVALID_PUBLIC_KEY", f"Invalid public key: {type(exc).__name__}") from None
    if hasattr(key, "public_key") and not hasattr(key, "verify"):
        key = key.public_key()  # a private JWK: the broker uses its public half
    return key


def _check_signature(token: ParsedToken, keys: KeySource) -> None:
    import jwt
    from jwt.exceptions import InvalidSignatureError, PyJWTError

    kid = token.header.get("kid")
    alg = token.header.get("alg")
    raw = keys.jwks.get("keys")
    listed = [k for k in raw if isinstance(k, Mapping)] if isinstance(raw, list) else []
    jwk = next((k for k in listed if kid is not None and k.get("kid") == kid), None)
    if jwk is None:
        raise _Refused(
            "ERROR_RETRIEVING_PUBLIC_KEY",
            f"No JWK found for Key ID {printable(kid) if kid is not None else 'null'} in {keys.origin}",
        )
    declared = jwk.get("alg")
    if declared is not None and declared != alg:
        raise _Refused(
            "ALGORITHM_MISMATCH",
            f"JWK's alg [{printable(declared)}] does not match JWT's alg [{printable(alg)}]",
        )
    key = _public_key(jwk)
    if not isinstance(alg, str):
        raise _Refused("UNSUPPORTED_ALGORITHM", "PublicKey algorithm cannot be null")
    if alg not in ACCEPTED_ALGORITHMS:
        raise _Refused("UNSUPPORTED_ALGORITHM", f"Unsupported algorithm: {printable(alg)}")
    if (alg.startswith("RS") and jwk.get("kty") != "RSA") or (
        alg.startswith("ES") and jwk.get("kty") != "EC"
    ):
        raise _Refused(
            "ALGORITHM_MISMATCH", f"Expected PublicKey alg [{alg}] does match actual alg."
        )
    try:
        jwt.PyJWS().decode_complete(token.raw, key=key, algorithms=[alg])
    except InvalidSignatureError:
        raise _Refused(
            "ERROR_VERIFYING_JWT_SIGNATURE",
            f"JWT signature verification exception: the signature does not verify with key {printable(kid)}",
        ) from None
    except PyJWTError as exc:
        raise _Refused(
            "ERROR_VERIFYING_JWT_SIGNATURE",
            f"JWT signature verification exception: {type(exc).__name__}",
        ) from None


@dataclass(frozen=True)
class ApiServer:
    """What the broker's own API server announces (the auditor's cluster stands in for it)."""

    host: str
    issuer: str | None


def _route(
    iss: object, settings: BrokerSettings, keys: KeySource | None, api: ApiServer | None
) -> tuple[str, list[str], list[str]]:
    """(how the keys are found, API-server endpoints read, notes); _Refused on the issuer."""
    if iss is None:
        raise _Refused("UNSUPPORTED_ISSUER", "Issuer cannot be null")
    if not isinstance(iss, str):
        raise _Refused(
            "ERROR_DECODING_JWT", f"Unable to decode JWT: iss is {printable(iss)}, not a string"
        )
    notes: list[str] = []
    if iss in settings.issuers:
        path = f"openIDAllowedTokenIssuers: GET {printable(iss.rstrip('/'))}/.well-known/openid-configuration"
        if keys is not None and keys.document_issuer not in (None, iss):
            if keys.api_host is None and keys.issuer == iss:  # we read <iss>'s own document
                raise _Refused(
                    "ISSUER_MISMATCH",
                    f"Issuer URL mismatch: [{printable(iss)}] should match [{printable(keys.document_issuer)}]",
                )
            raise _Undetermined(
                path,
                [],
                notes,
                f"the broker reads the keys of issuer {printable(iss)}; the keys given belong to "
                f"issuer {printable(keys.document_issuer)} (give --issuer {printable(iss)})",
            )
        if api is not None and api.issuer == iss:
            notes.append(
                "the broker fetches the API server's discovery document and keys without "
                "credentials: it needs anonymous access to system:service-account-issuer-discovery "
                "and the cluster CA in openIDTokenIssuerTrustCertsFilePath, or use "
                "openIDFallbackDiscoveryMode=KUBERNETES_DISCOVER_PUBLIC_KEYS"
            )
        return path, [], notes
    mode = settings.fallback_mode
    if mode == "DISABLED":
        allowed = ", ".join(sorted(settings.issuers)) or "none"
        raise _Refused(
            "UNSUPPORTED_ISSUER",
            f"Issuer not allowed: {printable(iss)} (openIDAllowedTokenIssuers: {allowed})",
        )
    host = printable(api.host) if api is not None else "<the broker's API server>"
    endpoints = [f"GET {host.rstrip('/')}{DISCOVERY_PATH}"]
    if mode == "KUBERNETES_DISCOVER_PUBLIC_KEYS":
        endpoints.append(f"GET {host.rstrip('/')}{JWKS_PATH}")
        path = "KUBERNETES_DISCOVER_PUBLIC_KEYS (keys from the API server)"
    else:
        path = (
            "KUBERNETES_DISCOVER_TRUSTED_ISSUER (keys from the issuer's own discovery, "
            f"GET {printable(iss.rstrip('/'))}/.well-known/openid-configuration, without credentials)"
        )
    notes.append(
        "the broker calls the API server with its own ServiceAccount (in-cluster config); the "
        "bootstrap role system:service-account-issuer-discovery lists only the paths without "
        "the trailing slash (kubernetes/kubernetes#117455)"
    )
    if api is None or api.issuer is None:
        raise _Undetermined(
            path,
            endpoints,
            notes,
            f"accepted only if the broker's API server announces issuer {printable(iss)} at "
            f"{DISCOVERY_PATH}; give --kubeconfig of that cluster to check",
        )
    if api.issuer != iss:
        raise _Refused(
            "UNSUPPORTED_ISSUER",
            f"Issuer not allowed: {printable(iss)} (the API server's issuer is {printable(api.issuer)})",
        )
    return path, endpoints, notes


class _Undetermined(Exception):
    def __init__(self, path: str, endpoints: list[str], notes: list[str], reason: str) -> None:
        super().__init__(reason)
        self.path, self.endpoints, self.notes, self.reason = path, endpoints, notes, reason


def _verdict(
    claims: Mapping[str, Any],
    settings: BrokerSettings,
    *,
    signature: Any,
    keys: KeySource | None,
    api: ApiServer | None,
    now: float,
) -> Verdict:
    verdict = _decide(claims, settings, signature=signature, keys=keys, api=api, now=now)
    verdict.warnings = settings.warnings()
    return verdict


def _decide(
    claims: Mapping[str, Any],
    settings: BrokerSettings,
    *,
    signature: Any,
    keys: KeySource | None,
    api: ApiServer | None,
    now: float,
) -> Verdict:
    problem = settings.startup_error()
    if problem is not None:
        return Verdict(accepted=False, code="STARTUP", reason=problem, notes=settings.notes())
    notes = settings.notes()
    path, endpoints = "", list[str]()
    try:
        path, endpoints, found = _route(claims.get("iss"), settings, keys, api)
        notes.extend(found)
        signature()
        role = check_claims(claims, settings, now)
    except _Undetermined as exc:
        return Verdict(
            accepted=False,
            undetermined=True,
            code="UNKNOWN",
            reason=exc.reason,
            path=exc.path,
            endpoints=exc.endpoints,
            notes=notes + exc.notes,
        )
    except _Refused as exc:
        return Verdict(
            accepted=False,
            code=exc.code,
            reason=exc.reason,
            path=path,
            endpoints=endpoints,
            notes=notes,
        )
    if role == "":
        notes.append("the role is the empty string")
    return Verdict(accepted=True, role=role, path=path, endpoints=endpoints, notes=notes)


def broker_verdict(
    token: ParsedToken,
    settings: BrokerSettings,
    *,
    keys: KeySource | None,
    api: ApiServer | None,
    now: float | None = None,
) -> Verdict:
    """The broker's answer for ``token``, its keys taken from ``keys``."""
    now = time.time() if now is None else now

    def signature() -> None:
        if keys is None:
            raise _Undetermined(
                "",
                [],
                [],
                "no key source to check the signature with (give --kubeconfig, --issuer or --jwks)",
            )
        _check_signature(token, keys)

    verdict = _verdict(token.claims, settings, signature=signature, keys=keys, api=api, now=now)
    return verdict


def claims_verdict(
    claims: Mapping[str, Any],
    settings: BrokerSettings,
    *,
    api: ApiServer | None,
    now: float | None = None,
    algorithms: Sequence[str] = (),
) -> Verdict:
    """The broker's answer for these claims, the signature assumed good (``audit cluster``).
    ``algorithms``: the signing algorithms of the issuer's keys, when known."""
    now = time.time() if now is None else now

    def signature() -> None:
        refused = [a for a in algorithms if a not in ACCEPTED_ALGORITHMS]
        if algorithms and len(refused) == len(algorithms):
            raise _Refused("UNSUPPORTED_ALGORITHM", f"Unsupported algorithm: {', '.join(refused)}")

    return _verdict(claims, settings, signature=signature, keys=None, api=api, now=now)
