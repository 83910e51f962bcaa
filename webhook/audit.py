"""Shell: ``pf-webhook audit token|cluster``: who a function is to Pulsar, checked after the fact.

``audit token`` decodes a projected service-account token (a file or stdin), verifies its
signature against the issuer's keys and checks its claims:

* keys come from ``--jwks FILE|URL``, from ``--issuer URL`` (OIDC discovery:
  ``<issuer>/.well-known/openid-configuration`` → ``jwks_uri``), or from the cluster of
  ``--kubeconfig`` (``/.well-known/openid-configuration`` and ``/openid/v1/jwks``, fetched with
  the kubeconfig's credentials). Without a key source the signature is reported as NOT verified;
* ``iss`` must be the issuer (when known), ``aud`` must share a value with ``--audience`` (or
  the config's ``webhook.tokens.allowedAudiences``), ``exp`` must be in the future, ``nbf`` and
  ``iat`` not in the future (60 s leeway), and ``exp - iat`` at most the config's
  ``maxExpirationSeconds``; ``kubernetes.io.warnafter`` marks a legacy extended token.

The report names the Pulsar role (the ``sub`` claim, ``system:serviceaccount:<ns>:<sa>``), the
namespace, service account and pod. The token itself, and its signature, are never printed or
put into an error message: only decoded claims are shown.

``audit cluster`` lists the StatefulSets that are function workloads and reports, per function,
the token audience and expiration, service account, Pulsar role, CA Secret and policy findings;
then the roles shared by several functions (they share Pulsar permissions) and the functions
whose token has no audience. Output is bounded by ``--limit``.

Exit codes: 0 ok, 1 findings (``cluster``: a deny finding), 2 error (one line on stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import datetime
import json
import os
import re
import ssl
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt

from webhook import configfile, mutation, policy, tokens, workload
from webhook.config import Config, ConfigError

__all__ = [
    "DEFAULT_LIMIT",
    "LEEWAY_SECONDS",
    "AuditError",
    "FunctionRow",
    "KeySource",
    "ParsedToken",
    "TokenReport",
    "audit_token",
    "cluster_report",
    "parse_token",
    "register_cli",
    "render_cluster_text",
    "render_token_text",
    "summarize_workload",
]

LEEWAY_SECONDS = 60
DEFAULT_LIMIT = 500
MAX_TOKEN_BYTES = 1 << 20
MAX_DOCUMENT_BYTES = 1 << 20
HTTP_TIMEOUT = 10.0
LIST_PAGE = 500
SIGNATURE_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
_SUB = re.compile(r"^system:serviceaccount:([^:]+):([^:]+)$")
_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class AuditError(Exception):
    """The audit could not run (unreadable token, key source unreachable...); one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


# ============================================================================ token: parsing


@dataclass(frozen=True)
class ParsedToken:
    """A compact JWS split and decoded. ``raw`` is only ever handed to the signature check."""

    header: Mapping[str, Any]
    claims: Mapping[str, Any]
    raw: str = field(repr=False)
    signed: bool = True  # a non-empty signature part

    def __str__(self) -> str:  # never the token
        return "<token>"


def _b64url(part: str, what: str) -> bytes:
    if not _B64URL.match(part) or len(part) % 4 == 1:
        raise AuditError(f"not a JWT: the {what} is not base64url")
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError):
        raise AuditError(f"not a JWT: the {what} is not base64url") from None


def _json_part(part: str, what: str) -> dict[str, Any]:
    data = _b64url(part, what)
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise AuditError(f"not a JWT: the {what} is not JSON") from None
    if not isinstance(value, dict):
        raise AuditError(f"not a JWT: the {what} is a JSON {type(value).__name__}, not an object")
    return value


def parse_token(text: str) -> ParsedToken:
    """Split and decode a compact JWS; AuditError (never quoting the input) when it is not one."""
    token = text.strip()
    if not token:
        raise AuditError("no token: the input is empty")
    parts = token.split(".")
    if len(parts) == 5:
        raise AuditError("not a JWT: this is an encrypted token (JWE), not a signed one")
    if len(parts) != 3:
        raise AuditError(f"not a JWT: expected 3 dot-separated parts, found {len(parts)}")
    header = _json_part(parts[0], "header")
    claims = _json_part(parts[1], "payload")
    signature = _b64url(parts[2], "signature")
    return ParsedToken(header=header, claims=claims, raw=token, signed=bool(signature))


