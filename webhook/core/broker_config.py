"""Pure: the broker's OpenID provider settings, read from a broker.conf or from the
``PULSAR_PREFIX_*`` environment entries of a Helm values file (or ConfigMap, or env file); also
the function worker's, from the ``properties:`` of a functions_worker.yml.

The ``openID*`` keys are not fields of the broker's configuration class: the provider reads them
from the raw properties, as strings, and types them itself. We do the same:

* a **set** is the value trimmed and split on commas (whitespace around commas dropped); a blank
  value is the empty set;
* a **boolean** is true only for the string ``true`` (any case); any other string is false;
* an **int** that does not parse falls back to the default;
* a **string** key present but empty stays empty (it is not replaced by the default).

``startup_error`` says why the broker would refuse to start with these settings, with the
broker's own message, in the order the provider checks them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from webhook.core.errors import UserError

ENV_PREFIX = "PULSAR_PREFIX_"
OPENID_PROVIDER = "org.apache.pulsar.broker.authentication.oidc.AuthenticationProviderOpenID"
FALLBACK_MODES = (
    "DISABLED",
    "KUBERNETES_DISCOVER_TRUSTED_ISSUER",
    "KUBERNETES_DISCOVER_PUBLIC_KEYS",
)
ACCEPTED_ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512")
MAX_CONFIG_BYTES = 4 << 20
_INT_MAX = 2**31 - 1


class BrokerConfigError(UserError, ValueError):
    """The file cannot be read as a broker configuration; one line."""


@dataclass(frozen=True)
class BrokerSettings:
    """What the broker's ``AuthenticationProviderOpenID`` would run with."""

    source: str
    issuers: frozenset[str]
    audiences: frozenset[str]
    role_claim: str = "sub"
    require_https: bool = True
    leeway_seconds: int = 0
    fallback_mode: str = "DISABLED"
    trust_certs_file: str | None = None
    providers: tuple[str, ...] | None = None  # authenticationProviders, when the file sets it
    authentication_enabled: bool | None = None
    raw: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def role_claim_is_subject(self) -> bool:
        return self.role_claim == "sub"

    def startup_error(self) -> str | None:
        """The broker's own message when the provider would fail to initialise, else None."""
        if not self.audiences:
            return "Missing configured value for: openIDAllowedAudiences"
        if self.fallback_mode not in FALLBACK_MODES:
            return (
                "No enum constant FallbackDiscoveryMode."
                f"{self.fallback_mode} (openIDFallbackDiscoveryMode must be one of "
                f"{', '.join(FALLBACK_MODES)})"
            )
        if not self.issuers and self.fallback_mode == "DISABLED":
            return "Missing configured value for: openIDAllowedTokenIssuers"
        if self.require_https:
            for issuer in sorted(self.issuers):
                if not issuer.lower().startswith("https://"):
                    return f"Issuer URL does not use https, but must: {issuer}"
        return None

    def warnings(self) -> list[str]:
        """Settings that make the answer moot: the broker does not use this provider at all."""
        found = []
        if self.providers is not None and OPENID_PROVIDER not in self.providers:
            found.append("authenticationProviders does not list AuthenticationProviderOpenID")
        if self.authentication_enabled is False:
            found.append("authenticationEnabled is not true")
        return found

    def notes(self) -> list[str]:
        """Settings worth knowing about that do not stop the broker."""
        found = []
        if self.providers is not None and OPENID_PROVIDER not in self.providers:
            found.append(
                "authenticationProviders does not list AuthenticationProviderOpenID: this broker "
                "would not use these OpenID settings at all"
            )
        if self.authentication_enabled is False:
            found.append("authenticationEnabled is not true: this broker authenticates nobody")
        if not self.require_https:
            plain = sorted(i for i in self.issuers if not i.lower().startswith("https://"))
            if plain:
                found.append(
                    "openIDRequireIssuersUseHttps is false: plain-HTTP issuers allowed "
                    f"({', '.join(plain)}); their keys travel unauthenticated"
                )
        return found


# ---------------------------------------------------------------------------------------------
# Java properties (what Properties.load reads)

