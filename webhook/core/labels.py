"""Pure: convert invalid label values everywhere the same way, so selector and template still
match, and remember the originals in an annotation for audits."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from webhook.core import bounded, naming, rules
from webhook.core.rules import Finding

_SORTED_COMPACT_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode

LABEL_KEY = rules.declare("naming/label-key", "every label key is valid Kubernetes syntax")
LABEL_VALUE = rules.declare("naming/label-value", "every label value is valid Kubernetes syntax")

ORIGINALS_ANNOTATION = "pf-webhook/original-labels"
LABEL_MAPS = (
    ("metadata", "labels"),
    ("spec", "selector", "matchLabels"),
    ("spec", "template", "metadata", "labels"),
)
SERVICE_LABEL_MAPS = (("metadata", "labels"), ("spec", "selector"))


def _get(obj: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def label_maps(obj: Mapping[str, Any]) -> list[tuple[str, dict[str, str]]]:
    """The label maps of a StatefulSet, or of a Service (labels and selector)."""
    found = []
    for path in SERVICE_LABEL_MAPS if obj.get("kind") == "Service" else LABEL_MAPS:
        value = _get(obj, path)
        if isinstance(value, dict):
            found.append((".".join(path), value))
    return found


def convert(obj: dict[str, Any], style: naming.LabelStyle) -> None:
    """Rewrite invalid label values in place; record originals in the annotation."""
    originals: dict[str, str] = {}
    for _, labels in label_maps(obj):
        for key, value in labels.items():
            if not naming.is_label_value(value):
                labels[key] = naming.to_label_value(value, style)
                originals.setdefault(key, value)
    if originals:
        record_originals(obj, originals)


def record_originals(obj: dict[str, Any], originals: dict[str, str]) -> None:
    """Add label values we replaced to the pf-webhook/original-labels annotation."""
    metadata = obj.setdefault("metadata", {})
    annotations = metadata.setdefault("annotations", {})
    try:
        recorded = bounded.loads(annotations.get(ORIGINALS_ANNOTATION, "{}"))
    except bounded.JsonLimitError:
        recorded = {}
    if not isinstance(recorded, dict):
        recorded = {}
    merged = {**recorded, **originals}
    text = _SORTED_COMPACT_JSON(merged)
    if annotations.get(ORIGINALS_ANNOTATION) != text:
        annotations[ORIGINALS_ANNOTATION] = text


def check(obj: Mapping[str, Any], style: naming.LabelStyle) -> list[Finding]:
    findings = []
    for where, labels in label_maps(obj):
        for key, value in labels.items():
            key_error = naming.label_key_error(key)
            if key_error:
                findings.append(
                    Finding(LABEL_KEY, f"{where}[{key}]", f"invalid label key: {key_error}")
                )
            if not naming.is_label_value(value):
                proposal = naming.to_label_value(value, style)
                findings.append(
                    Finding(
                        LABEL_VALUE,
                        f"{where}[{key}]",
                        f"invalid label value {value!r} (at most 63 alphanumerics, '-', '_', '.', alphanumeric at both ends); the mutating webhook would write {proposal!r}",
                    )
                )
    return findings