def read_token(source: str) -> ParsedToken:
    """The token in file ``source`` (``-`` for stdin), surrounding whitespace stripped."""
    name = "<stdin>" if source == "-" else source
    try:
        if source == "-":
            text = sys.stdin.read(MAX_TOKEN_BYTES + 1)
        else:
            with open(source, "rb") as handle:
                data = handle.read(MAX_TOKEN_BYTES + 1)
            text = data.decode("utf-8")
    except OSError as exc:
        raise AuditError(f"{name}: cannot read: {exc.strerror or type(exc).__name__}") from None
    except UnicodeDecodeError:
        raise AuditError(f"{name}: not a JWT: not UTF-8 text") from None
    if len(text) > MAX_TOKEN_BYTES:
        raise AuditError(f"{name}: larger than {MAX_TOKEN_BYTES} bytes, not a token")
    try:
        return parse_token(text)
    except AuditError as exc:
        raise AuditError(f"{name}: {exc}") from None


# ============================================================================ token: key sources


@dataclass(frozen=True)
class KeySource:
    """A JWKS document, where it came from, and the issuer it belongs to (when known)."""

    jwks: Mapping[str, Any]
    origin: str
    issuer: str | None = None
    notes: tuple[str, ...] = ()


def _is_url(value: str) -> bool:
    return value.startswith(("https://", "http://"))


def _ssl_context(ca_file: str | None) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise AuditError(f"--ca-file {ca_file}: cannot load: {reason}") from None


async def _get_json(session: Any, url: str, what: str) -> dict[str, Any]:
    import aiohttp

    try:
        async with session.get(url, headers={"Accept": "application/json"}) as resp:
            if resp.status != 200:
                raise AuditError(f"{what} {url}: HTTP {resp.status} {resp.reason or ''}")
            body = await resp.content.read(MAX_DOCUMENT_BYTES + 1)
    except AuditError:
        raise
    except TimeoutError:
        raise AuditError(f"cannot fetch {what} {url}: timed out") from None
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        raise AuditError(f"cannot fetch {what} {url}: {exc or type(exc).__name__}") from None
    if len(body) > MAX_DOCUMENT_BYTES:
        raise AuditError(f"{what} {url}: larger than {MAX_DOCUMENT_BYTES} bytes")
    return _json_object(body, f"{what} {url}")


def _json_object(body: bytes | str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise AuditError(f"{what}: not JSON") from None
    if not isinstance(value, dict):
        raise AuditError(f"{what}: a JSON {type(value).__name__}, not an object")
    return value


def _discovery_url(issuer: str) -> str:
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


async def keys_from_urls(*, issuer: str | None, jwks: str | None, ca_file: str | None) -> KeySource:
    """Keys from a JWKS file or URL, or from the issuer's OIDC discovery document."""
    import aiohttp

    if jwks is not None and not _is_url(jwks):
        try:
            data = Path(jwks).read_bytes()
        except OSError as exc:
            raise AuditError(f"--jwks {jwks}: cannot read: {exc.strerror}") from None
        return KeySource(jwks=_json_object(data, f"--jwks {jwks}"), origin=jwks, issuer=issuer)
    context = _ssl_context(ca_file)
    notes: list[str] = []
    timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT)
    async with aiohttp.ClientSession(
        timeout=timeout, connector=aiohttp.TCPConnector(ssl=context)
    ) as session:
        if jwks is not None:
            url = jwks
        elif issuer is None:
            raise AuditError("no key source: give --jwks, --issuer or --kubeconfig")
        else:
            doc = await _get_json(session, _discovery_url(issuer), "OIDC discovery document")
            found = doc.get("jwks_uri")
            if not isinstance(found, str) or not _is_url(found):
                raise AuditError(
                    f"OIDC discovery document {_discovery_url(issuer)}: no usable jwks_uri"
                )
            url = found
            if doc.get("issuer") != issuer:
                notes.append(
                    f"the discovery document names issuer {_show(doc.get('issuer'))}, not {issuer}"
                )
        if url.startswith("http://"):
            notes.append(f"keys fetched over plain HTTP from {url}")
        keyset = await _get_json(session, url, "JWKS")
    return KeySource(jwks=keyset, origin=url, issuer=issuer, notes=tuple(notes))


