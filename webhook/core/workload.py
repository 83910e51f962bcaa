"""Pure: is an object a Pulsar function workload, where is its function container, and what
are its FunctionDetails.

The worker writes the whole FunctionDetails (proto3 JSON) into the container command; we read
it back rather than trusting labels. Two annotations supply the secrets map and
customRuntimeOptions only for hand-written workloads that opt in (`pf-webhook/enabled`) and
carry no function details: a function can write annotations (extraAnnotations), so for a
worker-made function they would let it choose the options it is judged by.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from webhook.core import bounded, command, rules
from webhook.core.bounded import DEFAULT_LIMITS, Limits
from webhook.core.errors import UserError

DETAILS = rules.declare(
    "function/details",
    "the function details parse, within `limits` (the `sh -c` script within "
    "`limits.maxCommandLength`)",
)

ENABLED_ANNOTATION = "pf-webhook/enabled"
SECRETS_ANNOTATION = "pf-webhook/secrets"
OPTIONS_ANNOTATION = "pf-webhook/custom-runtime-options"
FUNCTION_CONTAINER = "pulsarfunction"
COMPONENTS = ("function", "source", "sink")

Runtime = Literal["JAVA", "PYTHON", "GO"]
_RUNTIMES: dict[object, Runtime] = {
    None: "JAVA",
    "JAVA": "JAVA",
    0: "JAVA",
    "PYTHON": "PYTHON",
    1: "PYTHON",
    "GO": "GO",
    3: "GO",
}

CONTAINERS_PATH = "spec.template.spec.containers"


class WorkloadError(UserError, ValueError):
    """The object cannot be handled; the message says what and where."""


@dataclass(frozen=True)
class FunctionDetails:
    """What the webhook needs from Pulsar's FunctionDetails (all optional for hand-written
    workloads)."""

    tenant: str | None = None
    namespace: str | None = None
    name: str | None = None
    runtime: Runtime = "JAVA"
    secrets_map: str | None = None  # a JSON string, as in the proto
    secrets_source: str = ""
    custom_runtime_options: str | None = None  # a JSON string, as in the proto
    options_source: str = ""
    cpu: float = 0.0
    ram: int = 0
    has_resources: bool = False
    from_command: bool = False
    ignored: tuple[str, ...] = ()  # our annotations present but not honoured


@dataclass(frozen=True)
class DetailsProblem:
    path: str
    message: str


def _metadata_map(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """`metadata.<key>` (labels, annotations) when it is a mapping, else empty."""
    metadata = obj.get("metadata")
    found = metadata.get(key) if (type(metadata) is dict or isinstance(metadata, Mapping)) else None
    return found if (type(found) is dict or isinstance(found, Mapping)) else {}


def object_labels(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return _metadata_map(obj, "labels")


def object_annotations(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return _metadata_map(obj, "annotations")


def opts_in(obj: Mapping[str, Any]) -> bool:
    """The object asks for the webhook with pf-webhook/enabled: "true" (annotation or label)."""
    return (
        object_annotations(obj).get(ENABLED_ANNOTATION) == "true"
        or object_labels(obj).get(ENABLED_ANNOTATION) == "true"
    )


def _worker_selector(selector: object) -> bool:
    """The selector the worker gives a function's StatefulSet and Service. Options (extraLabels)
    can change the objects' labels but never their selector, so detection reads the selector."""
    return (
        (type(selector) is dict or isinstance(selector, Mapping))
        and selector.get("component") in COMPONENTS
        and all(k in selector for k in ("tenant", "namespace", "name"))
    )


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = obj.get("spec")
    return spec if (type(spec) is dict or isinstance(spec, Mapping)) else {}


