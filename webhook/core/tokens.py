"""Pure: the projected service-account token (plus the broker's CA) at /etc/auth, the
instance's auth flags, and the function's service account.

The worker's KubernetesServiceAccountTokenAuthProvider mounts a `ca-cert` Secret volume and
the `service-account-token` projected volume both at /etc/auth, which Kubernetes rejects as a
duplicate mountPath. We keep one projected volume with two sources, mounted once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from webhook.core import command, naming, rules
from webhook.core.config import Config
from webhook.core.rules import Finding
from webhook.core.workload import FunctionDetails

AUDIENCE = rules.declare("tokens/audience", "audience present when required, and allowed")
EXPIRATION = rules.declare("tokens/expiration", "within [600, `maxExpirationSeconds`]")
MOUNT_PATH_CLASH = rules.declare("tokens/mount-path", "no container mounts two volumes at one path")

VOLUME = "service-account-token"
WORKER_CA_VOLUME = "ca-cert"
MOUNT_PATH = "/etc/auth"
TOKEN_PATH = "token"
CA_KEY = "ca.crt"
AUTH_PLUGIN = "org.apache.pulsar.client.impl.auth.AuthenticationToken"
AUTH_PARAMS = f"file://{MOUNT_PATH}/{TOKEN_PATH}"
TRUST_PATH = f"{MOUNT_PATH}/{CA_KEY}"
# Go reads these from -instance-conf rather than from flags
GO_KEYS = {
    "--client_auth_plugin": "clientAuthenticationPlugin",
    "--client_auth_params": "clientAuthenticationParameters",
    "--tls_trust_cert_path": "tlsTrustCertsFilePath",
}
# the same settings on the `pulsar-admin ... functions download` the worker puts first
DOWNLOAD_FLAGS = {
    "--client_auth_plugin": "--auth-plugin",
    "--client_auth_params": "--auth-params",
    "--tls_trust_cert_path": "--tls-trust-cert-path",
}


@dataclass(frozen=True)
class Projection:
    """A serviceAccountToken projection found in the pod."""

    volume: str
    audience: str | None
    expiration_seconds: int | None
    path: str  # where in the object, for findings


def _token_source(source: Mapping[str, Any]) -> Mapping[str, Any] | None:
    found = source.get("serviceAccountToken")
    return found if isinstance(found, Mapping) else None


def _volume_by_name(pod: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    for volume in pod.get("volumes") or []:
        if volume.get("name") == name:
            return volume  # type: ignore[no-any-return]
    return None


def _projected_sources(volume: Mapping[str, Any]) -> list[Any]:
    projected = volume.get("projected")
    sources = projected.get("sources") if isinstance(projected, Mapping) else None
    return sources if isinstance(sources, list) else []


def _all_containers(pod: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [c for key in ("initContainers", "containers") for c in (pod.get(key) or [])]


# ---------------------------------------------------------------------------------------------
# repair: the worker's two volumes at one path -> one projected volume


def repair_layout(pod: dict[str, Any]) -> None:
    """Merge a Secret volume mounted at the same path as a projected token into that projection.

    Runs whether or not token projection is on: the worker's layout is refused by Kubernetes.
    """
    merged: set[str] = set()
    for container in _all_containers(pod):
        mounts = container.get("volumeMounts") or []
        by_path: dict[str, list[dict[str, Any]]] = {}
        for mount in mounts:
            by_path.setdefault(str(mount.get("mountPath")), []).append(mount)
        for shared in by_path.values():
            if len(shared) < 2:
                continue
            projected = next((m for m in shared if _is_token_volume(pod, m.get("name"))), None)
            if projected is None:
                continue
            for mount in shared:
                secret_volume = _volume_by_name(pod, str(mount.get("name")))
                if mount is projected or secret_volume is None or "secret" not in secret_volume:
                    continue
                _join_secret(
                    pod, projected_name=str(projected["name"]), secret_volume=secret_volume
                )
                mounts.remove(mount)
                merged.add(str(mount.get("name")))
    # repairing the worker's known defect overrides nothing a user wrote: no warning
    _drop_unused_secret_volumes(pod, merged=merged)


def _is_token_volume(pod: Mapping[str, Any], name: object) -> bool:
    volume = _volume_by_name(pod, str(name))
    return volume is not None and any(_token_source(s) for s in _projected_sources(volume))


def _join_secret(
    pod: Mapping[str, Any], *, projected_name: str, secret_volume: Mapping[str, Any]
) -> None:
    volume = _volume_by_name(pod, projected_name)
    assert volume is not None
    secret = secret_volume["secret"]
    source: dict[str, Any] = {}
    if secret.get("secretName") is not None:
        source["name"] = secret["secretName"]
    if secret.get("items"):
        source["items"] = secret["items"]
    if secret.get("optional") is not None:
        source["optional"] = secret["optional"]
    sources = volume["projected"]["sources"]
    if {"secret": source} not in sources:
        sources.append({"secret": source})


def _drop_unused_secret_volumes(pod: dict[str, Any], *, merged: set[str]) -> None:
    used = {m.get("name") for c in _all_containers(pod) for m in (c.get("volumeMounts") or [])}
    volumes = pod.get("volumes") or []
    pod_volumes = [v for v in volumes if v.get("name") not in merged or v.get("name") in used]
    if len(pod_volumes) != len(volumes):
        pod["volumes"] = pod_volumes


# ---------------------------------------------------------------------------------------------
# projection


def desired_sources(config: Config) -> list[dict[str, Any]]:
    token: dict[str, Any] = {}
    if config.token_audience:
        token["audience"] = config.token_audience
    token["expirationSeconds"] = config.token_expiration_seconds
    token["path"] = TOKEN_PATH
    sources: list[dict[str, Any]] = [{"serviceAccountToken": token}]
    if config.ca_secret_name:
        sources.append(
            {"secret": {"name": config.ca_secret_name, "items": [{"key": CA_KEY, "path": CA_KEY}]}}
        )
    return sources


def _audience(value: object) -> str:
    return repr(value) if value else "(API server default)"


def _is_ca_source(source: Mapping[str, Any]) -> bool:
    secret = source.get("secret")
    if not isinstance(secret, Mapping):
        return False
    items = secret.get("items") or []
    return not items or any(isinstance(i, Mapping) and i.get("path") == CA_KEY for i in items)


def project(pod: dict[str, Any], container: dict[str, Any], config: Config) -> list[str]:
    """Bring the token volume, its single mount and nothing else at /etc/auth to the config."""
    warnings: list[str] = []
    volumes: list[dict[str, Any]] = pod.setdefault("volumes", [])
    volume = _volume_by_name(pod, VOLUME)
    wanted = desired_sources(config)
    if volume is None:
        volumes.append({"name": VOLUME, "projected": {"sources": wanted}})
    else:
        current = _projected_sources(volume)
        old_token = next((_token_source(s) for s in current if _token_source(s)), None)
        if old_token is not None and (
            old_token.get("audience") != wanted[0]["serviceAccountToken"].get("audience")
            or old_token.get("expirationSeconds")
            != wanted[0]["serviceAccountToken"]["expirationSeconds"]
        ):
            warnings.append(
                f"volume {VOLUME}: token audience and expiration replaced with the configured "
                f"{_audience(config.token_audience)}, {config.token_expiration_seconds}"
            )
        others = [
            s
            for s in current
            if not _token_source(s) and not (config.ca_secret_name and _is_ca_source(s))
        ]
        new = {
            "name": VOLUME,
            "projected": {**(volume.get("projected") or {}), "sources": wanted + others},
        }
        if volume != new:
            volumes[volumes.index(volume)] = new
    warnings.extend(_single_mount(pod, container))
    return warnings


def _single_mount(pod: dict[str, Any], container: dict[str, Any]) -> list[str]:
    mounts: list[dict[str, Any]] = container.setdefault("volumeMounts", [])
    wanted = {"name": VOLUME, "mountPath": MOUNT_PATH, "readOnly": True}
    warnings = []
    keep: list[dict[str, Any]] = []
    placed = False
    for mount in mounts:
        if mount.get("name") == VOLUME or mount.get("mountPath") == MOUNT_PATH:
            if mount.get("name") != VOLUME:
                warnings.append(
                    f"removed mount of volume {mount.get('name')} at {MOUNT_PATH}: the token volume is mounted there"
                )
            if not placed:
                keep.append(wanted if mount.get("name") != VOLUME else {**mount, **wanted})
                placed = True
            continue
        keep.append(mount)
    if not placed:
        keep.append(wanted)
    if keep != mounts:
        container["volumeMounts"] = keep
        dropped = {m.get("name") for m in mounts} - {m.get("name") for m in keep}
        _drop_unused_secret_volumes(pod, merged={str(n) for n in dropped})
    return warnings


def auth_flags(config: Config) -> dict[str, str]:
    flags = {"--client_auth_plugin": AUTH_PLUGIN, "--client_auth_params": AUTH_PARAMS}
    if config.ca_secret_name:
        flags["--tls_trust_cert_path"] = TRUST_PATH
    return flags


def set_auth_flags(script: command.Edit, config: Config) -> list[str]:
    """Point the instance at the projected token (and CA); returns warnings for replaced values.

    Raises CommandError if Go's `-instance-conf` is not a JSON object we can edit.
    """
    warnings: list[str] = []
    conf = script.get_json("-instance-conf")
    members: dict[str, str] = {}
    for flag, value in auth_flags(config).items():
        if conf is not None:
            current = conf.get(GO_KEYS[flag])
            members[GO_KEYS[flag]] = value
        else:
            current = script.get(flag)
            script.set(flag, value)
        if current not in (None, "", value):
            # a replaced value is never shown: it may be a credential, whatever the flag
            warnings.append(f"{flag}: replaced the previous value with {value}")
    if conf is not None:
        script.set_json("-instance-conf", members)
    # the download step gets the same credentials (the worker writes both from one auth
    # config); only flags already there change
    for flag, value in auth_flags(config).items():
        script.set_download(DOWNLOAD_FLAGS[flag], value)
    return [] if script.refused else warnings


# ---------------------------------------------------------------------------------------------
# identity


def service_account_name(
    template: str, details: FunctionDetails, labels: Mapping[str, Any]
) -> str | None:
    """The per-function ServiceAccount name from the template (naming.service_account_name:
    a DNS-1123 label with a hash suffix, so distinct functions never share one)."""
    values = {
        "tenant": details.tenant or labels.get("tenant"),
        "namespace": details.namespace or labels.get("namespace"),
        "name": details.name or labels.get("name"),
    }
    if not template or any(v is None for v in values.values()):
        return None
    return naming.service_account_name(
        template,
        tenant=str(values["tenant"]),
        namespace=str(values["namespace"]),
        name=str(values["name"]),
    )


def set_identity(pod: dict[str, Any], *, account: str | None, automount: bool | None) -> list[str]:
    warnings = []
    if account is not None and pod.get("serviceAccountName") != account:
        current = pod.get("serviceAccountName")
        if current not in (None, "", "default"):
            warnings.append(f"serviceAccountName: replaced the previous account with {account}")
        pod["serviceAccountName"] = account
        pod.pop("serviceAccount", None)  # the deprecated alias must not disagree
    if automount is not None and pod.get("automountServiceAccountToken") != automount:
        pod["automountServiceAccountToken"] = automount
    return warnings


# ---------------------------------------------------------------------------------------------
# reading and checking


def projections(pod: Mapping[str, Any]) -> list[Projection]:
    found = []
    for vi, volume in enumerate(pod.get("volumes") or []):
        for si, source in enumerate(_projected_sources(volume)):
            token = _token_source(source) if isinstance(source, Mapping) else None
            if token is None:
                continue
            expiration = token.get("expirationSeconds")
            found.append(
                Projection(
                    volume=str(volume.get("name")),
                    audience=token.get("audience") or None,
                    expiration_seconds=expiration if isinstance(expiration, int) else None,
                    path=f"spec.template.spec.volumes[{vi}].projected.sources[{si}].serviceAccountToken",
                )
            )
    return found


def ca_secrets(pod: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(Secret name, key) pairs that provide /etc/auth/ca.crt through the token volume."""
    result = []
    for volume in pod.get("volumes") or []:
        for source in _projected_sources(volume):
            secret = source.get("secret") if isinstance(source, Mapping) else None
            if isinstance(secret, Mapping) and _is_ca_source(source):
                for item in secret.get("items") or [{"key": CA_KEY, "path": CA_KEY}]:
                    if item.get("path") == CA_KEY:
                        result.append((str(secret.get("name")), str(item.get("key"))))
    return result


