"""Bad input never crashes: any subtree of a worker StatefulSet replaced by a value of the
wrong type gives a refusal with a message naming the field, or a correct result.

The field is named as the API server's own errors name one: `spec.template.spec.containers[0]`,
map keys in brackets (`metadata.labels[app.kubernetes.io/name]`); the refusal names an edited
field or one inside the value put there."""

from __future__ import annotations

import copy
import json
import re
from typing import Any, Required, TypedDict

import jsonpatch
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests import worker
from tests.reviews import admission_review
from webhook.core import config, mutation, patch, policy, review, shape

ALL_ON = config.from_mapping(
    {
        "secretsProviderConfiguratorClassName": config.KUBERNETES_SECRETS_CONFIGURATOR,
        "authenticationEnabled": True,  # the worker uses the auth provider only then
        "functionAuthProviderClassName": config.SA_TOKEN_AUTH_PROVIDER,
        "runtimeCustomizerClassName": config.BASIC_CUSTOMIZER,
        "functionRuntimeFactoryConfigs": {
            "kubernetesFunctionAuthProviderConfig": {"brokerClientTrustCertsSecretName": "ca"}
        },
    }
)
BASE = worker.statefulset(
    secrets={"A": {"path": "s", "key": "k"}},
    auth="sa-token",
    ca_secret="broker-ca",
    custom_runtime_options={
        "tolerations": [{"key": "x", "operator": "Exists"}],
        "resourceRequirements": {"limits": {"cpu": "2"}},
    },
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


PATHS = [p for p in _paths(BASE) if p and p[0] in ("metadata", "spec")]
WRONG = st.sampled_from([None, [], ["x"], {}, {"x": 1}, 7, "text", True, 1.5])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(PATHS), WRONG), min_size=1, max_size=3), st.booleans())
def test_wrong_types_anywhere_are_refused_or_handled_never_raised(
    edits: list[tuple[tuple[Any, ...], Any]], all_on: bool
) -> None:
    obj = copy.deepcopy(BASE)
    for path, value in edits:
        node: Any = obj
        try:
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = copy.deepcopy(value)  # no aliasing between edits
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit removed this path
    obj = json.loads(json.dumps(obj))  # what arrives is JSON: an edit's int key becomes a string
    cfg = ALL_ON if all_on else config.default_config()
    result = mutation.mutate(obj, cfg)
    if result.refusal is None:
        assert jsonpatch.apply_patch(copy.deepcopy(obj), patch.diff(obj, result.obj)) == result.obj
        assert mutation.mutate(result.obj, cfg).obj == result.obj
    else:
        assert "\n" not in result.refusal
        named = _named_path(result.refusal)
        edited = [tuple(str(key) for key in path) for path, _ in edits]
        assert any(named[: len(path)] == path for path in edited), (result.refusal, edited)
    validated = policy.validate(obj, cfg)
    assert validated.refusal == result.refusal
    for mode in ("mutate", "validate"):
        doc = admission_review(json.loads(json.dumps(obj)), uid="u", namespace=None)
        reply, _ = review.respond(review.parse(doc, cfg), mode=mode)
        assert reply["response"]["uid"] == "u"
        if result.refusal is not None:
            assert reply["response"]["allowed"] is False
            assert reply["response"]["status"]["message"] == review.short(
                result.refusal, review.MAX_MESSAGE
            )


# a field path as the refusal writes it: names joined by dots, list indexes and map keys in []
PATH = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:\.[A-Za-z][A-Za-z0-9]*|\[[^\]]+\])*")


def _named_path(refusal: str) -> tuple[str, ...]:
    """The field path a refusal names, as its segments ("containers[0]" -> containers, 0)."""
    text = refusal.removeprefix("object of the wrong shape: ")
    found = PATH.match(text)
    assert found and text[found.end()] in " :", f"no field path first in {refusal!r}"
    return tuple(re.findall(r"(?<=\[)[^\]]+(?=\])|[A-Za-z][A-Za-z0-9]*", found[0]))


# ---------------------------------------------------------------------------------------------
# the refusal names the field