_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def _logical_lines(text: str) -> list[str]:
    """Physical lines joined where a line ends in an odd number of backslashes."""
    lines: list[str] = []
    pending: str | None = None
    for raw in text.splitlines():
        line = raw.lstrip(" \t\f") if pending is not None else raw
        if pending is None and (not line.strip() or line.lstrip(" \t\f")[:1] in ("#", "!")):
            continue
        stripped = line
        trailing = len(stripped) - len(stripped.rstrip("\\"))
        continued = trailing % 2 == 1
        if continued:
            stripped = stripped[:-1]
        pending = stripped if pending is None else pending + stripped
        if not continued:
            lines.append(pending)
            pending = None
    if pending is not None:
        lines.append(pending)
    return lines


def _unescape(text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[i + 2 : i + 6]):
                out.append(chr(int(text[i + 2 : i + 6], 16)))
                i += 6
                continue
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        if ch != "\\":
            out.append(ch)
        i += 1
    return "".join(out)


def parse_properties(text: str) -> dict[str, str]:
    """``key=value`` / ``key: value`` / ``key value`` lines as Java's Properties.load reads them:
    comments (``#``, ``!``), continuations, escapes; the value keeps its trailing whitespace;
    the last occurrence of a key wins."""
    result: dict[str, str] = {}
    for line in _logical_lines(text):
        line = line.lstrip(" \t\f")
        i, key_end = 0, None
        while i < len(line):
            ch = line[i]
            if ch == "\\":
                i += 2
                continue
            if ch in "=: \t\f":
                key_end = i
                break
            i += 1
        if key_end is None:
            result[_unescape(line)] = ""
            continue
        key = _unescape(line[:key_end])
        rest = line[key_end:]
        rest = rest.lstrip(" \t\f")
        if rest[:1] in ("=", ":") and line[key_end] in " \t\f":
            rest = rest[1:].lstrip(" \t\f")
        elif line[key_end] in "=:":
            rest = line[key_end + 1 :].lstrip(" \t\f")
        result[key] = _unescape(rest)
    return result


# ---------------------------------------------------------------------------------------------
# Helm values / ConfigMap / env file


def _env_value(value: object) -> str | None:
    """An environment value as Helm renders it into a ConfigMap."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    return None


def _prefixed(entries: Mapping[str, Any]) -> dict[str, str]:
    found = {}
    for key, value in entries.items():
        if isinstance(key, str) and key.startswith(ENV_PREFIX):
            text = _env_value(value)
            if text is not None:
                found[key[len(ENV_PREFIX) :]] = text
    return found


def _plain(entries: Mapping[str, Any]) -> dict[str, str]:
    """Unprefixed keys replace a key already in broker.conf (authenticationProviders...)."""
    found = {}
    for key in ("authenticationEnabled", "authenticationProviders"):
        if key in entries:
            text = _env_value(entries[key])
            if text is not None:
                found[key] = text
    return found


def _chart_values(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The values file, then the values of each subchart in it (an umbrella chart puts the
    Pulsar chart's values under its alias, e.g. ``pulsar:``)."""
    return [doc, *(v for v in doc.values() if isinstance(v, Mapping))]


def _from_mapping(doc: Mapping[str, Any]) -> dict[str, str] | None:
    """The broker's env entries from a values file (``broker.configData``), a ConfigMap
    (``data``) or a flat mapping; None when there are none."""
    candidates: list[Mapping[str, Any]] = []
    for values in _chart_values(doc):  # the chart itself, or the chart as a subchart
        broker = values.get("broker")
        if isinstance(broker, Mapping) and isinstance(broker.get("configData"), Mapping):
            candidates.append(broker["configData"])
    if isinstance(doc.get("data"), Mapping):
        candidates.append(doc["data"])
    candidates.append(doc)
    for entries in candidates:
        prefixed = _prefixed(entries)
        if prefixed:
            return {**_plain(entries), **prefixed}
    return None


def _from_env_lines(text: str) -> dict[str, str] | None:
    found: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        name, sep, value = line.partition("=")
        if not sep or not name.startswith(ENV_PREFIX):
            continue
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        found[name[len(ENV_PREFIX) :]] = value
    return found or None