def statefulset_selector(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    selector = _spec(obj).get("selector")
    found = (
        selector.get("matchLabels")
        if (type(selector) is dict or isinstance(selector, Mapping))
        else None
    )
    return found if (type(found) is dict or isinstance(found, Mapping)) else {}


def is_function_workload(obj: object) -> bool:
    """A StatefulSet with the worker's labels or selector, or one that opts in with
    pf-webhook/enabled."""
    if not (type(obj) is dict or isinstance(obj, Mapping)) or obj.get("kind") != "StatefulSet":
        return False
    if obj.get("apiVersion") not in (None, "apps/v1"):
        return False
    return (
        opts_in(obj)
        or _worker_selector(object_labels(obj))
        or _worker_selector(statefulset_selector(obj))
    )


def is_function_service(obj: object) -> bool:
    """A Service with the worker's selector (tenant, namespace, name, component), or one that
    opts in with pf-webhook/enabled."""
    if not (type(obj) is dict or isinstance(obj, Mapping)) or obj.get("kind") != "Service":
        return False
    if obj.get("apiVersion") not in (None, "v1"):
        return False
    return opts_in(obj) or _worker_selector(_spec(obj).get("selector"))


_SCALARS = frozenset({str, int, float, bool})


def without_nulls(value: Any) -> Any:
    """A deep copy of a JSON document without null-valued keys (the API server's reading)."""
    if isinstance(value, dict):
        return {
            k: v if type(v) in _SCALARS else without_nulls(v)
            for k, v in value.items()
            if v is not None
        }
    if isinstance(value, list):
        return [v if type(v) in _SCALARS else without_nulls(v) for v in value]
    return value


def function_container_index(obj: Mapping[str, Any]) -> int:
    """The container named `pulsarfunction`, else the only container; else WorkloadError."""
    containers = obj["spec"]["template"]["spec"].get("containers") or []
    for index, container in enumerate(containers):
        if container.get("name") == FUNCTION_CONTAINER:
            return index
    if len(containers) == 1:
        return 0
    names = ", ".join(str(c.get("name")) for c in containers) or "none"
    raise WorkloadError(
        f"{CONTAINERS_PATH}: cannot tell the function container: none is named "
        f"{FUNCTION_CONTAINER!r} and there are {len(containers)} (names: {names})"
    )


def instance_script(container: Mapping[str, Any]) -> str | None:
    """The `sh -c` script of the instance command, if the container has one."""
    cmd = container.get("command")
    if isinstance(cmd, list) and len(cmd) >= 3 and cmd[-2] == "-c" and isinstance(cmd[-1], str):
        return cmd[-1]
    return None


def _runtime(value: object, path: str) -> Runtime:
    if (value is None or isinstance(value, str | int)) and value in _RUNTIMES:
        return _RUNTIMES[value]
    shown = repr(value)[:40] if isinstance(value, str | int) else type(value).__name__
    raise WorkloadError(f"{path}: unknown runtime {shown} (JAVA, PYTHON or GO)")


INT64_MAX = 2**63 - 1


def _proto_number(value: object, path: str, kind: type) -> Any:
    """proto3 JSON numbers: int64 arrive as strings, doubles as numbers (or strings); only
    finite values in range (int64 for ram), checked before any conversion."""
    if value is None:
        return kind(0)
    what = "a whole number" if kind is int else "a finite number"
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise WorkloadError(f"{path}: expected {what}, got {type(value).__name__}")
    if isinstance(value, str) and len(value) > 32:
        raise WorkloadError(f"{path}: expected {what}, got a string of {len(value)} characters")
    try:
        number = kind(value)
    except (TypeError, ValueError, OverflowError):
        raise WorkloadError(f"{path}: expected {what}, got {str(value)[:32]!r}") from None
    if isinstance(number, float) and not math.isfinite(number):
        raise WorkloadError(f"{path}: expected {what}, got {str(value)[:32]!r}")
    if isinstance(number, int) and not -INT64_MAX - 1 <= number <= INT64_MAX:
        raise WorkloadError(f"{path}: {str(value)[:32]!r} is outside int64")
    return number


def _json_string_field(details: Mapping[str, Any], key: str, path: str) -> str | None:
    value = details.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):  # proto declares these as JSON *strings*
        raise WorkloadError(f"{path}.{key}: expected a JSON string, got {type(value).__name__}")
    return value


def parse_script(
    container: Mapping[str, Any], *, max_length: int = DEFAULT_LIMITS.max_command_length
) -> command.Script | None:
    """The container's `sh -c` script, parsed once (None if it has none); CommandError if it
    cannot be read."""
    script = instance_script(container)
    return None if script is None else command.parse(script, max_length=max_length)


def read_details(
    obj: Mapping[str, Any], container_index: int, limits: Limits = DEFAULT_LIMITS
) -> tuple[FunctionDetails, list[DetailsProblem]]:
    """FunctionDetails from the command line (or, for hand-written opt-in workloads without
    any, from our annotations), plus what could not be read.

    A workload without `--function_details`/`-instance-conf` simply has empty details.
    """
    container = obj["spec"]["template"]["spec"]["containers"][container_index]
    try:
        script = parse_script(container, max_length=limits.max_command_length)
    except command.CommandError as exc:
        return details_from(obj, container_index, None, str(exc), limits)
    return details_from(obj, container_index, script, None, limits)


