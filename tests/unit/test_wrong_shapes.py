"""Bad input never crashes: any subtree of a worker StatefulSet replaced by a value of the
wrong type gives a refusal with a message naming the field, or a correct result.

The field is named as the API server's own errors name one: `spec.template.spec.containers[0]`,
map keys in brackets (`metadata.labels[app.kubernetes.io/name]`); the refusal names an edited
field or one inside the value put there."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import jsonpatch
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests import worker
from tests.reviews import admission_review
from webhook.core import config, mutation, patch, policy, review

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
        reply, _ = review.respond(review.parse(doc), cfg, mode=mode)
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


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        (
            ("spec", "template", "spec", "containers"),
            {"name": "pulsarfunction"},
            "spec.template.spec.containers",
        ),
        (
            ("spec", "template", "spec", "containers", 0, "env", 0),
            "text",
            "spec.template.spec.containers[0].env[0]",
        ),
        (
            ("spec", "template", "metadata", "annotations", "prometheus.io/port"),
            7,
            "spec.template.metadata.annotations[prometheus.io/port]",
        ),
        (
            ("spec", "selector", "matchLabels", "tenant"),
            True,
            "spec.selector.matchLabels[tenant]",
        ),
        (("metadata", "labels"), ["x"], "metadata.labels"),
    ],
)
def test_a_wrong_type_is_refused_naming_its_field_path(
    path: tuple[Any, ...], value: Any, named: str
) -> None:
    """The path text exactly (the whole messages are in tests/golden/wrong-shape.yaml)."""
    obj = copy.deepcopy(BASE)
    node: Any = obj
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    for cfg in (ALL_ON, config.default_config()):
        result = mutation.mutate(obj, cfg)
        assert result.refusal is not None
        assert result.refusal.startswith(f"object of the wrong shape: {named} must ")
        assert _named_path(result.refusal) == tuple(str(key) for key in path)
