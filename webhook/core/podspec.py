"""Pure: judge the pod template a function workload ends up with — its labels, annotations,
tolerations, nodeSelector, volumes and every container's mounts — whoever put them there (the
function's options, the worker, or someone editing the StatefulSet on UPDATE).

What the cluster's own config (`runtimeCustomizerConfig`, the selector the worker derives from
`customLabels`) puts there is trusted; everything else is held to `webhook.pod` and the
customizer's allowed keys.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping

from webhook.core import customizer, naming, rules, shape, tokens
from webhook.core.config import Config, RuntimeOptions
from webhook.core.rules import Finding

AUTH_MOUNTS = rules.declare(
    "pod/auth-mounts",
    "only the function container mounts the token volume (or whatever it mounts at "
    "`/etc/auth`), and no other container mounts anything at or under `/etc/auth`",
)
HOST_PATH = rules.declare(
    "pod/host-path",
    "every `hostPath` volume lies under one of `pod.allowedHostPaths` (default: none)",
)

TEMPLATE = "spec.template"
POD = "spec.template.spec"
# KubernetesRuntime gives every function pod these three (reference: pulsar-runtime.md §4)
WORKER_TOLERATIONS = tuple(
    {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 10}
    for key in (
        "node.kubernetes.io/not-ready",
        "node.alpha.kubernetes.io/notReady",
        "node.alpha.kubernetes.io/unreachable",
    )
)


def check(
    obj: shape.StatefulSet,
    *,
    container_index: int,
    config: Config,
    requested: RuntimeOptions | None,
) -> list[Finding]:
    """Findings for the resulting pod template (an object that passed the shape check, nulls
    removed: every field read here is declared in `shape`). `requested` are the function's own
    options: tolerations and nodeSelector keys they ask for are already judged (with the
    option's path) by the customizer rules, so they are not reported twice."""
    template = obj["spec"]["template"]
    meta = template.get("metadata", {})
    pod = template["spec"]
    selector = obj["spec"].get("selector", {}).get("matchLabels", {})
    cluster = config.cluster_options
    found: list[Finding] = []
    found += _labels(meta.get("labels", {}), selector, cluster, requested, config)
    found += _annotations(meta.get("annotations", {}), cluster, requested, config)
    if config.allowed_toleration_keys:
        found += _tolerations(pod, cluster, requested, config)
    if config.allowed_node_selector_keys:
        found += _node_selector(pod, cluster, requested, config)
    found += _auth_mounts(pod, container_index)
    found += _host_paths(pod, config)
    return found


def _same_label(value: object, wanted: str | None, config: Config) -> bool:
    return wanted is not None and value in (
        wanted,
        naming.to_label_value(wanted, config.label_style),
    )


def _labels(
    labels: Mapping[str, str],
    selector: Mapping[str, str],
    cluster: RuntimeOptions,
    requested: RuntimeOptions | None,
    config: Config,
) -> list[Finding]:
    denied = config.pod.denied_label_matcher
    if denied is None:
        return []
    asked = requested.extra_labels if requested is not None else {}
    found = []
    for key, value in labels.items():
        if key in selector or not denied.fullmatch(key):
            continue
        if _same_label(value, cluster.extra_labels.get(key), config):
            continue
        if _same_label(value, asked.get(key), config):
            continue  # reported at the option that asked for it (customizer.check)
        found.append(
            Finding(
                customizer.POD_LABELS,
                f"{TEMPLATE}.metadata.labels[{key}]",
                customizer.denied_label_message(key),
            )
        )
    return found


def _annotations(
    annotations: Mapping[str, str],
    cluster: RuntimeOptions,
    requested: RuntimeOptions | None,
    config: Config,
) -> list[Finding]:
    denied = config.pod.denied_annotation_matcher
    if denied is None:
        return []
    asked = requested.extra_annotations if requested is not None else {}
    found = []
    for key, value in annotations.items():
        if not denied.fullmatch(key) or value in (
            cluster.extra_annotations.get(key),
            asked.get(key),
        ):
            continue
        found.append(
            Finding(
                customizer.POD_ANNOTATIONS,
                f"{TEMPLATE}.metadata.annotations[{key}]",
                customizer.denied_annotation_message(key),
            )
        )
    return found


def _tolerations(
    pod: shape.PodSpec,
    cluster: RuntimeOptions,
    requested: RuntimeOptions | None,
    config: Config,
) -> list[Finding]:
    exempt = {
        customizer.toleration_identity(t) for t in (*WORKER_TOLERATIONS, *cluster.tolerations)
    }
    if requested is not None:
        exempt |= {customizer.toleration_identity(t) for t in requested.tolerations}
    found = []
    for index, toleration in enumerate(pod.get("tolerations", [])):
        key = toleration.get("key")
        if (
            key in config.allowed_toleration_keys
            or customizer.toleration_identity(toleration) in exempt
        ):
            continue
        shown = key if isinstance(key, str) else "(none: tolerates every taint)"
        found.append(
            Finding(
                customizer.TOLERATIONS,
                f"{POD}.tolerations[{index}]",
                f"toleration key {shown} is not allowed; allowed: {', '.join(config.allowed_toleration_keys)}",
            )
        )
    return found


def _node_selector(
    pod: shape.PodSpec,
    cluster: RuntimeOptions,
    requested: RuntimeOptions | None,
    config: Config,
) -> list[Finding]:
    asked = requested.node_selector_labels if requested is not None else {}
    found = []
    for key, value in pod.get("nodeSelector", {}).items():
        if key in config.allowed_node_selector_keys:
            continue
        if cluster.node_selector_labels.get(key) == value or asked.get(key) == value:
            continue
        found.append(
            Finding(
                customizer.NODE_SELECTOR,
                f"{POD}.nodeSelector[{key}]",
                f"nodeSelector key {key} is not allowed; allowed: {', '.join(config.allowed_node_selector_keys)}",
            )
        )
    return found


def _under(path: str, root: str) -> bool:
    path, root = posixpath.normpath(path), posixpath.normpath(root)
    return path == root or path.startswith(root.rstrip("/") + "/")


def _auth_mounts(pod: shape.PodSpec, function_index: int) -> list[Finding]:
    """Only the function container may hold the token: the volumes it mounts at /etc/auth and
    every projected service-account token volume belong to it alone."""
    containers = pod["containers"]
    function = containers[function_index] if function_index < len(containers) else {}
    auth_volumes = {tokens.VOLUME}
    for volume in pod.get("volumes", []):
        sources = volume.get("projected", {}).get("sources", [])
        if any("serviceAccountToken" in s for s in sources):
            auth_volumes.add(str(volume.get("name")))
    for mount in function.get("volumeMounts", []):
        if _under(mount.get("mountPath", ""), tokens.MOUNT_PATH):
            auth_volumes.add(str(mount.get("name")))
    found = []
    for key, group in (
        ("initContainers", pod.get("initContainers", [])),
        ("containers", containers),
    ):
        for ci, container in enumerate(group):
            if key == "containers" and ci == function_index:
                continue
            for mi, mount in enumerate(container.get("volumeMounts", [])):
                name, path = str(mount.get("name")), mount.get("mountPath", "")
                if name in auth_volumes:
                    why = f"mounts the function's credentials volume {name}"
                elif _under(path, tokens.MOUNT_PATH):
                    why = f"mounts {name} at {path}"
                else:
                    continue
                found.append(
                    Finding(
                        AUTH_MOUNTS,
                        f"{POD}.{key}[{ci}].volumeMounts[{mi}]",
                        f"container {container.get('name')} {why}; only the function container may use {tokens.MOUNT_PATH} and its token",
                    )
                )
    return found


def _host_paths(pod: shape.PodSpec, config: Config) -> list[Finding]:
    allowed = config.pod.allowed_host_paths
    found = []
    for index, volume in enumerate(pod.get("volumes", [])):
        host = volume.get("hostPath")
        if host is None:
            continue
        path = host.get("path")
        if path is not None and any(_under(path, root) for root in allowed):
            continue
        where = "none are allowed" if not allowed else f"allowed: {', '.join(allowed)}"
        found.append(
            Finding(
                HOST_PATH,
                f"{POD}.volumes[{index}].hostPath",
                f"volume {volume.get('name')} mounts a node directory; {where} (webhook.pod.allowedHostPaths)",
            )
        )
    return found
