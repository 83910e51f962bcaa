"""Bad input never crashes: any subtree of a worker StatefulSet replaced by a value of the
wrong type gives a refusal with a message naming the field, or a correct result."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonpatch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests import worker
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
    policy.validate(obj, cfg)
    for mode in ("mutate", "validate"):
        request = {"uid": "u", "operation": "CREATE", "object": json.loads(json.dumps(obj))}
        doc = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
        reply, _ = review.respond(review.parse(doc, cfg), mode=mode)
        assert reply["response"]["uid"] == "u"