def check(pod: Mapping[str, Any], config: Config) -> list[Finding]:
    findings = []
    for token in projections(pod):
        where = token.path
        if token.audience is None and config.require_audience:
            findings.append(
                Finding(
                    AUDIENCE,
                    where,
                    "an audience is required (webhook.tokens.requireAudience); set serviceAccountTokenAudience",
                )
            )
        if config.allowed_audiences and (token.audience or "") not in config.allowed_audiences:
            findings.append(
                Finding(
                    AUDIENCE,
                    f"{where}.audience",
                    f"audience {token.audience or '(API server default)'!r} is not allowed; use one of: {', '.join(config.allowed_audiences)}",
                )
            )
        expiration = token.expiration_seconds
        if expiration is None or not 600 <= expiration <= config.max_expiration_seconds:
            findings.append(
                Finding(
                    EXPIRATION,
                    f"{where}.expirationSeconds",
                    f"{expiration if expiration is not None else 'unset'} is outside [600, {config.max_expiration_seconds}] seconds",
                )
            )
    for key in ("initContainers", "containers"):
        for ci, container in enumerate(pod.get(key) or []):
            seen: dict[str, str] = {}
            for mi, mount in enumerate(container.get("volumeMounts") or []):
                path = str(mount.get("mountPath"))
                if path in seen:
                    findings.append(
                        Finding(
                            MOUNT_PATH_CLASH,
                            f"spec.template.spec.{key}[{ci}].volumeMounts[{mi}]",
                            f"volumes {seen[path]} and {mount.get('name')} are both mounted at {path}; "
                            "Kubernetes refuses this: use one projected volume with both sources",
                        )
                    )
                else:
                    seen[path] = str(mount.get("name"))
    return findings
