"""Pure: the function's secrets map -> `env[].valueFrom.secretKeyRef`, and the instance's
environment-based secrets provider.

Only references are written (Secret name and key); a secret value is never read, copied or
reported. Pulsar's own admission messages are kept verbatim.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from webhook.core import bounded, command, naming, rules
from webhook.core.bounded import DEFAULT_LIMITS, Limits
from webhook.core.rules import Finding
from webhook.core.workload import Runtime

ENTRY = rules.declare(
    "secrets/entry",
    "Pulsar's checks with Pulsar's messages, plus env var, Secret and key names; at most "
    "`limits.maxSecrets` entries",
)

JAVA_PROVIDER = "org.apache.pulsar.functions.secretsprovider.EnvironmentBasedSecretsProvider"
PYTHON_PROVIDER = "secretsprovider.EnvironmentBasedSecretsProvider"
PROVIDER_FLAG = "--secrets_provider"

# KubernetesSecretsProviderConfigurator.doAdmissionChecks, verbatim
NOT_A_MAP = "Kubernetes Secret should be a Map containing id/key pairs"
TOO_SMALL = "Kubernetes Secret should contain id and key"
NO_PATH = "Kubernetes Secret should contain id information"
NO_KEY = "Kubernetes Secret should contain key information"


@dataclass(frozen=True)
class SecretRef:
    env: str
    secret: str  # the Secret's name (Pulsar calls it `path`)
    key: str


def parse(
    raw: str | None, source: str, limits: Limits = DEFAULT_LIMITS
) -> tuple[list[SecretRef], list[Finding]]:
    """The valid entries of a secrets map, and a `secrets/entry` finding per invalid one; a
    map beyond `limits.max_secrets` entries is refused whole."""
    if raw is None or raw.strip() == "":
        return [], []
    try:
        doc = bounded.loads(raw, limits)
    except bounded.JsonLimitError as exc:
        return [], [Finding(ENTRY, source, str(exc))]
    if doc is None:
        return [], []
    if not isinstance(doc, Mapping):
        return [], [Finding(ENTRY, source, "must be a JSON object {ENV: {path, key}}")]
    if len(doc) > limits.max_secrets:
        too_many = f"has {len(doc)} entries; at most {limits.max_secrets} are allowed (webhook.limits.maxSecrets)"
        return [], [Finding(ENTRY, source, too_many)]
    refs: list[SecretRef] = []
    problems: list[Finding] = []
    for env, value in doc.items():
        where = f"{source}[{env}]"
        message = _entry_problem(env, value)
        if message:
            problems.append(Finding(ENTRY, where, message))
        else:
            refs.append(SecretRef(env=env, secret=value["path"], key=value["key"]))
    return refs, problems


def _entry_problem(env: str, value: Any) -> str | None:
    if not isinstance(value, Mapping):
        return NOT_A_MAP
    if len(value) < 2:
        return TOO_SMALL
    if "path" not in value:
        return NO_PATH
    if "key" not in value:
        return NO_KEY
    secret, key = value["path"], value["key"]
    if not isinstance(secret, str) or not isinstance(key, str):
        return "path and key must be strings (the Secret's name and a key in it)"
    if not naming.is_env_var_name(env):
        return f"{env!r} is not a valid environment variable name (letters, digits, '_', '-', '.'; not starting with a digit)"
    if not naming.is_dns1123_subdomain(secret):
        return f"path {secret!r} is not a valid Secret name (lower-case DNS-1123 subdomain)"
    if not naming.is_secret_key(key):
        return f"key {key!r} is not a valid Secret key (letters, digits, '-', '_', '.')"
    return None


def env_entry(ref: SecretRef) -> dict[str, Any]:
    return {"name": ref.env, "valueFrom": {"secretKeyRef": {"name": ref.secret, "key": ref.key}}}


def apply(container: dict[str, Any], refs: list[SecretRef]) -> list[str]:
    """Ensure one env entry per secret; returns warnings. (The environment-based provider on
    the command line is `set_provider`'s.)"""
    if not refs:
        return []
    warnings: list[str] = []
    env: list[dict[str, Any]] = container.setdefault("env", [])
    # one pass to index the existing entries by name, so the work is linear in env + refs
    positions: dict[object, list[int]] = {}
    for index, item in enumerate(env):
        positions.setdefault(item.get("name"), []).append(index)
    dropped: set[int] = set()
    for ref in refs:
        wanted = env_entry(ref)
        same_name = positions.get(ref.env, [])
        if len(same_name) == 1 and env[same_name[0]] == wanted:
            continue
        if same_name:
            # the old definition may hold a literal secret: say that it changed, never what it was
            warnings.append(
                f"env {ref.env}: replaced its definition with Secret {ref.secret} key {ref.key}"
            )
            env[same_name[0]] = wanted
            dropped.update(same_name[1:])
            positions[ref.env] = same_name[:1]
        else:
            positions[ref.env] = [len(env)]
            env.append(wanted)
    if dropped:
        env[:] = [item for index, item in enumerate(env) if index not in dropped]
    return warnings


def set_provider(script: command.Edit, runtime: Runtime) -> list[str]:
    """The environment-based secrets provider on the instance command; returns warnings."""
    if runtime == "GO":
        return [
            "Go functions have no secrets provider (Pulsar TODO #8425): env vars are set, the instance will not read them via context.get_secret"
        ]
    provider = JAVA_PROVIDER if runtime == "JAVA" else PYTHON_PROVIDER
    current = script.get(PROVIDER_FLAG)
    if current == provider:
        return []
    script.set(PROVIDER_FLAG, provider)
    if current is None or script.refused:
        return []
    return [f"{PROVIDER_FLAG}: replaced the previous provider with {provider.rsplit('.', 1)[-1]}"]