def _edited(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    obj = copy.deepcopy(BASE)
    node: Any = obj
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return obj


CONTAINER = ("spec", "template", "spec", "containers", 0)


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        pytest.param(
            ("spec", "template", "spec", "containers"),
            {"name": "pulsarfunction"},
            "spec.template.spec.containers must be a list, got dict",
            id="containers-a-mapping",
        ),
        pytest.param(
            (*CONTAINER, "env"),
            {"A": "b"},
            "spec.template.spec.containers[0].env must be a list, got dict",
            id="env-a-mapping",
        ),
        pytest.param(
            (*CONTAINER, "env", 0),
            None,
            "spec.template.spec.containers[0].env[0] must not be null",
            id="null-list-item",
        ),
        pytest.param(
            (*CONTAINER, "command", 2),
            7,
            "spec.template.spec.containers[0].command[2] must be a string, got int",
            id="command-word-a-number",
        ),
        pytest.param(
            ("spec", "template", "spec"),
            None,
            "spec.template.spec is required",
            id="null-required",
        ),
        pytest.param(("metadata",), [], "metadata must be a mapping, got list", id="metadata-list"),
        pytest.param(
            ("metadata", "labels", "component"),
            True,
            "metadata.labels[component] must be a string, got bool",
            id="label-value-bool",
        ),
        pytest.param(
            ("spec", "template", "metadata", "annotations", "prometheus.io/port"),
            7,
            "spec.template.metadata.annotations[prometheus.io/port] must be a string, got int",
            id="map-key-with-dots",
        ),
        pytest.param(
            ("spec", "selector", "matchLabels", "tenant"),
            True,
            "spec.selector.matchLabels[tenant] must be a string, got bool",
            id="selector-value-bool",
        ),
        pytest.param(
            (*CONTAINER, "resources", "limits", "cpu"),
            [],
            "spec.template.spec.containers[0].resources.limits[cpu] must be a string or a number, "
            "got list",
            id="quantity-a-list",
        ),
        pytest.param(
            ("spec", "template", "spec", "volumes"),
            [{"name": "t", "projected": {"sources": [{"serviceAccountToken": {
                "expirationSeconds": True}}]}}],
            "spec.template.spec.volumes[0].projected.sources[0].serviceAccountToken"
            ".expirationSeconds must be an integer, got bool",
            id="deep-bool-for-integer",
        ),
    ],
)  # fmt: skip
def test_a_wrong_shape_is_refused_naming_its_field(
    path: tuple[Any, ...], value: Any, problem: str
) -> None:
    obj = _edited(path, value)
    assert shape.statefulset_problem(obj) == problem
    for cfg in (ALL_ON, config.default_config()):
        refusal = mutation.mutate(obj, cfg).refusal
        assert refusal == f"object of the wrong shape: {problem}"
        edited = tuple(str(key) for key in path)
        assert _named_path(refusal)[: len(edited)] == edited  # the field or one inside it


@pytest.mark.parametrize(
    ("path", "value"),
    [
        pytest.param((*CONTAINER, "env", 0, "value"), None, id="null-is-absent"),
        pytest.param(("metadata", "labels", "component"), None, id="null-map-value"),
        pytest.param(("spec", "replicas"), "many", id="undeclared-field"),
        pytest.param((*CONTAINER, "resources", "limits", "cpu"), 2, id="quantity-a-number"),
    ],
)
def test_what_the_api_server_accepts_passes_the_shape_check(
    path: tuple[Any, ...], value: Any
) -> None:
    assert shape.statefulset_problem(_edited(path, value)) is None


def test_map_keys_must_be_strings() -> None:
    obj = _edited(("metadata", "labels"), {1: "x"})
    assert shape.statefulset_problem(obj) == "metadata.labels keys must be strings, got int"


@pytest.mark.parametrize(
    ("service", "problem"),
    [
        pytest.param({"spec": {}}, "metadata is required", id="no-metadata"),
        pytest.param({"metadata": {}, "spec": 5}, "spec must be a mapping, got int", id="spec-int"),
        pytest.param(
            {"metadata": {}, "spec": {"selector": {"name": ["x"]}}},
            "spec.selector[name] must be a string, got list",
            id="selector-value-list",
        ),
        pytest.param({"metadata": {"name": "x"}, "spec": {"ports": 1}}, None, id="ok"),
    ],
)
def test_a_service_of_the_wrong_shape_names_its_field(
    service: dict[str, Any], problem: str | None
) -> None:
    assert shape.service_problem(service) == problem


def _rendered(path: tuple[Any, ...]) -> re.Pattern[str]:
    """How the check may write `path`: fields as `.key`, list items and map keys in brackets."""
    parts = [
        rf"\[{key}\]" if isinstance(key, int) else rf"(\.?{re.escape(key)}|\[{re.escape(key)}\])"
        for key in path
    ]
    return re.compile("".join(parts))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(PATHS), WRONG.filter(lambda v: v is not None))
def test_one_wrong_value_is_refused_at_the_field_it_was_put_or_accepted(
    path: tuple[Any, ...], value: Any
) -> None:
    problem = shape.statefulset_problem(_edited(path, copy.deepcopy(value)))
    if problem is not None:
        assert _rendered(path).match(problem), problem


# ---------------------------------------------------------------------------------------------
# the check is compiled from the declaration


class _Item(TypedDict, total=False):
    name: Required[str]
    size: int | float


class _Thing(TypedDict, total=False):
    items: list[_Item]
    tags: dict[str, str]
    extra: dict[str, Any]


@pytest.mark.parametrize(
    ("thing", "problem"),
    [
        pytest.param({}, None, id="nothing-required-at-the-top"),
        pytest.param({"items": [{"name": "a", "size": 1.5}]}, None, id="fits"),
        pytest.param({"items": [{"size": 1}]}, "items[0].name is required", id="required"),
        pytest.param(
            {"items": [{"name": "a", "size": "big"}]},
            "items[0].size must be a number, got str",
            id="union",
        ),
        pytest.param({"tags": {"a": 1}}, "tags[a] must be a string, got int", id="map-value"),
        pytest.param({"extra": {"a": [1, {}]}}, None, id="any-mapping-is-not-looked-into"),
        pytest.param({"extra": []}, "extra must be a mapping, got list", id="any-mapping"),
    ],
)
def test_the_check_follows_the_declaration(thing: dict[str, Any], problem: str | None) -> None:
    assert shape.problem_finder(_Thing)(thing) == problem


def test_a_declaration_the_check_cannot_follow_is_refused_at_import() -> None:
    class Odd(TypedDict):
        when: bytes

    class Optional(TypedDict):
        items: list[str] | None  # null is absent anyway: declare list[str]

    for declared in (Odd, Optional):
        with pytest.raises(TypeError, match="no shape check"):
            shape.problem_finder(declared)
