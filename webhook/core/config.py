"""Pure: a functions_worker.yml (plus our `webhook:` section) -> one frozen, validated Config.

The file is the one the Pulsar worker already uses; keys the webhook does not honour are
ignored, as the worker ignores unknown keys. Our own `webhook:` section is declared once, in
`WEBHOOK_KEYS` (each key, the Config field it sets, its reader), and is strict: a typo there is
an error naming the key. Every error is one line: `<key path>: <problem>`.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Final, Literal

import yaml

from webhook.core import quantity, rules
from webhook.core.bounded import Limits
from webhook.core.errors import UserError
from webhook.core.gson import JsonNumber
from webhook.core.rules import ACTIONS, Action

_PKG = "org.apache.pulsar.functions"
KUBERNETES_RUNTIME_FACTORY = f"{_PKG}.runtime.kubernetes.KubernetesRuntimeFactory"
KUBERNETES_SECRETS_CONFIGURATOR = (
    f"{_PKG}.secretsproviderconfigurator.KubernetesSecretsProviderConfigurator"
)
DEFAULT_SECRETS_CONFIGURATOR = (
    f"{_PKG}.secretsproviderconfigurator.DefaultSecretsProviderConfigurator"
)
SA_TOKEN_AUTH_PROVIDER = f"{_PKG}.auth.KubernetesServiceAccountTokenAuthProvider"
SECRETS_TOKEN_AUTH_PROVIDER = f"{_PKG}.auth.KubernetesSecretsTokenAuthProvider"
BASIC_CUSTOMIZER = f"{_PKG}.runtime.kubernetes.BasicKubernetesManifestCustomizer"

MIN_TOKEN_EXPIRATION = 600
DEFAULT_TOKEN_EXPIRATION = 3600


class ConfigError(UserError, ValueError):
    """Invalid configuration; the message is one line naming the key and the problem."""


@dataclass(frozen=True)
class Resources:
    """Pulsar's per-instance Resources (cpu cores, ram bytes) as the worker config gives them."""

    cpu: float | None = None
    ram: int | None = None


@dataclass(frozen=True)
class RuntimeOptions:
    """BasicKubernetesManifestCustomizer's options (runtimeCustomizerConfig/customRuntimeOptions)."""

    job_name: str | None = None
    job_namespace: str | None = None
    extra_labels: Mapping[str, str] = field(default_factory=dict)
    extra_annotations: Mapping[str, str] = field(default_factory=dict)
    node_selector_labels: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    # {"limits": {"cpu": "2"}, "requests": {...}}; quantities as strings
    resource_requirements: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


# Label keys other workloads' Services, NetworkPolicies and controllers commonly select on;
# a function's pod must not carry them (pod/labels), unless the selector or the cluster's own
# config put them there.
DEFAULT_DENIED_LABEL_KEYS: tuple[str, ...] = (
    "app",
    "app.kubernetes.io/*",
    "component",
    "k8s-app",
    "name",
    "role",
    "tier",
    "release",
    "run",
    "version",
    "controller-revision-hash",
    "pod-template-hash",
    "statefulset.kubernetes.io/*",
    "apps.kubernetes.io/*",
    "kubernetes.io/*",
    "*.kubernetes.io/*",
    "k8s.io/*",
    "*.k8s.io/*",
    "istio.io/*",
    "*.istio.io/*",
    "pf-webhook/*",
)
# Annotations that change a pod's security (AppArmor, seccomp, service-mesh injection).
DEFAULT_DENIED_ANNOTATION_KEYS: tuple[str, ...] = (
    "container.apparmor.security.beta.kubernetes.io/*",
    "seccomp.security.alpha.kubernetes.io/*",
    "container.seccomp.security.alpha.kubernetes.io/*",
    "*.security.kubernetes.io/*",
    "sidecar.istio.io/*",
    "*.istio.io/*",
    "linkerd.io/*",
    "config.linkerd.io/*",
    "pf-webhook/*",
)


@dataclass(frozen=True)
class PodPolicy:
    """What the resulting pod template may carry (rules pod/*); key patterns use `*`."""

    denied_label_keys: tuple[str, ...] = DEFAULT_DENIED_LABEL_KEYS
    denied_annotation_keys: tuple[str, ...] = DEFAULT_DENIED_ANNOTATION_KEYS
    allowed_host_paths: tuple[str, ...] = ()

    @cached_property
    def denied_label_matcher(self) -> re.Pattern[str] | None:
        """denied_label_keys as one regex, compiled once per configuration."""
        return _key_matcher(self.denied_label_keys)

    @cached_property
    def denied_annotation_matcher(self) -> re.Pattern[str] | None:
        """denied_annotation_keys as one regex, compiled once per configuration."""
        return _key_matcher(self.denied_annotation_keys)