def kubeconfig_source(kubeconfig: str | None) -> str | None:
    """The kubeconfig to use: the flag, else $KUBECONFIG, else ~/.kube/config unless in a pod."""
    if kubeconfig:
        return kubeconfig
    if os.environ.get("KUBECONFIG"):
        return os.environ["KUBECONFIG"]
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return None
    default = Path.home() / ".kube" / "config"
    return str(default) if default.is_file() else None


async def _cluster_client(kubeconfig: str | None) -> Any:
    from webhook import kube

    source = kubeconfig_source(kubeconfig)
    if source and not any(Path(p).expanduser().is_file() for p in source.split(os.pathsep) if p):
        raise AuditError(f"kubeconfig {source} not found")
    try:
        api = await kube.api_client(source)
    except kube.KubeError as exc:
        raise AuditError(str(exc)) from None
    except Exception as exc:  # the loader raises a variety of types for broken files
        raise AuditError(
            f"cannot load Kubernetes client configuration from {source}: {type(exc).__name__}: {exc}"
        ) from None
    if api is None:
        raise AuditError("no cluster: pass --kubeconfig, set $KUBECONFIG, or run in a pod")
    return api


async def _kube_call(awaitable: Any, *, what: str, host: str) -> Any:
    import aiohttp
    from kubernetes_asyncio.client.exceptions import ApiException

    try:
        return await awaitable
    except ApiException as exc:
        status = getattr(exc, "status", None)
        message = _api_message(exc)
        if status in (401, 403):
            raise AuditError(f"{what}: forbidden ({status}): {message}") from None
        raise AuditError(f"{what}: HTTP {status}: {message}") from None
    except TimeoutError:
        raise AuditError(f"{what}: timed out talking to {host}") from None
    except (aiohttp.ClientError, OSError) as exc:
        raise AuditError(
            f"{what}: cannot reach API server {host}: {exc or type(exc).__name__}"
        ) from None


def _api_message(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, bytes | bytearray):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str) and body:
        try:
            parsed = json.loads(body)
        except ValueError:
            return " ".join(body.split())[:300]
        if isinstance(parsed, dict) and parsed.get("message"):
            return " ".join(str(parsed["message"]).split())
    return str(getattr(exc, "reason", None) or type(exc).__name__)


async def _get_cluster_json(api: Any, path: str, *, what: str, host: str) -> dict[str, Any]:
    # call_api with "object" returns the decoded JSON as is (the generated methods declare "str"
    # and would turn the decoded document into its Python repr).
    value = await _kube_call(
        api.call_api(
            path,
            "GET",
            header_params={"Accept": "application/json, application/jwk-set+json"},
            response_types_map={200: "object"},
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
            _request_timeout=HTTP_TIMEOUT,
        ),
        what=what,
        host=host,
    )
    if isinstance(value, str | bytes):
        return _json_object(value, f"{what} ({host})")
    if not isinstance(value, dict):
        raise AuditError(f"{what} ({host}): a JSON {type(value).__name__}, not an object")
    return value


async def keys_from_cluster(kubeconfig: str | None, *, issuer: str | None = None) -> KeySource:
    """The cluster's issuer and keys, with the kubeconfig's credentials."""
    api = await _cluster_client(kubeconfig)
    async with api:
        host = str(getattr(api.configuration, "host", "?"))
        doc = await _get_cluster_json(
            api,
            "/.well-known/openid-configuration",
            what="service account issuer discovery",
            host=host,
        )
        keyset = await _get_cluster_json(
            api, "/openid/v1/jwks", what="service account issuer keys", host=host
        )
    cluster_issuer = doc.get("issuer")
    if not isinstance(cluster_issuer, str) or not cluster_issuer:
        raise AuditError(f"service account issuer discovery ({host}): no issuer")
    notes: list[str] = []
    if issuer is not None and issuer != cluster_issuer:
        notes.append(f"the cluster's issuer is {cluster_issuer}, expected {issuer}")
    return KeySource(
        jwks=keyset,
        origin=f"{host}/openid/v1/jwks",
        issuer=issuer or cluster_issuer,
        notes=tuple(notes),
    )


# ============================================================================ token: checks


@dataclass
class TokenReport:
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


