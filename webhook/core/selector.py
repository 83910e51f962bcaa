"""Pure: labels that override the keys the worker selects a function's pods by.

The worker gives a function's Service and StatefulSet a selector (tenant, namespace, name,
component, plus customLabels) and the same values as labels. The Basic customizer then writes
extraLabels over the labels of both objects and of the pod template, but never over the
selector: an extraLabels entry for a selector key leaves a StatefulSet whose selector does not
match its template (the API server refuses it with 422) and a Service that selects no pod.

We find such overrides by comparing labels with the selector (options cannot change the
selector), and either deny them (rule customizer/options, the default) or put the selector's
value back, recording the value that was asked for in pf-webhook/original-labels.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from webhook.core import customizer, rules
from webhook.core import labels as label_maps
from webhook.core.config import Config, RuntimeOptions

COLLISION = rules.declare(
    "naming/selector-collision",
    "no other StatefulSet in the namespace selects the same pods; a function's Service "
    "selects its own StatefulSet's pods and no other's (needs a cluster)",
)

# the id overrides are reported under: an option that overrides a selector key is a bad option
RULE = customizer.OPTIONS.id


@dataclass(frozen=True)
class Override:
    key: str
    value: str  # what the labels say (the option's value)
    selected: str  # what the selector says (the worker's value)
    path: str  # where the overriding label is


def _label_map(obj: Mapping[str, Any], path: tuple[str, ...]) -> Mapping[str, Any]:
    node: Any = obj
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node if isinstance(node, Mapping) else {}


def selector_of(obj: Mapping[str, Any]) -> tuple[Mapping[str, Any], tuple[str, ...]]:
    """The selector and where it is: spec.selector (Service) or spec.selector.matchLabels."""
    if obj.get("kind") == "Service":
        path: tuple[str, ...] = ("spec", "selector")
    else:
        path = ("spec", "selector", "matchLabels")
    return _label_map(obj, path), path


def _labelled(obj: Mapping[str, Any]) -> list[tuple[str, ...]]:
    if obj.get("kind") == "Service":
        return [("metadata", "labels")]
    return [("metadata", "labels"), ("spec", "template", "metadata", "labels")]


def find(obj: Mapping[str, Any]) -> list[Override]:
    """Labels whose value differs from the selector's for the same key."""
    selector, _ = selector_of(obj)
    found = []
    for path in _labelled(obj):
        labels = _label_map(obj, path)
        for key, selected in selector.items():
            value = labels.get(key)
            if isinstance(value, str) and isinstance(selected, str) and value != selected:
                found.append(Override(key, value, selected, f"{'.'.join(path)}[{key}]"))
    return found


def option_source(key: str, function: RuntimeOptions | None, config: Config) -> str:
    """Which option set the label, as precisely as the object tells."""
    if function is not None and key in function.extra_labels:
        return f"customRuntimeOptions extraLabels.{key}"
    if config.customizer_enabled and key in config.cluster_options.extra_labels:
        return f"runtimeCustomizerConfig extraLabels.{key}"
    return f"extraLabels.{key} (customRuntimeOptions or runtimeCustomizerConfig)"


def message(override: Override, source: str) -> str:
    return (
        f"{source} sets label {override.key}={override.value!r}, a key the worker selects this "
        f"function's pods by ({override.key}={override.selected!r}); the StatefulSet's selector "
        f"would not match its pods and the Service would select none. Remove {override.key} "
        "from extraLabels"
    )


def repair(obj: dict[str, Any], overrides: list[Override]) -> list[str]:
    """Put the selector's values back; remember what was asked for. Returns warnings."""
    selector, _ = selector_of(obj)
    originals: dict[str, str] = {}
    for path in _labelled(obj):
        labels = _label_map(obj, path)
        if not isinstance(labels, dict):
            continue
        for key, selected in selector.items():
            value = labels.get(key)
            if isinstance(value, str) and value != selected:
                labels[key] = selected
                originals.setdefault(key, value)
    if originals:
        label_maps.record_originals(obj, originals)
    return [
        f"label {o.key}: kept the worker's {o.selected!r} instead of {o.value!r} (a selector key)"
        for o in overrides
        if o.path.startswith("metadata.")
    ]