def _key_matcher(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    """One regex for label/annotation key patterns (`*` matches anything), so each key costs
    one match whatever the number of patterns; None for no patterns."""
    parts = [fnmatch.translate(p) for p in patterns]
    return re.compile("|".join(parts)) if parts else None


@dataclass(frozen=True)
class ConnectionLimits:
    """What one network peer can hold on the HTTPS port before any authentication
    (`webhook.server.connections`). The API server's client drops its idle connections after
    90 s (Go's `IdleConnTimeout`); our idle timeout is longer, so the client always closes
    first. A server closing a pooled connection races the client's next request on it, and Go
    does not retry a POST whose write failed (seen as `write: broken pipe` under load)."""

    max_connections: int = 1000
    handshake_timeout_seconds: float = 5.0
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 10.0
    idle_timeout_seconds: float = 120.0
    max_header_bytes: int = 8190
    max_body_bytes: int = 3 * 1024 * 1024
    max_body_bytes_in_flight: int = 32 * 1024 * 1024


@dataclass(frozen=True)
class ServerSettings:
    port: int = 8443
    metrics_port: int = 8080
    cert_dir: str = "certs"
    client_ca: str | None = None
    tls_min_version: Literal["1.2", "1.3"] = "1.2"
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)


@dataclass(frozen=True)
class KubeSettings:
    kubeconfig: str | None = None
    timeout_seconds: float = 2.0
    # where functions run: Secrets are watched only there (`serve --function-namespace`);
    # empty: cluster-wide
    function_namespaces: tuple[str, ...] = ()


@dataclass(frozen=True)
class Config:
    # features, following the worker's class names
    secrets_enabled: bool = True
    tokens_enabled: bool = False
    token_secret_auth: bool = False
    customizer_enabled: bool = True
    # functionRuntimeFactoryConfigs / kubernetesContainerFactory
    job_namespace: str | None = None
    job_name: str | None = None
    custom_labels: Mapping[str, str] = field(default_factory=dict)
    token_audience: str | None = None
    token_expiration_seconds: int = DEFAULT_TOKEN_EXPIRATION
    ca_secret_name: str | None = None
    # runtimeCustomizerConfig
    cluster_options: RuntimeOptions = field(default_factory=RuntimeOptions)
    # resource policy
    min_resources: Resources | None = None
    max_resources: Resources | None = None
    granularities: Resources | None = None
    lock_step: bool = False
    # webhook: section
    label_style: Literal["documented", "pulsar-runtime"] = "documented"
    secrets_verify: Literal["off", "warn", "deny"] = "warn"
    allowed_audiences: tuple[str, ...] = ()
    require_audience: bool = False
    max_expiration_seconds: int = 86400
    service_account_template: str = ""
    automount_service_account_token: bool | None = None
    allowed_options: tuple[str, ...] = ()
    allowed_toleration_keys: tuple[str, ...] = ()
    allowed_node_selector_keys: tuple[str, ...] = ()
    max_container_resources: Mapping[str, str] = field(default_factory=dict)
    pod: PodPolicy = field(default_factory=PodPolicy)
    limits: Limits = field(default_factory=Limits)
    enforcement: Literal["deny", "warn", "audit"] = "deny"
    rules: Mapping[str, Action] = field(default_factory=dict)
    server: ServerSettings = field(default_factory=ServerSettings)
    kube: KubeSettings = field(default_factory=KubeSettings)
    # things worth a warning when the config is loaded (e.g. the extractLabels typo)
    notes: tuple[str, ...] = ()

    def action(self, rule: str) -> Action:
        """The action for `rule`: its own setting, else (secrets/exists) secrets.verify, else
        the global enforcement."""
        if rule in self.rules:
            return self.rules[rule]
        if rule == "secrets/exists":
            return self.secrets_verify
        declared = rules.find(rule)
        return declared.default if declared and declared.default else self.enforcement


def default_config() -> Config:
    """Built-in defaults: naming, secrets and the (empty) customizer on; tokens off."""
    return Config()


WORKER_KEYS = (
    "authenticationEnabled",
    "functionRuntimeFactoryClassName",
    "functionRuntimeFactoryConfigs",
    "kubernetesContainerFactory",
    "secretsProviderConfiguratorClassName",
    "functionAuthProviderClassName",
    "runtimeCustomizerClassName",
    "runtimeCustomizerConfig",
)

OPTION_FIELDS = (
    "jobName",
    "jobNamespace",
    "extraLabels",
    "extraAnnotations",
    "nodeSelectorLabels",
    "tolerations",
    "resourceRequirements",
)


