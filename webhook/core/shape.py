"""Pure: the shape of the Kubernetes objects we read and write, declared once.

The TypedDicts below are the subset of a StatefulSet and a Service the webhook reads or writes.
mypy reads objects through them, and the run-time shape check is compiled from the same
declarations when this module is imported, so the two cannot drift apart. A real API server
decodes objects before calling us, so the check only fires for hand-made reviews and
manifests; every later step may then trust the shape. As the API server reads JSON, null
counts as absent; a key declared `Required` must be present and not null.

The check stops at the first problem and names its field path: `spec.template.spec.containers
must be a list, got dict`. It builds no path and copies nothing unless it finds one.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, Required, TypedDict

# ---------------------------------------------------------------------------------------------
# the declarations (Kubernetes' own field names)


class KeyToPath(TypedDict, total=False):
    key: str
    path: str


class SecretVolumeSource(TypedDict, total=False):
    secretName: str
    items: list[KeyToPath]


class SecretProjection(TypedDict, total=False):
    name: str
    items: list[KeyToPath]


class ServiceAccountTokenProjection(TypedDict, total=False):
    audience: str
    expirationSeconds: int
    path: str


class VolumeProjection(TypedDict, total=False):
    serviceAccountToken: ServiceAccountTokenProjection
    secret: SecretProjection


class ProjectedVolumeSource(TypedDict, total=False):
    sources: list[VolumeProjection]


class HostPathVolumeSource(TypedDict, total=False):
    path: str


class Volume(TypedDict, total=False):
    name: str
    secret: SecretVolumeSource
    projected: ProjectedVolumeSource
    hostPath: HostPathVolumeSource


class EnvVar(TypedDict, total=False):
    name: str
    value: str
    valueFrom: dict[str, Any]  # read only to tell it is there


class VolumeMount(TypedDict, total=False):
    name: str
    mountPath: str


Quantity = str | int | float  # "500m", 2, 0.5: the API server accepts all three in JSON


class ResourceRequirements(TypedDict, total=False):
    limits: dict[str, Quantity]
    requests: dict[str, Quantity]


class Container(TypedDict, total=False):
    name: str
    command: list[str]
    env: list[EnvVar]
    volumeMounts: list[VolumeMount]
    resources: ResourceRequirements


class ObjectMeta(TypedDict, total=False):
    name: str
    namespace: str
    labels: dict[str, str]
    annotations: dict[str, str]


class PodSpec(TypedDict, total=False):
    serviceAccountName: str
    nodeSelector: dict[str, str]
    volumes: list[Volume]
    tolerations: list[dict[str, Any]]  # copied and compared whole, never read field by field
    containers: Required[list[Container]]
    initContainers: list[Container]


class PodTemplateSpec(TypedDict, total=False):
    metadata: ObjectMeta
    spec: Required[PodSpec]


class LabelSelector(TypedDict, total=False):
    matchLabels: dict[str, str]


class StatefulSetSpec(TypedDict, total=False):
    serviceName: str
    selector: LabelSelector
    template: Required[PodTemplateSpec]


class StatefulSet(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: Required[ObjectMeta]
    spec: Required[StatefulSetSpec]


class ServiceSpec(TypedDict, total=False):
    selector: dict[str, str]


class Service(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: Required[ObjectMeta]
    spec: Required[ServiceSpec]


# ---------------------------------------------------------------------------------------------
# the check, compiled from the declarations

# A check returns None, or the problem and the path to it as fragments in reverse order
# (each level appends its own fragment on the way out, so success builds no string).
_Problem = tuple[list[str], str]
_Check = Callable[[Any], _Problem | None]


class _Node(NamedTuple):
    check: _Check
    # values of exactly these types pass without a call (JSON's str, int, float; never bool)
    passes: frozenset[type] = frozenset()


_NAMES = {str: "a string", int: "an integer", float: "a number"}


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _is_mapping(value: object) -> bool:
    return type(value) is dict or isinstance(value, Mapping)  # the ABC check is the slow one


def _leaf(kinds: tuple[type, ...]) -> _Node:
    # int | float reads "a number"; bool, an int to Python, is no number in JSON
    expected = " or ".join(_NAMES[k] for k in kinds if not (k is int and float in kinds))

    def check(value: Any) -> _Problem | None:
        if isinstance(value, bool) or not isinstance(value, kinds):
            return [], f"must be {expected}, got {_kind(value)}"
        return None

    return _Node(check, frozenset(kinds))


def _any_mapping(value: Any) -> _Problem | None:
    if not _is_mapping(value):
        return [], f"must be a mapping, got {_kind(value)}"
    return None


def _list_of(item: _Node) -> _Node:
    item_check, passes = item

    def check(value: Any) -> _Problem | None:
        if type(value) is not list:
            return [], f"must be a list, got {_kind(value)}"
        for index, element in enumerate(value):
            if type(element) in passes:
                continue
            problem = ([], "must not be null") if element is None else item_check(element)
            if problem is not None:
                problem[0].append(f"[{index}]")
                return problem
        return None

    return _Node(check)


def _map_of(item: _Node) -> _Node:
    item_check, passes = item

    def check(value: Any) -> _Problem | None:
        if not _is_mapping(value):
            return [], f"must be a mapping, got {_kind(value)}"
        for key, element in value.items():
            if type(key) is not str:
                return [], f"keys must be strings, got {_kind(key)}"
            if element is None or type(element) in passes:
                continue
            problem = item_check(element)
            if problem is not None:
                problem[0].append(f"[{key}]")
                return problem
        return None

    return _Node(check)


def _fields(declared: type) -> _Node:
    # not __required_keys__: Python 3.11 cannot see `Required` in postponed annotations
    hints = typing.get_type_hints(declared, include_extras=True)
    fields = tuple(
        (key, *_compile(_unrequired(hint)), typing.get_origin(hint) is Required)
        for key, hint in hints.items()
    )

    def check(value: Any) -> _Problem | None:
        if not _is_mapping(value):
            return [], f"must be a mapping, got {_kind(value)}"
        for key, field_check, passes, is_required in fields:
            element = value.get(key)
            if element is None:
                if is_required:
                    return [f".{key}"], "is required"
                continue
            if type(element) in passes:
                continue
            problem = field_check(element)
            if problem is not None:
                problem[0].append(f".{key}")
                return problem
        return None

    return _Node(check)


def _unrequired(hint: Any) -> Any:
    return typing.get_args(hint)[0] if typing.get_origin(hint) is Required else hint


def _compile(hint: Any) -> _Node:
    """The check for one declared type: a TypedDict, list[X], dict[str, X], a scalar or a
    union of scalars (dict[str, Any]: any mapping)."""
    if typing.is_typeddict(hint):
        return _fields(hint)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is list:
        return _list_of(_compile(args[0]))
    if origin is dict:
        return _Node(_any_mapping) if args[1] is Any else _map_of(_compile(args[1]))
    if origin in (typing.Union, types.UnionType) and all(arg in _NAMES for arg in args):
        return _leaf(args)
    if hint in _NAMES:
        return _leaf((hint,))
    raise TypeError(f"no shape check for {hint!r}")  # a declaration this module cannot check


def _path(fragments: list[str]) -> str:
    return "".join(reversed(fragments)).removeprefix(".")


def problem_finder(declared: type) -> Callable[[Mapping[str, Any]], str | None]:
    """The shape check of a TypedDict declaration (built once, at import): it answers why an
    object does not have that shape, in one line naming the field path, or None. Declarations
    may use nested TypedDicts, `Required`, list[X], dict[str, X] (dict[str, Any]: any mapping),
    str, int, float and unions of those."""
    check = _compile(declared).check

    def problem(obj: Mapping[str, Any]) -> str | None:
        found = check(obj)
        return None if found is None else f"{_path(found[0])} {found[1]}"

    return problem


statefulset_problem = problem_finder(StatefulSet)
service_problem = problem_finder(Service)