def _from_worker_yaml(doc: Mapping[str, Any]) -> dict[str, str] | None:
    """A functions_worker.yml: the provider reads ``properties:``, and only string values
    count (a YAML list or number there is as good as unset)."""
    props = doc.get("properties")
    if not isinstance(props, Mapping) or not any(
        isinstance(k, str) and k.startswith("openID") for k in props
    ):
        return None
    found = {k: v for k, v in props.items() if isinstance(k, str) and isinstance(v, str)}
    providers = doc.get("authenticationProviders")
    if isinstance(providers, list):
        # scalars only: a nested list (YAML aliases can nest them exponentially) names no class
        found["authenticationProviders"] = ",".join(
            str(p) for p in providers if isinstance(p, str | int | float)
        )
    enabled = doc.get("authenticationEnabled")
    if isinstance(enabled, bool):
        found["authenticationEnabled"] = "true" if enabled else "false"
    return found


def _yaml_mapping(text: str) -> Mapping[str, Any] | None:
    """``text`` as a YAML mapping, read once; None when it is not one (a broker.conf, broken
    YAML, or YAML nested deeper than the parser's recursion allows)."""
    try:
        doc = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError):
        return None
    return doc if isinstance(doc, Mapping) else None


def read_properties(text: str) -> dict[str, str]:
    """The broker's properties from a broker.conf, or from ``PULSAR_PREFIX_*`` entries (a Helm
    values file, a ConfigMap, an env file) as ``apply-config-from-env.py`` appends them."""
    doc = _yaml_mapping(text) if "properties:" in text or ENV_PREFIX in text else None
    if "properties:" in text and doc is not None:
        found = _from_worker_yaml(doc)
        if found is not None:
            return found
    if ENV_PREFIX in text:
        if doc is not None:
            found = _from_mapping(doc)
            if found is not None:
                return found
        found = _from_env_lines(text)
        if found is not None:
            return found
    return parse_properties(text)


# ---------------------------------------------------------------------------------------------
# typing the values the way the provider does


def _as_set(value: str | None) -> frozenset[str]:
    if value is None or not value.strip():
        return frozenset()
    return frozenset(re.split(r"\s*,\s*", value.strip()))


def _as_bool(value: str | None, default: bool) -> bool:
    return default if value is None else value.lower() == "true"


def _as_int(value: str | None, default: int) -> int:
    if value is None:
        return default
    if not re.fullmatch(r"[+-]?[0-9]+", value):
        return default
    number = int(value)
    return number if -(2**31) <= number <= _INT_MAX else default


def settings(props: Mapping[str, str], source: str) -> BrokerSettings:
    """The provider's typed settings from raw properties."""
    providers_raw = props.get("authenticationProviders")
    providers = (
        tuple(sorted(p for p in _as_set(providers_raw) if p)) if providers_raw is not None else None
    )
    enabled_raw = props.get("authenticationEnabled")
    trust = props.get("openIDTokenIssuerTrustCertsFilePath")
    return BrokerSettings(
        source=source,
        issuers=_as_set(props.get("openIDAllowedTokenIssuers")),
        audiences=_as_set(props.get("openIDAllowedAudiences")),
        role_claim=props.get("openIDRoleClaim", "sub"),
        require_https=_as_bool(props.get("openIDRequireIssuersUseHttps"), True),
        leeway_seconds=_as_int(props.get("openIDAcceptedTimeLeewaySeconds"), 0),
        fallback_mode=props.get("openIDFallbackDiscoveryMode", "DISABLED"),
        trust_certs_file=trust if trust is not None and trust.strip() else None,
        providers=providers,
        authentication_enabled=None if enabled_raw is None else _as_bool(enabled_raw, False),
        raw={k: v for k, v in props.items() if k.startswith("openID")},
    )


def parse(text: str, source: str) -> BrokerSettings:
    """``text`` (a broker.conf or PULSAR_PREFIX_* entries) as the provider's settings."""
    if len(text) > MAX_CONFIG_BYTES:
        raise BrokerConfigError(f"{source}: larger than {MAX_CONFIG_BYTES} bytes")
    props = read_properties(text)
    if not any(k.startswith("openID") for k in props):
        raise BrokerConfigError(
            f"{source}: no openID* settings found (a broker.conf with openIDAllowedTokenIssuers=..., "
            f"or {ENV_PREFIX}openID... entries of a Helm values file)"
        )
    return settings(props, source)
