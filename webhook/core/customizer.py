"""Pure: runtimeCustomizerConfig (cluster) ∪ customRuntimeOptions (function), and applying the
result to a StatefulSet, as Pulsar's BasicKubernetesManifestCustomizer would — minus its bugs.

Merge: jobName/jobNamespace function wins if non-empty; label, annotation and nodeSelector
maps per key, function wins; tolerations cluster then function, exact duplicates dropped;
resources per key, function wins. Every merge builds new values: one function's options can
never leak into another's (Pulsar #19478 and its residual resource leak).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webhook.core import gson, naming, quantity, rules
from webhook.core.bounded import DEFAULT_LIMITS, Limits
from webhook.core.config import Config, ConfigError, RuntimeOptions, parse_runtime_options
from webhook.core.rules import Finding

OPTIONS = rules.declare(
    "customizer/options",
    "options parse (as lenient Gson reads them); only allowed fields; no `extraLabels` "
    "entry overrides a selector key (denied by the mutating webhook, on the Service and "
    "the StatefulSet)",
)
TOLERATIONS = rules.declare(
    "customizer/tolerations",
    "only allowed toleration keys, whether the function asks for them or the pod template "
    "carries them (CREATE and UPDATE); the cluster's own `runtimeCustomizerConfig` "
    "entries are exempt",
)
NODE_SELECTOR = rules.declare(
    "customizer/node-selector",
    "only allowed nodeSelector keys, whether the function asks for them or the pod "
    "template carries them (CREATE and UPDATE); the cluster's own "
    "`runtimeCustomizerConfig` entries are exempt",
)
RESERVED_KEYS = rules.declare(
    "customizer/reserved-keys",
    "a function's `extraLabels`/`extraAnnotations` set no key under `pf-webhook/` (the "
    "mutation never writes them either)",
)
POD_LABELS = rules.declare(
    "pod/labels",
    "no pod-template label key matching `pod.deniedLabelKeys` (keys other workloads' "
    "selectors use: `app`, `app.kubernetes.io/*`, `component`, ...), except selector "
    "labels and the cluster config's own; a key a function asks for in `extraLabels` is "
    "reported at that option",
)
POD_ANNOTATIONS = rules.declare(
    "pod/annotations",
    "no pod-template annotation key matching `pod.deniedAnnotationKeys` (AppArmor, "
    "seccomp, mesh injection, `pf-webhook/*`), except the cluster config's own; reported "
    "at `extraAnnotations` when the function asked for it",
)

RESERVED_PREFIX = "pf-webhook/"


def parse(
    raw: str | None, source: str, limits: Limits = DEFAULT_LIMITS
) -> tuple[RuntimeOptions | None, dict[str, Any], list[Finding], list[str]]:
    """(options, the raw JSON object, customizer/options findings, notes) for a JSON string.

    Read as Pulsar reads them, with lenient Gson (single quotes, unquoted names, numbers kept
    as written): empty or `null` means no options; a non-object is an error.
    """
    if raw is None or raw.strip() in ("", "null"):
        return None, {}, [], []
    try:
        doc = gson.loads(raw, max_depth=limits.max_json_depth, max_digits=limits.max_number_digits)
    except gson.GsonLimitError as exc:
        return None, {}, [Finding(OPTIONS, source, str(exc))], []
    except gson.GsonError as exc:
        message = f"not valid JSON, even read leniently as the worker does: {exc}"
        return None, {}, [Finding(OPTIONS, source, message)], []
    if doc is None:
        return None, {}, [], []
    if not isinstance(doc, Mapping):
        message = f"must be a JSON object of customizer options, got {type(doc).__name__} (the worker fails to start such a function)"
        return None, {}, [Finding(OPTIONS, source, message)], []
    try:
        options, notes = parse_runtime_options(doc, "customRuntimeOptions")
    except ConfigError as exc:
        return None, dict(doc), [Finding(OPTIONS, source, str(exc))], []
    return options, dict(doc), [], notes


def toleration_identity(item: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """What makes two tolerations the same one (Pulsar drops exact duplicates)."""
    return tuple(sorted((str(k), repr(v)) for k, v in item.items()))


def _dedupe(items: list[Mapping[str, Any]]) -> tuple[Mapping[str, Any], ...]:
    seen: set[tuple[tuple[str, str], ...]] = set()
    result: list[Mapping[str, Any]] = []
    for item in items:
        key = toleration_identity(item)
        if key not in seen:
            seen.add(key)
            result.append(item)
    return tuple(result)


def merge(cluster: RuntimeOptions, function: RuntimeOptions | None) -> RuntimeOptions:
    if function is None:
        return cluster
    resources: dict[str, dict[str, str]] = {
        part: dict(items) for part, items in cluster.resource_requirements.items()
    }
    for part, items in function.resource_requirements.items():
        resources.setdefault(part, {}).update(items)
    return RuntimeOptions(
        job_name=function.job_name or cluster.job_name,
        job_namespace=function.job_namespace or cluster.job_namespace,
        extra_labels={**cluster.extra_labels, **function.extra_labels},
        extra_annotations={**cluster.extra_annotations, **function.extra_annotations},
        node_selector_labels={**cluster.node_selector_labels, **function.node_selector_labels},
        tolerations=_dedupe([*cluster.tolerations, *function.tolerations]),
        resource_requirements=resources,
    )


def _put(target: dict[str, Any], key: str, value: str, what: str) -> list[str]:
    current = target.get(key)
    if current == value:
        return []
    target[key] = value
    # the replaced value may be anything (a token in an annotation): never quoted
    return [] if current is None else [f"{what} {key}: replaced its previous value"]


def apply(
    obj: dict[str, Any], container: dict[str, Any], options: RuntimeOptions, *, config: Config
) -> list[str]:
    """Apply merged options to the StatefulSet and its function container; returns warnings."""
    warnings: list[str] = []
    spec = obj["spec"]
    template = spec["template"]
    pod = template["spec"]
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    metas = [obj["metadata"], template.setdefault("metadata", {})]

    for key in [*options.extra_labels, *options.extra_annotations]:
        if key.startswith(RESERVED_PREFIX):
            warnings.append(
                f"{key}: not applied, the {RESERVED_PREFIX} prefix is the webhook's own"
            )
    for key, raw in options.extra_labels.items():
        if key.startswith(RESERVED_PREFIX):
            continue
        value = naming.to_label_value(raw, config.label_style)
        if key in selector and selector[key] != value:
            warnings.append(
                f"extraLabels {key}: not applied, it is a selector label (would break the StatefulSet)"
            )
            continue
        for index, meta in enumerate(metas):
            labels = meta.setdefault("labels", {})
            if labels.get(key) == value:
                continue  # already converted (reinvocation)
            # the raw value: labels.convert converts it and records it in original-labels
            found = _put(labels, key, raw, "label")
            warnings.extend(found if index == 0 else [])
    for key, value in options.extra_annotations.items():
        if key.startswith(RESERVED_PREFIX):
            continue
        for index, meta in enumerate(metas):
            found = _put(meta.setdefault("annotations", {}), key, value, "annotation")
            warnings.extend(found if index == 0 else [])
    for key, value in options.node_selector_labels.items():
        warnings.extend(_put(pod.setdefault("nodeSelector", {}), key, value, "nodeSelector"))
    if options.tolerations or pod.get("tolerations"):
        # exact duplicates dropped, the worker's own included (it appends options to its
        # three defaults without checking)
        current: list[Any] = pod.get("tolerations") or []
        tolerations: list[Any] = []
        present: set[tuple[tuple[str, str], ...]] = set()
        for toleration in [*current, *map(dict, options.tolerations)]:
            if isinstance(toleration, Mapping):
                identity = toleration_identity(toleration)
                if identity in present:
                    continue
                present.add(identity)
            tolerations.append(toleration)
        if tolerations != current:
            pod["tolerations"] = tolerations
    if options.resource_requirements:
        warnings.extend(_resources(container, options.resource_requirements))
    return warnings


def _resources(container: dict[str, Any], wanted: Mapping[str, Mapping[str, str]]) -> list[str]:
    warnings = []
    resources = container.setdefault("resources", {})
    for part, items in wanted.items():
        target = resources.setdefault(part, {})
        for name, amount in items.items():
            current = target.get(name)
            if (
                current is not None
                and quantity.is_quantity(current)
                and quantity.parse(current) == quantity.parse(amount)
            ):
                continue
            target[name] = amount
            if current is not None:
                warnings.append(
                    f"resources.{part}.{name}: replaced the previous amount with {amount}"
                )
    return warnings


def check(
    doc: Mapping[str, Any], options: RuntimeOptions | None, source: str, config: Config
) -> list[Finding]:
    """Policy on what a function asked for (the cluster's own config is trusted)."""
    findings = []
    if config.allowed_options:
        for key in doc:
            name = "extraLabels" if key == "extractLabels" else key
            if name not in config.allowed_options:
                findings.append(
                    Finding(
                        OPTIONS,
                        f"{source}.{key}",
                        f"option {key!r} is not allowed here; allowed: {', '.join(config.allowed_options)}",
                    )
                )
    if options is None:
        return findings
    for option, keys in (
        ("extraLabels", options.extra_labels),
        ("extraAnnotations", options.extra_annotations),
    ):
        for key in keys:
            if key.startswith(RESERVED_PREFIX):
                findings.append(
                    Finding(
                        RESERVED_KEYS,
                        f"{source}.{option}.{key}",
                        f"{option} may not set {key}: keys under {RESERVED_PREFIX} are the webhook's own",
                    )
                )
    findings += _denied_pod_keys(options, source, config)
    if config.allowed_toleration_keys:
        for index, toleration in enumerate(options.tolerations):
            if toleration.get("key") not in config.allowed_toleration_keys:
                findings.append(
                    Finding(
                        TOLERATIONS,
                        f"{source}.tolerations[{index}]",
                        f"toleration key {toleration.get('key')!r} is not allowed; allowed: {', '.join(config.allowed_toleration_keys)}",
                    )
                )
    if config.allowed_node_selector_keys:
        for key in options.node_selector_labels:
            if key not in config.allowed_node_selector_keys:
                findings.append(
                    Finding(
                        NODE_SELECTOR,
                        f"{source}.nodeSelectorLabels.{key}",
                        f"nodeSelector key {key!r} is not allowed; allowed: {', '.join(config.allowed_node_selector_keys)}",
                    )
                )
    return findings


# the worker puts these in the selector: the mutation never changes them (a different value is
# not applied), so asking for them is harmless
_SELECTOR_KEYS = ("component", "tenant", "namespace", "name")


def denied_label_message(key: str) -> str:
    """Why a label key matching webhook.pod.deniedLabelKeys is refused (here and in podspec)."""
    return (
        f"label key {key} is reserved for other workloads' selectors (webhook.pod.deniedLabelKeys): "
        "a Service or NetworkPolicy selecting it would pick up this function's pods"
    )


def denied_annotation_message(key: str) -> str:
    """Why an annotation matching webhook.pod.deniedAnnotationKeys is refused."""
    return (
        f"annotation {key} changes the pod's security or the webhook's own state "
        "and may not be set here (webhook.pod.deniedAnnotationKeys)"
    )


def _denied_pod_keys(options: RuntimeOptions, source: str, config: Config) -> list[Finding]:
    """pod/labels and pod/annotations at the option that asks for the key, so the function's
    author sees where, before the mutation (podspec judges what else the template carries)."""
    findings = []
    cluster = config.cluster_options
    labels = config.pod.denied_label_matcher
    for key, value in options.extra_labels.items():
        if (
            labels is None
            or key.startswith(RESERVED_PREFIX)
            or key in _SELECTOR_KEYS
            or key in config.custom_labels
            or not labels.fullmatch(key)
            or cluster.extra_labels.get(key) == value
        ):
            continue
        findings.append(
            Finding(
                POD_LABELS,
                f"{source}.extraLabels.{key}",
                denied_label_message(key),
            )
        )
    annotations = config.pod.denied_annotation_matcher
    for key, value in options.extra_annotations.items():
        if (
            annotations is None
            or key.startswith(RESERVED_PREFIX)
            or not annotations.fullmatch(key)
            or cluster.extra_annotations.get(key) == value
        ):
            continue
        findings.append(
            Finding(
                POD_ANNOTATIONS,
                f"{source}.extraAnnotations.{key}",
                denied_annotation_message(key),
            )
        )
    return findings