# ---------------------------------------------------------------------------------------------
# small typed readers: each names the key path in its error


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _map(value: object, path: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{path}: expected a mapping, got {_type_name(value)}")
    return value


def _str(value: object, path: str, *, allow_none: bool = True) -> str | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{path}: expected a string, got {_type_name(value)}")
    return value


def _bool(value: object, path: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{path}: expected true or false, got {value!r}")
    return value


_JACKSON_BOOLEANS = {
    "true": True,
    "True": True,
    "TRUE": True,
    "false": False,
    "False": False,
    "FALSE": False,
}


def _worker_bool(value: object, path: str) -> bool:
    """A boolean worker key as Jackson reads it: true/false, or the strings "true"/"false"."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value in _JACKSON_BOOLEANS:
        return _JACKSON_BOOLEANS[value]
    raise ConfigError(f"{path}: expected true or false, got {value!r} (the worker refuses it)")


def _int(value: object, path: str) -> int:
    """An integer given as a number or a numeric string (Pulsar's docs quote numbers)."""
    if isinstance(value, bool):
        raise ConfigError(f"{path}: expected a whole number, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]{1,30}", value.strip()):
        return int(value.strip())
    raise ConfigError(f"{path}: expected a whole number, got {value!r}")


def _long(value: object, path: str) -> int:
    """A long field: Gson reads 30.0 as 30 (a whole-valued JSON number), YAML gives an int."""
    if isinstance(value, JsonNumber):
        number = value.value
        if not math.isfinite(number) or number != int(number):
            raise ConfigError(f"{path}: expected a whole number, got {value.text}")
        return int(number)
    return _int(value, path)


def _number(value: object, path: str) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{path}: expected a number, got {value!r}")
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    if isinstance(value, str) and re.fullmatch(
        r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", value.strip()
    ):
        return float(value)
    raise ConfigError(f"{path}: expected a number, got {value!r}")


def _str_map(value: object, path: str) -> dict[str, str]:
    """A map of strings; numbers and booleans are coerced to strings, as Gson/Jackson do."""
    result: dict[str, str] = {}
    for key, item in _map(value, path).items():
        if item is None:
            continue  # `~`/null: accepted by the worker, which then sets no such label
        if isinstance(item, JsonNumber):
            item = item.text  # Gson hands a JSON number to a String field as written
        elif isinstance(item, bool):
            item = "true" if item else "false"
        elif isinstance(item, int | float):
            item = str(item)
        if not isinstance(item, str):
            raise ConfigError(f"{path}.{key}: expected a string, got {_type_name(item)}")
        result[str(key)] = item
    return result


def _str_list(value: object, path: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{path}: expected a list of strings")
    return tuple(value)


def _choice(value: object, path: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"{path}: expected one of {', '.join(choices)}, got {value!r}")
    return str(value)


def _known_keys(section: Mapping[str, Any], path: str, known: tuple[str, ...]) -> None:
    for key in section:
        if key not in known:
            raise ConfigError(f"{path}.{key}: unknown key (known: {', '.join(known)})")


# ---------------------------------------------------------------------------------------------
# runtime options (shared with the per-function customRuntimeOptions parser)

_TOLERATION_KEYS = ("key", "operator", "value", "effect", "tolerationSeconds")


def parse_tolerations(value: object, path: str) -> tuple[Mapping[str, Any], ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError(f"{path}: expected a list of tolerations, got {_type_name(value)}")
    result = []
    for index, item in enumerate(value):
        where = f"{path}[{index}]"
        if not isinstance(item, Mapping):
            raise ConfigError(f"{where}: expected a toleration mapping, got {_type_name(item)}")
        toleration: dict[str, Any] = {}
        for key in _TOLERATION_KEYS:
            if item.get(key) is None:
                continue
            if key == "tolerationSeconds":
                toleration[key] = _long(item[key], f"{where}.{key}")
            else:
                toleration[key] = _str(item[key], f"{where}.{key}")
        result.append(toleration)
    return tuple(result)


CUSTOMIZER_RESOURCES = ("cpu", "memory")


def parse_resource_requirements(
    value: object, path: str, *, refuse_numbers: bool = False, notes: list[str] | None = None
) -> dict[str, dict[str, str]]:
    """limits/requests, cpu and memory only: Pulsar's Basic customizer drops every other key
    (nvidia.com/gpu, ephemeral-storage); we follow it and say so in a note."""
    result: dict[str, dict[str, str]] = {}
    for part, items in _map(value, path).items():
        if part not in ("limits", "requests"):
            continue  # V1ResourceRequirements' `claims` and unknown keys are not ours to set
        parsed: dict[str, str] = {}
        for name, amount in _map(items, f"{path}.{part}").items():
            where = f"{path}.{part}.{name}"
            if refuse_numbers and isinstance(amount, int | float) and not isinstance(amount, bool):
                raise ConfigError(
                    f"{where}: {amount!r} is a YAML number, which the worker refuses at start-up "
                    "(Cannot construct instance of `io.kubernetes.client.custom.Quantity` from "
                    f'Number value); quote it: "{amount}"'
                )
            if isinstance(amount, JsonNumber):
                amount = amount.text
            try:
                quantity.parse(amount)
            except quantity.QuantityError as exc:
                raise ConfigError(f"{where}: {exc}") from None
            if name not in CUSTOMIZER_RESOURCES:
                if notes is not None:
                    notes.append(
                        f"{where} is dropped: the worker's customizer applies only cpu and memory"
                    )
                continue
            parsed[str(name)] = quantity.normalise(amount)
        if parsed:
            result[part] = parsed
    return result


def parse_runtime_options(
    value: Mapping[str, Any], path: str, *, refuse_numbers: bool = False
) -> tuple[RuntimeOptions, list[str]]:
    """Parse customizer options; returns the options and notes (misspelled or unknown keys).

    `refuse_numbers`: resource quantities written as YAML numbers are an error, as for the
    worker reading runtimeCustomizerConfig with Jackson.
    """
    notes: list[str] = []
    labels = _str_map(value.get("extraLabels"), f"{path}.extraLabels")
    if "extractLabels" in value:
        notes.append(
            f"{path}.extractLabels is read as extraLabels (a typo in Pulsar's docs that the "
            "worker silently ignores)"
        )
        typo = _str_map(value.get("extractLabels"), f"{path}.extractLabels")
        labels = {**typo, **labels}
    unknown = sorted(set(value) - set(OPTION_FIELDS) - {"extractLabels"})
    if unknown:
        notes.append(f"{path}: unknown option(s) ignored: {', '.join(map(str, unknown))}")

    def _blank_none(raw: object, key: str) -> str | None:
        text = _str(raw, f"{path}.{key}")
        return text or None

    options = RuntimeOptions(
        job_name=_blank_none(value.get("jobName"), "jobName"),
        job_namespace=_blank_none(value.get("jobNamespace"), "jobNamespace"),
        extra_labels=labels,
        extra_annotations=_str_map(value.get("extraAnnotations"), f"{path}.extraAnnotations"),
        node_selector_labels=_str_map(
            value.get("nodeSelectorLabels"), f"{path}.nodeSelectorLabels"
        ),
        tolerations=parse_tolerations(value.get("tolerations"), f"{path}.tolerations"),
        resource_requirements=parse_resource_requirements(
            value.get("resourceRequirements"),
            f"{path}.resourceRequirements",
            refuse_numbers=refuse_numbers,
            notes=notes,
        ),
    )
    return options, notes


# ---------------------------------------------------------------------------------------------
# the worker's keys


def _resources(value: object, path: str) -> Resources | None:
    if value is None:
        return None
    section = _map(value, path)
    cpu = section.get("cpu")
    ram = section.get("ram")
    return Resources(
        cpu=None if cpu is None else _number(cpu, f"{path}.cpu"),
        ram=None if ram is None else _int(ram, f"{path}.ram"),
    )


def _class_flag(
    doc: Mapping[str, Any], key: str, *, on: str, off: tuple[str, ...] = ()
) -> bool | None:
    """True for the class that turns a feature on, False for accepted others, None if unset."""
    value = doc.get(key)
    if value is None or value == "":
        return None
    if value == on:
        return True
    if value in off:
        return False
    supported = ", ".join((on, *off))
    raise ConfigError(f"{key}: unsupported class {value!r} (supported: {supported})")


def _factory(doc: Mapping[str, Any], notes: list[str]) -> tuple[dict[str, Any], str]:
    """The runtime factory block the worker reads, and its name.

    With functionRuntimeFactoryClassName set, the worker reads functionRuntimeFactoryConfigs
    only and ignores the legacy kubernetesContainerFactory block; without it, the legacy block
    is used wholesale (nothing is merged key by key).
    """
    legacy = "kubernetesContainerFactory"
    current = "functionRuntimeFactoryConfigs"
    if doc.get("functionRuntimeFactoryClassName"):
        if doc.get(legacy) is not None:
            notes.append(
                f"{legacy} is ignored, as by the worker: functionRuntimeFactoryClassName is set"
            )
        if doc.get(current) is None:
            notes.append(
                f"{current} is missing: the worker fails to start without it (a null factory config)"
            )
        return dict(_map(doc.get(current), current)), current
    if doc.get(legacy) is not None:
        if doc.get(current) is not None:
            notes.append(
                f"{current} is ignored, as by the worker: without functionRuntimeFactoryClassName "
                f"it uses {legacy}"
            )
        return dict(_map(doc.get(legacy), legacy)), legacy
    return dict(_map(doc.get(current), current)), current


_JAVA_INT = range(-(2**31), 2**31)
_JAVA_LONG = re.compile(r"[+-]?[0-9]+")


def _token_expiration(value: object, path: str) -> int:
    """serviceAccountTokenExpirationSeconds as KubernetesServiceAccountTokenAuthProvider reads it:
    a long or a string Long.parseLong accepts; an int (an unquoted YAML number) is refused."""
    refused = ConfigError(
        f"{path}: Invalid value for serviceAccountTokenExpirationSeconds. Expected a long. "
        f'(the worker refuses {value!r} at start-up; write it quoted, e.g. "3600")'
    )
    if isinstance(value, bool):
        raise refused
    if isinstance(value, int):
        if value in _JAVA_INT:  # Jackson makes an Integer of it
            raise refused
        return value
    if isinstance(value, str) and _JAVA_LONG.fullmatch(value):
        return int(value)
    raise refused


def _auth_provider_config(
    section: Mapping[str, Any], path: str, *, strict: bool = True, notes: list[str] | None = None
) -> dict[str, Any]:
    """kubernetesFunctionAuthProviderConfig, with the worker's own messages for what it refuses.

    Unset expiration: the worker writes 0, which Kubernetes refuses; we use 3600 (a deliberate
    difference, README "Differences from the worker")."""
    secret = section.get("brokerClientTrustCertsSecretName")
    audience = section.get("serviceAccountTokenAudience")
    expiration_raw = section.get("serviceAccountTokenExpirationSeconds")
    if secret is not None and not isinstance(secret, str):
        raise ConfigError(
            f"{path}.brokerClientTrustCertsSecretName: Invalid value for "
            "brokerClientTrustCertsSecretName. Expected a string."
        )
    if audience is not None and not isinstance(audience, str):
        raise ConfigError(
            f"{path}.serviceAccountTokenAudience: Invalid value for serviceAccountTokenAudience. "
            "Expected a string."
        )
    expiration = DEFAULT_TOKEN_EXPIRATION
    if expiration_raw is not None:
        where = f"{path}.serviceAccountTokenExpirationSeconds"
        try:
            expiration = _token_expiration(expiration_raw, where)
        except ConfigError as exc:
            if strict:
                raise
            expiration = _int(expiration_raw, where)
            if notes is not None:
                notes.append(f"{exc} (not read by the worker while its auth provider is off)")
        if expiration < MIN_TOKEN_EXPIRATION:
            raise ConfigError(
                f"{path}.serviceAccountTokenExpirationSeconds: {expiration} is under "
                f"{MIN_TOKEN_EXPIRATION} (Kubernetes' minimum for projected tokens)"
            )
    return {
        "ca_secret_name": secret.strip() if secret and secret.strip() else None,
        "token_audience": audience or None,
        "token_expiration_seconds": expiration,
    }


# ---------------------------------------------------------------------------------------------
# our `webhook:` section, declared once: each key, the Config field it sets, and its reader

_KEEP: Final = object()  # a reader's answer for "leave the setting as it is"
_Reader = Callable[[Any, str], Any]  # (YAML value, key path) -> field value; ConfigError if bad


@dataclass(frozen=True)
class Key:
    """One key of the `webhook:` section: its dotted name under `webhook`, the Config field it
    sets (dotted into the nested settings), and the reader that turns the YAML value into the
    field's value or raises ConfigError naming the key. An absent key leaves the field as it
    is; so does a reader answering _KEEP."""

    name: str
    field: str
    read: _Reader


def _one_of(*choices: str, false_is: str | None = None) -> _Reader:
    def read(value: object, path: str) -> str:
        if value is False and false_is is not None:  # YAML reads a bare `off` as false
            value = false_is
        return _choice(value, path, choices)

    return read


def _in_range(read: Callable[[object, str], Any], lowest: float, highest: float) -> _Reader:
    def check(value: object, path: str) -> Any:
        amount = read(value, path)
        if not lowest <= amount <= highest:
            raise ConfigError(f"{path}: {amount} is not in [{lowest}, {highest}]")
        return amount

    return check


def _whole_in(lowest: int, highest: int) -> _Reader:
    return _in_range(_int, lowest, highest)


def _seconds_in(lowest: float, highest: float) -> _Reader:
    return _in_range(_number, lowest, highest)


def _max_expiration(value: object, path: str) -> int:
    maximum = _int(value, path)
    if maximum < MIN_TOKEN_EXPIRATION:
        raise ConfigError(f"{path}: {maximum} is under {MIN_TOKEN_EXPIRATION}")
    return maximum


def _account_template(value: object, path: str) -> str:
    template = _str(value, path) or ""
    try:
        template.format(tenant="t", namespace="n", name="f")
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(
            f"{path}: bad template {template!r} ({exc}); use {{tenant}}, {{namespace}} and {{name}}"
        ) from None
    return template


def _bool_or_keep(value: object, path: str) -> object:
    """true/false; null leaves the setting alone."""
    return _KEEP if value is None else _bool(value, path)


def _auto_or_bool(value: object, path: str) -> object:
    """`auto` follows the worker's class name (already read); true/false force it."""
    return _KEEP if value == "auto" else _bool(value, path)


def _allowed_options(value: object, path: str) -> tuple[str, ...]:
    allowed = _str_list(value, path)
    for option in allowed:
        if option not in OPTION_FIELDS:
            raise ConfigError(
                f"{path}: unknown option {option!r} (options: {', '.join(OPTION_FIELDS)})"
            )
    return allowed


def _max_resources(value: object, path: str) -> dict[str, str]:
    maximums = {}
    for name, amount in _map(value, path).items():
        if not quantity.is_quantity(amount):
            raise ConfigError(f"{path}.{name}: {amount!r} is not a quantity")
        maximums[str(name)] = quantity.normalise(amount)
    return maximums


def _rule_actions(value: object, path: str) -> object:
    actions: dict[str, Action] = {}
    for rule, action in _map(value, path).items():
        if rules.find(rule) is None:
            known = ", ".join(r.id for r in rules.declared())
            raise ConfigError(f"{path}.{rule}: unknown rule (rules: {known})")
        action = "off" if action is False else action
        actions[rule] = _choice(action, f"{path}.{rule}", ACTIONS)  # type: ignore[assignment]
    return actions or _KEEP


def _host_paths(value: object, path: str) -> tuple[str, ...]:
    paths = _str_list(value, path)
    for item in paths:
        if not item.startswith("/"):
            raise ConfigError(f"{path}: {item!r} is not an absolute path")
    return paths


def _cert_dir(value: object, path: str) -> str:
    return _str(value, path, allow_none=False) or ""


def _tls_version(value: object, path: str) -> str:
    text = str(value) if isinstance(value, float | int) else value  # YAML reads 1.2 as a number
    return _choice(text, path, ("1.2", "1.3"))


def _kube_timeout(value: object, path: str) -> float:
    timeout = _number(value, path)
    if not 0 < timeout <= 30:
        raise ConfigError(f"{path}: {timeout} is not in (0, 30]")
    return timeout


def _port(value: object, path: str) -> int:
    port = _int(value, path)
    if not 0 <= port <= 65535:
        raise ConfigError(f"{path}: {port} is not a port number")
    return port


WEBHOOK_KEYS: Final = (
    Key("naming.labelStyle", "label_style", _one_of("documented", "pulsar-runtime")),
    Key("secrets.verify", "secrets_verify", _one_of("off", "warn", "deny", false_is="off")),
    Key("tokens.allowedAudiences", "allowed_audiences", _str_list),
    Key("tokens.requireAudience", "require_audience", _bool),
    Key("tokens.maxExpirationSeconds", "max_expiration_seconds", _max_expiration),
    Key("tokens.serviceAccountName", "service_account_template", _account_template),
    Key("tokens.automountServiceAccountToken", "automount_service_account_token", _bool_or_keep),
    Key("customizer.enabled", "customizer_enabled", _auto_or_bool),
    Key("customizer.allowedOptions", "allowed_options", _allowed_options),
    Key("customizer.allowedTolerationKeys", "allowed_toleration_keys", _str_list),
    Key("customizer.allowedNodeSelectorKeys", "allowed_node_selector_keys", _str_list),
    Key("customizer.maxResources", "max_container_resources", _max_resources),
    Key("policy.enforcement", "enforcement", _one_of("deny", "warn", "audit")),
    Key("policy.rules", "rules", _rule_actions),
    Key("pod.deniedLabelKeys", "pod.denied_label_keys", _str_list),
    Key("pod.deniedAnnotationKeys", "pod.denied_annotation_keys", _str_list),
    Key("pod.allowedHostPaths", "pod.allowed_host_paths", _host_paths),
    Key("limits.maxJsonDepth", "limits.max_json_depth", _whole_in(8, 1_000_000)),
    Key("limits.maxNumberDigits", "limits.max_number_digits", _whole_in(20, 1_000_000)),
    Key("limits.maxSecrets", "limits.max_secrets", _whole_in(1, 1_000_000)),
    Key("limits.maxCommandLength", "limits.max_command_length", _whole_in(1024, 1_000_000)),
    Key("server.port", "server.port", _port),
    Key("server.metricsPort", "server.metrics_port", _port),
    Key("server.certDir", "server.cert_dir", _cert_dir),
    Key("server.clientCA", "server.client_ca", _str),
    Key("server.tlsMinVersion", "server.tls_min_version", _tls_version),
    Key("server.connections.maxConnections", "server.limits.max_connections", _whole_in(1, 100_000)),
    Key("server.connections.handshakeTimeoutSeconds", "server.limits.handshake_timeout_seconds", _seconds_in(0.1, 300)),
    Key("server.connections.headerTimeoutSeconds", "server.limits.header_timeout_seconds", _seconds_in(0.1, 300)),
    Key("server.connections.bodyTimeoutSeconds", "server.limits.body_timeout_seconds", _seconds_in(0.1, 300)),
    Key("server.connections.idleTimeoutSeconds", "server.limits.idle_timeout_seconds", _seconds_in(0.1, 3600)),
    Key("server.connections.maxHeaderBytes", "server.limits.max_header_bytes", _whole_in(1024, 1024**2)),
    Key("server.connections.maxBodyBytes", "server.limits.max_body_bytes", _whole_in(64 * 1024, 64 * 1024**2)),
    Key("server.connections.maxBodyBytesInFlight", "server.limits.max_body_bytes_in_flight", _whole_in(64 * 1024, 4 * 1024**3)),
    Key("kube.kubeconfig", "kube.kubeconfig", _str),
    Key("kube.timeoutSeconds", "kube.timeout_seconds", _kube_timeout),
)  # fmt: skip
# old name -> new name, under the same parent; the old one is read with a note
RENAMED: Final = {"webhook.server.limits": "webhook.server.connections"}

# the keys as a tree: section -> key -> Key or subsection, in declaration order
_Tree = dict[str, "Key | _Tree"]


def _tree(keys: tuple[Key, ...]) -> _Tree:
    root: _Tree = {}
    for key in keys:
        *sections, last = key.name.split(".")
        node = root
        for section in sections:
            child = node.setdefault(section, {})
            assert isinstance(child, dict)
            node = child
        node[last] = key
    return root


_WEBHOOK_TREE: Final = _tree(WEBHOOK_KEYS)


def _read_section(
    doc: Mapping[str, Any], tree: _Tree, path: str, changes: dict[str, Any], notes: list[str]
) -> None:
    """Read one mapping of the section against its part of the tree, in declaration order;
    unknown keys are errors, renamed ones are read under their new name with a note."""
    renamed = {old.rsplit(".", 1)[1]: new.rsplit(".", 1)[1] for old, new in RENAMED.items()
               if old.rsplit(".", 1)[0] == path}  # fmt: skip
    _known_keys({key: None for key in doc if key not in renamed}, path, tuple(tree))
    where = {name: name for name in tree}
    for old, new in renamed.items():
        if old in doc and new in doc:
            raise ConfigError(f"{path}.{old}: give {new} only ({old} is its old name)")
        if old in doc:
            notes.append(f"{path}.{old} is deprecated: write it as {path}.{new} (same keys)")
            where[new] = old
    for name, node in tree.items():
        written = where[name]
        if written not in doc:
            continue
        if isinstance(node, Key):
            value = node.read(doc[written], f"{path}.{written}")
            if value is not _KEEP:
                changes[node.field] = value
        else:
            _read_section(
                _map(doc[written], f"{path}.{written}"), node, f"{path}.{written}", changes, notes
            )


def _with(value: Any, changes: Mapping[str, Any]) -> Any:
    """`value` (a frozen dataclass) with dotted fields replaced, nested settings included."""
    direct = {name: v for name, v in changes.items() if "." not in name}
    nested: dict[str, dict[str, Any]] = {}
    for name, v in changes.items():
        if "." in name:
            head, rest = name.split(".", 1)
            nested.setdefault(head, {})[rest] = v
    for head, inner in nested.items():
        direct[head] = _with(getattr(value, head), inner)
    return replace(value, **direct)


def _webhook_section(section: Mapping[str, Any], base: Config) -> Config:
    changes: dict[str, Any] = {}
    notes: list[str] = []
    _read_section(section, _WEBHOOK_TREE, "webhook", changes, notes)
    config: Config = _with(base, changes)
    limits = config.server.limits
    if limits.max_body_bytes_in_flight < limits.max_body_bytes:
        where = (
            "limits" if "limits" in _map(section.get("server"), "webhook.server") else "connections"
        )
        raise ConfigError(
            f"webhook.server.{where}.maxBodyBytesInFlight: "
            f"{limits.max_body_bytes_in_flight} is under maxBodyBytes ({limits.max_body_bytes})"
        )
    return replace(config, notes=config.notes + tuple(notes)) if notes else config


def from_mapping(doc: Mapping[str, Any]) -> Config:
    """Build the Config from a parsed functions_worker.yml, reading the worker's keys as
    Pulsar's worker does (its FunctionRuntimeManager and KubernetesRuntimeFactory)."""
    changes: dict[str, Any] = {}
    notes: list[str] = []
    runtime_factory = doc.get("functionRuntimeFactoryClassName")
    if runtime_factory not in (None, "", KUBERNETES_RUNTIME_FACTORY):
        raise ConfigError(
            f"functionRuntimeFactoryClassName: unsupported class {runtime_factory!r} "
            f"(the webhook serves {KUBERNETES_RUNTIME_FACTORY})"
        )
    kubernetes = bool(runtime_factory) or doc.get("kubernetesContainerFactory") is not None
    secrets = _class_flag(
        doc,
        "secretsProviderConfiguratorClassName",
        on=KUBERNETES_SECRETS_CONFIGURATOR,
        off=(DEFAULT_SECRETS_CONFIGURATOR,),
    )
    auth = doc.get("functionAuthProviderClassName") or None
    if auth is None and kubernetes:
        auth = SECRETS_TOKEN_AUTH_PROVIDER  # the worker's default with the Kubernetes runtime
    if auth not in (None, SA_TOKEN_AUTH_PROVIDER, SECRETS_TOKEN_AUTH_PROVIDER):
        raise ConfigError(
            f"functionAuthProviderClassName: unsupported class {auth!r} "
            f"(supported: {SA_TOKEN_AUTH_PROVIDER}, {SECRETS_TOKEN_AUTH_PROVIDER})"
        )
    authentication = False
    if doc.get("authenticationEnabled") is not None:
        authentication = _worker_bool(doc["authenticationEnabled"], "authenticationEnabled")
    customizer = _class_flag(doc, "runtimeCustomizerClassName", on=BASIC_CUSTOMIZER)
    if any(key in doc for key in WORKER_KEYS):
        # A worker file: features follow the worker's class names, as in the worker. A file
        # holding only our `webhook:` section keeps the built-in feature defaults.
        changes["secrets_enabled"] = bool(secrets)
        # the worker uses the auth provider only with authenticationEnabled: true
        changes["tokens_enabled"] = authentication and auth == SA_TOKEN_AUTH_PROVIDER
        changes["token_secret_auth"] = authentication and auth == SECRETS_TOKEN_AUTH_PROVIDER
        changes["customizer_enabled"] = bool(customizer)
        if not authentication and doc.get("functionAuthProviderClassName"):
            notes.append(
                "functionAuthProviderClassName is not used: authenticationEnabled is not true "
                "(the worker ignores it too, so functions get no token)"
            )

    factory, block = _factory(doc, notes)

    def where(key: str) -> str:
        return f"{block}.{key}"

    changes["job_namespace"] = _str(factory.get("jobNamespace"), where("jobNamespace")) or None
    changes["job_name"] = _str(factory.get("jobName"), where("jobName")) or None
    changes["custom_labels"] = _str_map(factory.get("customLabels"), where("customLabels"))
    auth_path = where("kubernetesFunctionAuthProviderConfig")
    auth_section = _map(factory.get("kubernetesFunctionAuthProviderConfig"), auth_path)
    # The worker reads this section only when it uses the service-account provider; then we
    # refuse what it refuses, with its message. Otherwise a number is read as before (audits
    # compare tokens with it), with a note that the worker would refuse it once enabled.
    strict = bool(changes.get("tokens_enabled"))
    changes.update(_auth_provider_config(auth_section, auth_path, strict=strict, notes=notes))

    options, option_notes = parse_runtime_options(
        _map(doc.get("runtimeCustomizerConfig"), "runtimeCustomizerConfig"),
        "runtimeCustomizerConfig",
        refuse_numbers=bool(customizer),
    )
    changes["cluster_options"] = options
    changes["notes"] = tuple(notes + option_notes)
    changes["min_resources"] = _resources(
        doc.get("functionInstanceMinResources"), "functionInstanceMinResources"
    )
    changes["max_resources"] = _resources(
        doc.get("functionInstanceMaxResources"), "functionInstanceMaxResources"
    )
    changes["granularities"] = _resources(
        doc.get("functionInstanceResourceGranularities"), "functionInstanceResourceGranularities"
    )
    if doc.get("functionInstanceResourceChangeInLockStep") is not None:
        changes["lock_step"] = _worker_bool(
            doc["functionInstanceResourceChangeInLockStep"],
            "functionInstanceResourceChangeInLockStep",
        )
    config = replace(Config(), **changes)
    config = _webhook_section(_map(doc.get("webhook"), "webhook"), config)
    _cross_check(config)
    return config


def _cross_check(config: Config) -> None:
    if config.token_expiration_seconds > config.max_expiration_seconds:
        raise ConfigError(
            f"serviceAccountTokenExpirationSeconds: {config.token_expiration_seconds} is above "
            f"webhook.tokens.maxExpirationSeconds ({config.max_expiration_seconds})"
        )
    if (
        config.allowed_audiences
        and config.tokens_enabled
        and config.token_audience not in config.allowed_audiences
    ):
        raise ConfigError(
            f"serviceAccountTokenAudience: {config.token_audience!r} is not in "
            f"webhook.tokens.allowedAudiences ({', '.join(config.allowed_audiences)})"
        )
    if config.require_audience and config.tokens_enabled and not config.token_audience:
        raise ConfigError(
            "serviceAccountTokenAudience: must be set because webhook.tokens.requireAudience is true"
        )


def loads(text: str, *, source: str = "<config>") -> Config:
    """Parse YAML text (a functions_worker.yml); errors name `source` and the key."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigError(f"{source}:{where}: {problem}") from None
    if doc is None:
        return default_config()
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{source}: expected a mapping at the top, got {_type_name(doc)}")
    try:
        return from_mapping(doc)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