def details_from(
    obj: Mapping[str, Any],
    container_index: int,
    script: command.Script | None,
    script_problem: str | None,
    limits: Limits = DEFAULT_LIMITS,
) -> tuple[FunctionDetails, list[DetailsProblem]]:
    """FunctionDetails from an already parsed script (or the reason it could not be parsed)."""
    problems: list[DetailsProblem] = []
    cmd_path = f"{CONTAINERS_PATH}[{container_index}].command[2]"
    fields: dict[str, Any] = {}
    in_command = False
    if script_problem is not None:
        problems.append(DetailsProblem(cmd_path, script_problem))
        in_command = True  # a command line we cannot read: never fall back to annotations
    elif script is not None:
        try:
            fields = _details_from_script(script, cmd_path, limits)
            in_command = bool(fields)
        except (command.CommandError, WorkloadError) as exc:
            problems.append(DetailsProblem(cmd_path, str(exc)))
            fields = {}
            in_command = True  # details are there, only unreadable: never fall back
    notes = object_annotations(obj)
    present = [key for key in (SECRETS_ANNOTATION, OPTIONS_ANNOTATION) if key in notes]
    if in_command or not opts_in(obj):
        fields["ignored"] = tuple(present)
        return FunctionDetails(**fields), problems
    for key, field_name, source in (
        (SECRETS_ANNOTATION, "secrets_map", "secrets_source"),
        (OPTIONS_ANNOTATION, "custom_runtime_options", "options_source"),
    ):
        if key in notes:
            fields[field_name] = notes[key]
            fields[source] = f"metadata.annotations[{key}]"
    return FunctionDetails(**fields), problems


def _json_flag(script: command.Script, flag: str, path: str, limits: Limits) -> Any:
    count = len(script.positions(flag))
    if count > 1:
        raise WorkloadError(f"{flag} appears {count} times on the instance's command")
    raw = script.get(flag)
    if raw is None:
        return None
    try:
        value = bounded.loads(raw, limits)
    except bounded.JsonLimitError as exc:
        raise WorkloadError(f"{flag}: {exc}") from None
    if not isinstance(value, dict):
        raise WorkloadError(f"{flag} must be a JSON object, got {type(value).__name__}")
    return value


def _details_from_script(script: command.Script, path: str, limits: Limits) -> dict[str, Any]:
    details = _json_flag(script, "--function_details", path, limits)
    where = f"{path} --function_details"
    runtime: Runtime | None = None
    if details is None:
        conf = _json_flag(script, "-instance-conf", path, limits)
        if conf is None:
            return {}
        where = f"{path} -instance-conf functionDetails"
        raw = conf.get("functionDetails")
        if isinstance(raw, str):
            try:
                details = bounded.loads(raw, limits)
            except bounded.JsonLimitError as exc:
                raise WorkloadError(f"{where}: {exc}") from None
        elif type(raw) is dict or isinstance(raw, Mapping):
            details = dict(raw)
        else:
            details = {}
        if not isinstance(details, dict):
            raise WorkloadError(f"{where}: expected a JSON object")
        # Go's instance config repeats the fields at the top level
        for key in ("tenant", "name", "secretsMap"):
            if key not in details and key in conf:
                details[key] = conf[key]
        if "namespace" not in details and "nameSpace" in conf:
            details["namespace"] = conf["nameSpace"]
        runtime = "GO"
    resources = details.get("resources")
    if resources is not None and not (type(resources) is dict or isinstance(resources, Mapping)):
        raise WorkloadError(f"{where}.resources: expected an object")
    resources = resources or {}
    for key in ("tenant", "namespace", "name"):
        if details.get(key) is not None and not isinstance(details[key], str):
            raise WorkloadError(f"{where}.{key}: expected a string")
    return {
        "tenant": details.get("tenant"),
        "namespace": details.get("namespace"),
        "name": details.get("name"),
        "runtime": runtime or _runtime(details.get("runtime"), f"{where}.runtime"),
        "secrets_map": _json_string_field(details, "secretsMap", where),
        "secrets_source": f"{where}.secretsMap",
        "custom_runtime_options": _json_string_field(details, "customRuntimeOptions", where),
        "options_source": f"{where}.customRuntimeOptions",
        "cpu": _proto_number(resources.get("cpu"), f"{where}.resources.cpu", float),
        "ram": _proto_number(resources.get("ram"), f"{where}.resources.ram", int),
        "has_resources": bool(resources),
        "from_command": True,
    }