def _show(value: object) -> str:
    """A claim value for a terminal: control characters escaped."""
    text = value if isinstance(value, str) else json.dumps(value)
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


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
                f"signature NOT verified: algorithm {_show(alg)} is not an asymmetric signature "
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
        known = ", ".join(sorted(_show(k.get("kid")) for k in raw)) or "none"
        return False, [
            (
                "signature",
                f"signature NOT verified: no key with id {_show(kid)} in the key set from "
                f"{keys.origin} (key ids: {known})",
            )
        ]
    candidates: list[jwt.PyJWK] = []
    mismatched: set[str] = set()
    for data in matching:
        declared = data.get("alg")
        if declared is not None and declared != alg:
            mismatched.add(_show(declared))
            continue
        try:  # a key without `alg` is tried with the token's algorithm, if its type fits
            candidates.append(jwt.PyJWK(data, algorithm=alg))
        except PyJWTError:
            mismatched.add(f"{_show(data.get('kty'))} keys")
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
    which = f"key {_show(kid)}" if kid is not None else f"{len(candidates)} key(s)"
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
        findings.append(("iss", f"issuer {_show(iss)} is not {expected_issuer}"))
    elif iss is None:
        findings.append(("iss", "the token has no issuer"))

    token_auds = _audiences(claims.get("aud"))
    if not token_auds:
        findings.append(("aud", "the token has no audience"))
    elif audiences and not set(token_auds) & set(audiences):
        findings.append(
            (
                "aud",
                f"audience {', '.join(_show(a) for a in token_auds)} is not one of "
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
        findings.append(("sub", f"subject {_show(sub)} is not a service account"))
    else:
        ns = report.kube.get("namespace")
        sa = report.bound_object("serviceaccount").get("name")
        if ns is not None and ns != match.group(1):
            findings.append(("sub", f"kubernetes.io.namespace {_show(ns)} does not match sub"))
        if sa is not None and sa != match.group(2):
            findings.append(
                ("sub", f"kubernetes.io.serviceaccount.name {_show(sa)} does not match sub")
            )

    warnafter = report.kube.get("warnafter")
    if warnafter is not None:
        when = _iso(_number(warnafter)) or _show(warnafter)
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
        return _show(value.get("name", "?")) + (f" (uid {_show(uid)})" if uid else "")

    claims = report.claims
    exp, iat = _number(claims.get("exp")), _number(claims.get("iat"))
    lifetime = report.lifetime
    if report.verified:
        verified = f"yes (key from {report.key_origin})"
    elif report.key_origin:
        verified = f"NO (keys from {report.key_origin})"
    else:
        verified = "NO (no key source)"
    rows = [
        ("issuer", _show(claims.get("iss", "-"))),
        ("expected issuer", report.issuer or "- (unknown: no --issuer or --kubeconfig)"),
        ("audiences", ", ".join(_show(a) for a in report.audiences) or "-"),
        ("subject", _show(claims.get("sub", "-"))),
        ("pulsar role", _show(report.role) if report.role else "-"),
        ("namespace", _show(report.namespace) if report.namespace else "-"),
        ("service account", bound("serviceaccount")),
        ("pod", bound("pod")),
        ("node", bound("node")),
        ("secret", bound("secret")),
        ("issued", _iso(iat) or "-"),
        ("expires", _iso(exp) or "-"),
        ("lifetime", f"{_duration(lifetime)} ({int(lifetime)}s)" if lifetime is not None else "-"),
        ("key id", _show(report.header.get("kid", "-"))),
        ("algorithm", _show(report.header.get("alg", "-"))),
        ("verified", verified),
    ]
    lines = [
        f"{label + ':':<17}{value}"
        for label, value in rows
        if value != "-" or label not in ("node", "secret")
    ]
    for note in report.notes:
        lines.append(f"NOTE {note}")
    if report.findings:
        lines.extend(f"FINDING [{check}] {message}" for check, message in report.findings)
    else:
        lines.append("findings:        none")
    return "\n".join(lines) + "\n"


# ============================================================================ cluster


@dataclass(frozen=True)
class FunctionRow:
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
    value = _show(value)
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
                f"{_show(f['message'])}"
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

    api = await _cluster_client(kubeconfig)
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
                page = await _kube_call(
                    apps.list_namespaced_stateful_set(namespace, **kwargs), what=what, host=host
                )
            else:
                page = await _kube_call(
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


# ============================================================================ CLI


def _load_config(path: str | None) -> Config:
    return configfile.read(path)


def _fail(exc: BaseException) -> int:
    print(f"error: {' '.join(str(exc).split()) or type(exc).__name__}", file=sys.stderr)
    return 2


async def _key_source(args: argparse.Namespace) -> KeySource | None:
    if args.kubeconfig is not None:
        return await keys_from_cluster(args.kubeconfig, issuer=args.issuer)
    if args.jwks is not None or args.issuer is not None:
        if args.jwks is None and not _is_url(args.issuer):
            raise AuditError(f"--issuer {args.issuer}: not an http(s) URL")
        return await keys_from_urls(issuer=args.issuer, jwks=args.jwks, ca_file=args.ca_file)
    return None


def _cmd_token(args: argparse.Namespace) -> int:
    try:
        token = read_token(args.file)
        config = _load_config(args.config) if args.config else None
        audiences = list(args.audience or [])
        if not audiences and config is not None:
            audiences = list(config.allowed_audiences)
        max_lifetime = config.max_expiration_seconds if config is not None else 86400
        keys = asyncio.run(_key_source(args))
        report = audit_token(
            token,
            keys=keys,
            audiences=audiences,
            max_lifetime=max_lifetime,
            now=args.now,
            issuer=args.issuer,
        )
    except (AuditError, ConfigError) as exc:
        return _fail(exc)
    if args.output == "json":
        sys.stdout.write(json.dumps(report.as_json(), indent=2) + "\n")
    else:
        sys.stdout.write(render_token_text(report))
    return report.exit_code


def _cmd_cluster(args: argparse.Namespace) -> int:
    if args.limit < 1:
        return _fail(AuditError(f"--limit must be at least 1, got {args.limit}"))
    try:
        config = _load_config(args.config)
        rows, scanned = asyncio.run(scan_cluster(args.kubeconfig, args.namespace, config))
    except (AuditError, ConfigError) as exc:
        return _fail(exc)
    scope = f"namespace {args.namespace}" if args.namespace else "all namespaces"
    report = cluster_report(rows, scanned=scanned, limit=args.limit, scope=scope)
    if args.output == "json":
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        sys.stdout.write(render_cluster_text(report, limit=args.limit))
    return 0 if report["allowed"] else 1


def register_cli(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``audit token`` and ``audit cluster`` to the ``pf-webhook`` subcommands."""
    audit = sub.add_parser("audit", help="check a function's token, or every function in a cluster")
    audit_sub = audit.add_subparsers(dest="audit_command", metavar="COMMAND", required=True)

    tok = audit_sub.add_parser(
        "token",
        help="decode and verify a projected service-account token (never prints the token)",
    )
    tok.add_argument("file", nargs="?", default="-", help="token file, or - for stdin (default)")
    source = tok.add_mutually_exclusive_group()
    source.add_argument("--jwks", metavar="FILE|URL", help="the issuer's key set (JWKS)")
    source.add_argument(
        "--kubeconfig",
        metavar="F",
        help="verify against this cluster's issuer and keys (/openid/v1/jwks)",
    )
    tok.add_argument(
        "--issuer",
        metavar="URL",
        help="expected issuer; alone, its keys are found by OIDC discovery",
    )
    tok.add_argument(
        "--audience",
        action="append",
        metavar="A",
        help="accepted audience (repeatable; default: the config's allowedAudiences)",
    )
    tok.add_argument("--config", metavar="F", help="functions_worker.yml (audiences, max lifetime)")
    tok.add_argument("--ca-file", metavar="F", help="CA bundle for https --issuer/--jwks URLs")
    tok.add_argument("-o", "--output", choices=("text", "json"), default="text")
    tok.add_argument("--now", type=float, metavar="UNIX", help="check times as of this moment")
    tok.set_defaults(handler=_cmd_token)

    clu = audit_sub.add_parser("cluster", help="report every function workload in a cluster")
    clu.add_argument(
        "--kubeconfig", metavar="F", help="default: $KUBECONFIG, ~/.kube/config, or in-cluster"
    )
    clu.add_argument("-n", "--namespace", metavar="N", help="one namespace (default: all)")
    clu.add_argument("--config", metavar="F", help="functions_worker.yml (policy)")
    clu.add_argument("-o", "--output", choices=("text", "json"), default="text")
    clu.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"at most N functions listed (default {DEFAULT_LIMIT})",
    )
    clu.set_defaults(handler=_cmd_cluster)
