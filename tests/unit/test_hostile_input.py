"""Hostile but well-formed input (issue 12, items 2, 4, 8, 9): our own annotations cannot steer
the policy, work per review is bounded, nothing escapes as an exception, and no replaced value
or other Secret key is ever shown."""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any

import jsonpatch
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import worker
from tests.reviews import admission_review, patch_of
from webhook.core import bounded, cluster, config, mutation, policy, quantity, review, secrets
from webhook.core.config import Config
from webhook.server import handlers, wire

CUSTOMIZER = "org.apache.pulsar.functions.runtime.kubernetes.BasicKubernetesManifestCustomizer"
SECRETS_CONFIGURATOR = (
    "org.apache.pulsar.functions.secretsproviderconfigurator.KubernetesSecretsProviderConfigurator"
)


def strict_config(**webhook: Any) -> Config:
    """The customizer and secrets on, tight allowed keys, jobNamespace pinned, deny."""
    return config.from_mapping(
        {
            "secretsProviderConfiguratorClassName": SECRETS_CONFIGURATOR,
            "runtimeCustomizerClassName": CUSTOMIZER,
            "functionRuntimeFactoryConfigs": {"jobNamespace": "pulsar-functions"},
            "webhook": {
                "secrets": {"verify": "deny"},
                "customizer": {
                    "allowedTolerationKeys": ["dedicated"],
                    "allowedNodeSelectorKeys": ["pool"],
                },
                **webhook,
            },
        }
    )


def review_of(obj: Any, operation: str = "CREATE") -> dict[str, Any]:
    return admission_review(obj, uid="u-1", operation=operation)


def mutate_then_validate(
    obj: dict[str, Any], cfg: Config, facts: cluster.ClusterFacts | None = None
) -> tuple[review.AdmissionResponse, dict[str, Any], review.AdmissionResponse]:
    """What the API server does: /mutate, apply the patch, /validate the result."""
    mutated, _ = review.respond(review.parse(review_of(obj), cfg), mode="mutate")
    response = mutated["response"]
    stored = copy.deepcopy(obj)
    if "patch" in response:
        ops = patch_of(response)
        stored = jsonpatch.apply_patch(stored, ops)
    validated, _ = review.respond(
        review.parse(review_of(stored), cfg), mode="validate", facts=facts
    )
    return response, stored, validated["response"]


# ---------------------------------------------------------------------------------------------
# item 2: our own annotations


FORBIDDEN_OPTIONS: dict[str, Any] = {
    "jobNamespace": "kube-system",
    "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}],
    "nodeSelectorLabels": {"kubernetes.io/hostname": "master-1"},
}


@pytest.mark.parametrize(
    "annotation",
    ["pf-webhook/custom-runtime-options", "pf-webhook/secrets"],
)
def test_a_function_cannot_write_the_annotations_its_options_are_judged_by(
    annotation: str,
) -> None:
    """The issue's attack: extraAnnotations sets our annotation to `{}`, hoping /validate then
    judges no options and no secrets."""
    sts = worker.statefulset(
        k8s_namespace="pulsar-functions",
        secrets={"STOLEN": {"path": "other-teams-secret", "key": "password"}},
        custom_runtime_options={**FORBIDDEN_OPTIONS, "extraAnnotations": {annotation: "{}"}},
    )
    facts = cluster.ClusterFacts(secrets={"other-teams-secret": None})
    mutated, stored, validated = mutate_then_validate(sts, strict_config(), facts)
    assert annotation not in stored["metadata"].get("annotations", {})
    assert annotation not in stored["spec"]["template"]["metadata"].get("annotations", {})
    assert any(annotation in w and "not applied" in w for w in mutated["warnings"])
    assert validated["allowed"] is False
    message = validated["status"]["message"]
    for rule in (
        "customizer/reserved-keys",
        "namespace/job-namespace",
        "customizer/tolerations",
        "customizer/node-selector",
        "secrets/exists",
    ):
        assert f"[{rule}]" in message, rule
    assert f"extraAnnotations.{annotation}" in message


def test_our_annotations_on_a_worker_function_are_ignored_even_when_written_by_hand() -> None:
    sts = worker.statefulset(custom_runtime_options=FORBIDDEN_OPTIONS)
    sts["metadata"]["annotations"] = {
        "pf-webhook/custom-runtime-options": "{}",
        "pf-webhook/secrets": "{}",
        "pf-webhook/enabled": "true",
    }
    result = policy.validate(sts, strict_config(), namespace="pulsar-functions")
    assert {d.rule for d in result.decisions} >= {
        "namespace/job-namespace",
        "customizer/tolerations",
        "customizer/node-selector",
    }
    warnings = mutation.mutate(sts, strict_config()).warnings
    assert any("pf-webhook/secrets ignored" in w for w in warnings)


def test_a_hand_written_opt_in_workload_still_takes_its_options_from_the_annotation() -> None:
    sts = worker.statefulset()
    sts["metadata"]["labels"] = {"pf-webhook/enabled": "true"}
    script = sts["spec"]["template"]["spec"]["containers"][0]["command"]
    sts["spec"]["template"]["spec"]["containers"][0]["command"] = ["sleep", "infinity"]
    assert "--function_details" in script[-1]
    sts["metadata"]["annotations"] = {
        "pf-webhook/custom-runtime-options": json.dumps(FORBIDDEN_OPTIONS)
    }
    rules = {d.rule for d in policy.validate(sts, strict_config()).decisions}
    assert "customizer/tolerations" in rules


@pytest.mark.parametrize("option", ["extraLabels", "extraAnnotations"])
def test_extra_labels_and_annotations_cannot_set_keys_under_our_prefix(option: str) -> None:
    sts = worker.statefulset(custom_runtime_options={option: {"pf-webhook/enabled": "false"}})
    result = policy.validate(sts, strict_config())
    assert [(d.rule, d.path) for d in result.decisions if d.rule == "customizer/reserved-keys"] == [
        (
            "customizer/reserved-keys",
            f"spec.template.spec.containers[0].command[2] --function_details.customRuntimeOptions.{option}.pf-webhook/enabled",
        )
    ]
    out = mutation.mutate(sts, strict_config()).obj
    for meta in (out["metadata"], out["spec"]["template"]["metadata"]):
        assert "pf-webhook/enabled" not in meta.get("labels", {})
        assert "pf-webhook/enabled" not in meta.get("annotations", {})


# ---------------------------------------------------------------------------------------------
# item 4: bounded work


@pytest.mark.parametrize(
    "text", ["1e6000000", "1E-6000000", "9" * 10_000, "1" * 65, "1e65", "0.5e-65"]
)
def test_huge_quantities_are_refused_before_any_arithmetic(text: str) -> None:
    with pytest.raises(quantity.QuantityError) as caught:
        quantity.parse(text)
    assert len(str(caught.value)) < 100


def test_a_huge_exponent_in_custom_runtime_options_is_a_finding_not_a_stall() -> None:
    sts = worker.statefulset(
        custom_runtime_options={"resourceRequirements": {"limits": {"cpu": "1e6000000"}}}
    )
    result = policy.validate(sts, strict_config())
    assert [d.rule for d in result.decisions] == ["customizer/options"]
    assert "exponent" in result.decisions[0].message


def test_a_secrets_map_beyond_the_limit_is_refused_naming_the_limit() -> None:
    entries = {f"ENV_{i}": {"path": "s", "key": "k"} for i in range(1001)}
    refs, findings = secrets.parse(json.dumps(entries), "secretsMap")
    assert refs == []
    assert [f.message for f in findings] == [
        "has 1001 entries; at most 1000 are allowed (webhook.limits.maxSecrets)"
    ]


def test_a_24000_entry_secrets_map_is_handled_when_the_limit_allows_it() -> None:
    """Linear algorithms: the secrets map, the env index and the patch (the test's timeout is
    the bound; this took minutes when the env list was scanned once per entry)."""
    entries = {f"ENV_{i}": {"path": "s", "key": "k"} for i in range(24_000)}
    sts = worker.statefulset(secrets=entries)
    container = sts["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [{"name": f"ENV_{i}", "value": "LEAK-1"} for i in range(0, 24_000, 2)]
    # the map sits in --function_details: a 1 MB command line, so both limits are raised
    limits = bounded.Limits(max_secrets=24_000, max_command_length=4_000_000)
    cfg = dataclasses.replace(config.default_config(), limits=limits)
    answer, _ = review.respond(review.parse(review_of(sts), cfg), mode="mutate")
    response = answer["response"]
    ops = patch_of(response)
    env = jsonpatch.apply_patch(sts, ops)["spec"]["template"]["spec"]["containers"][0]["env"]
    assert [e["name"] for e in env] == [f"ENV_{i}" for i in range(0, 24_000, 2)] + [
        f"ENV_{i}" for i in range(1, 24_000, 2)
    ]
    assert all("valueFrom" in e and "value" not in e for e in env)
    assert len(response["warnings"]) == review.MAX_WARNINGS
    assert response["warnings"][-1] == f"... and {12_000 - review.MAX_WARNINGS + 1} more warnings"


def test_limits_are_configurable_and_checked() -> None:
    cfg = config.loads("webhook: {limits: {maxJsonDepth: 10, maxNumberDigits: 30, maxSecrets: 5}}")
    assert cfg.limits == bounded.Limits(max_json_depth=10, max_number_digits=30, max_secrets=5)
    with pytest.raises(config.ConfigError, match=r"webhook.limits.maxSecrets: 0 is not in"):
        config.loads("webhook: {limits: {maxSecrets: 0}}")
    with pytest.raises(config.ConfigError, match=r"webhook.limits.maxDepth: unknown key"):
        config.loads("webhook: {limits: {maxDepth: 3}}")


# ---------------------------------------------------------------------------------------------
# item 8: every hostile value answered, never raised


def _nest(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


def _deep_json_text(depth: int) -> str:
    return "[" * depth + "]" * depth


HUGE_INT = "9" * 5000


def _details_with(**fields: Any) -> dict[str, Any]:
    """A worker StatefulSet whose --function_details carry `fields` (raw JSON text allowed)."""
    sts = worker.statefulset()
    container = sts["spec"]["template"]["spec"]["containers"][0]
    details = worker.function_details(tenant="public", namespace="default", name="exclamation")
    raw = json.dumps({**details, **{k: v for k, v in fields.items() if not k.startswith("_")}})
    for key, text in fields.items():
        if key.startswith("_"):  # raw JSON text replacing a placeholder
            raw = raw.replace(f'"{key}"', text)
    script = container["command"][-1]
    start = script.index("--function_details '") + len("--function_details '")
    end = script.index("'", start)
    container["command"][-1] = script[:start] + raw + script[end:]
    return sts


def _hostile_objects() -> list[Any]:
    """The 24 input classes of issue 12 item 8, and their neighbours."""
    granular = "resources"
    return [
        # integers over 4,300 digits where we parse numbers
        _details_with(resources={"cpu": 1, "ram": "_ram"}, _ram=HUGE_INT),
        _details_with(resources={"cpu": "_cpu", "ram": "1"}, _cpu=HUGE_INT),
        _details_with(resources={"cpu": "_cpu"}, _cpu=f"{HUGE_INT}.5"),
        _details_with(resources={"ram": HUGE_INT}),
        _details_with(
            secretsMap=json.dumps({"A": {"path": "p", "key": "k"}})[:-1] + f',"n":{HUGE_INT}}}'
        ),
        _details_with(
            customRuntimeOptions=f'{{"tolerations":[{{"key":"a","tolerationSeconds":{HUGE_INT}}}]}}'
        ),
        _details_with(
            customRuntimeOptions=f'{{"resourceRequirements":{{"limits":{{"cpu":{HUGE_INT}}}}}}}'
        ),
        _details_with(customRuntimeOptions=f'{{"extraLabels":{{"a":{HUGE_INT}}}}}'),
        _details_with(runtime="_rt", _rt=HUGE_INT),
        _details_with(runtime=["JAVA"]),
        _details_with(runtime={"a": 1}),
        # NaN and Infinity as cpu (with a granularity), and as ram
        _details_with(resources={"cpu": "NaN", "ram": "1"}),
        _details_with(resources={"cpu": "Infinity", "ram": "1"}),
        _details_with(resources={"cpu": "-Infinity"}),
        _details_with(resources={"cpu": "_c"}, _c="NaN"),
        _details_with(resources={"cpu": "_c"}, _c="1e999"),
        _details_with(resources={"ram": "_r"}, _r="1e999"),
        _details_with(resources={"ram": "_r"}, _r="Infinity"),
        _details_with(resources={"cpu": 1e306, "ram": "1024"}),
        _details_with(resources={"cpu": -1.7e308, "ram": "-9223372036854775808"}),
        # deep JSON inside strings
        _details_with(customRuntimeOptions=_deep_json_text(100_000)),
        _details_with(customRuntimeOptions=_deep_json_text(490)),
        _details_with(secretsMap=_deep_json_text(100_000)),
        _details_with(secretsMap=json.dumps({"A": _nest(490)})),
        _details_with(userConfig="_u", _u=_deep_json_text(490)),
        _details_with(**{granular: "_x"}, _x=json.dumps(_nest(200))),
        # deep objects
        {**worker.statefulset(), "extra": _nest(490)},
        {**worker.statefulset(), "spec": {**worker.statefulset()["spec"], "x": _nest(800)}},
        # our own annotations with deep or huge content
        {
            **worker.statefulset(),
            "metadata": {
                "name": "x",
                "labels": {"pf-webhook/enabled": "true", "bad": "not valid!"},
                "annotations": {
                    "pf-webhook/original-labels": _deep_json_text(100_000),
                    "pf-webhook/secrets": _deep_json_text(100_000),
                    "pf-webhook/custom-runtime-options": "1" * 5000,
                },
            },
        },
        # a stray -instance-conf after the Java instance's flags
        *(_with_instance_conf(text) for text in ("{", "[" * 100_000, f'{{"a": {HUGE_INT}}}')),
        # quantities
        {
            **worker.statefulset(
                custom_runtime_options={"resourceRequirements": {"limits": {"cpu": "1e6000000"}}}
            )
        },
    ]


def _with_instance_conf(text: str) -> dict[str, Any]:
    sts = worker.statefulset(auth="sa-token")
    sts["spec"]["template"]["spec"]["containers"][0]["command"][-1] += f" -instance-conf '{text}'"
    return sts


GRANULAR = config.from_mapping(
    {
        "secretsProviderConfiguratorClassName": SECRETS_CONFIGURATOR,
        "runtimeCustomizerClassName": CUSTOMIZER,
        "functionInstanceMinResources": {"cpu": 0.1, "ram": 1},
        "functionInstanceMaxResources": {"cpu": 16, "ram": 2**40},
        "functionInstanceResourceGranularities": {"cpu": 0.5, "ram": 1024},
        "functionInstanceResourceChangeInLockStep": True,
        "authenticationEnabled": True,
        "functionAuthProviderClassName": "org.apache.pulsar.functions.auth.KubernetesServiceAccountTokenAuthProvider",
        "webhook": {"customizer": {"maxResources": {"cpu": "8"}}},
    }
)


def _answers(body: Any, cfg: Config) -> list[review.AdmissionResponse]:
    parsed = review.parse(body, cfg)
    return [review.respond(parsed, mode=mode)[0]["response"] for mode in ("mutate", "validate")]


@pytest.mark.parametrize("index", range(len(_hostile_objects())))
@pytest.mark.parametrize("cfg", [GRANULAR, config.default_config()], ids=["granular", "default"])
def test_each_hostile_class_is_answered_with_a_review(index: int, cfg: Config) -> None:
    obj = _hostile_objects()[index]
    for response in _answers(review_of(obj), cfg):
        assert response["uid"] == "u-1"
        if not response["allowed"]:
            assert response["status"]["message"]
            assert len(response["status"]["message"]) <= review.MAX_MESSAGE


@pytest.mark.parametrize(
    ("obj", "words"),
    [
        pytest.param({**worker.statefulset(), "x": _nest(100)}, "nested deeper than 64", id="deep"),
        pytest.param(
            {**worker.statefulset(), "x": [10**4000]}, "more than 64 digits", id="long-int"
        ),
        pytest.param({**worker.statefulset(), "x": float("nan")}, "nan is not", id="nan"),
    ],
)
def test_an_object_beyond_the_limits_is_refused_naming_the_limit(obj: Any, words: str) -> None:
    for response in _answers(review_of(obj), config.default_config()):
        assert response["allowed"] is False
        assert response["status"]["code"] == 400
        assert words in response["status"]["message"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "x": '
        + b"9" * 5000
        + b"}",
        b"[" * 100_000,
        b'{"a": NaN}',
        b'{"a": 1e999}',
    ],
    ids=["huge-int", "deep", "nan", "inf"],
)
def test_an_unreadable_body_is_a_review_error(body: bytes) -> None:
    """The server's reading of a body: not strict JSON, or not an AdmissionReview (1e999 is
    read as infinity, in no AdmissionReview): a 400 naming why, never a traceback."""
    with pytest.raises((wire.BadJson, review.ReviewError)):
        handlers.parse_body(body, config.default_config())


def test_cpu_that_is_not_finite_is_a_function_details_finding() -> None:
    sts = _details_with(resources={"cpu": "NaN", "ram": "1024"})
    result = policy.validate(sts, GRANULAR)
    assert [d.rule for d in result.decisions] == ["function/details"]
    assert "expected a finite number" in result.decisions[0].message


# Values an author controls, as JSON values or as text inside the JSON strings we parse.
hostile_scalars = st.one_of(
    st.integers(min_value=-(10**80), max_value=10**80),
    st.sampled_from([1e306, -1.7e308, 2.0**63, 2**63, -(2**63) - 1, 5e-324]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "1e6000000", HUGE_INT, "", "null"]),
    st.text(max_size=30),
    st.booleans(),
    st.none(),
)
hostile_values = st.recursive(
    hostile_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.text(max_size=10), children, max_size=3),
    ),
    max_leaves=10,
) | st.integers(min_value=1, max_value=600).map(_nest)
hostile_text = st.one_of(
    hostile_values.map(lambda v: json.dumps(v, allow_nan=True)),
    st.sampled_from(["{", "[" * 5000, HUGE_INT, "NaN", "{'a': 1}", '{"a": NaN}']),
    st.text(max_size=40),
)
FIELDS = (
    "tenant",
    "namespace",
    "name",
    "runtime",
    "resources",
    "secretsMap",
    "customRuntimeOptions",
    "userConfig",
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    field=st.sampled_from(FIELDS),
    value=hostile_values,
    text=hostile_text,
    as_text=st.booleans(),
    cfg=st.sampled_from([GRANULAR, config.default_config(), strict_config()]),
)
def test_no_hostile_author_value_makes_a_review_raise(
    field: str, value: Any, text: str, as_text: bool, cfg: Config
) -> None:
    if field in ("secretsMap", "customRuntimeOptions") and as_text:
        sts = _details_with(**{field: text})
    elif field == "resources" and not isinstance(value, dict):
        sts = _details_with(resources={"cpu": value, "ram": value})
    else:
        sts = _details_with(**{field: value})
    for response in _answers(review_of(json.loads(json.dumps(sts))), cfg):
        assert response["uid"] == "u-1"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    where=st.sampled_from(
        [
            ("metadata", "labels"),
            ("metadata", "annotations"),
            ("spec", "template", "metadata", "annotations"),
            ("spec", "template", "spec", "nodeSelector"),
        ]
    ),
    key=st.text(max_size=20),
    value=st.text(max_size=20),
    tolerations=st.lists(hostile_values, max_size=3),
    limits=st.dictionaries(st.sampled_from(["cpu", "memory"]), hostile_values, max_size=2),
)
def test_no_hostile_object_field_makes_a_review_raise(
    where: tuple[str, ...], key: str, value: str, tolerations: list[Any], limits: dict[str, Any]
) -> None:
    sts = worker.statefulset()
    node = sts
    for part in where:
        node = node.setdefault(part, {})
    node[key] = value
    pod = sts["spec"]["template"]["spec"]
    pod["tolerations"] = tolerations
    pod["containers"][0]["resources"] = {"limits": limits}
    for cfg in (GRANULAR, strict_config()):
        for response in _answers(review_of(json.loads(json.dumps(sts))), cfg):
            assert response["uid"] == "u-1"


# ---------------------------------------------------------------------------------------------
# item 9: nothing replaced is quoted


def test_values_we_replace_and_other_secret_keys_never_appear_in_any_answer() -> None:
    leaks = [
        "LEAK-annotation-value",
        "LEAK-label-value",
        "LEAK-env-literal",
        "LEAK-auth-params",
        "LEAK-provider",
        "LEAK-other-key",
        "LEAK-service-account",
        "LEAK-audience",
        "LEAK-node",
    ]
    cfg = config.from_mapping(
        {
            "secretsProviderConfiguratorClassName": SECRETS_CONFIGURATOR,
            "runtimeCustomizerClassName": CUSTOMIZER,
            "authenticationEnabled": True,  # the worker uses the auth provider only then
            "functionAuthProviderClassName": "org.apache.pulsar.functions.auth.KubernetesServiceAccountTokenAuthProvider",
            "functionRuntimeFactoryConfigs": {
                "kubernetesFunctionAuthProviderConfig": {"serviceAccountTokenAudience": "pulsar"}
            },
            "webhook": {
                "secrets": {"verify": "warn"},
                "tokens": {"serviceAccountName": "pf-{tenant}-{namespace}-{name}"},
            },
        }
    )
    sts = worker.statefulset(
        secrets={"DB": {"path": "db", "key": "password"}},
        auth="sa-token",
        audience="LEAK-audience",
        custom_runtime_options={
            "extraAnnotations": {"note": "new"},
            "extraLabels": {"team": "new"},
            "nodeSelectorLabels": {"pool": "new"},
        },
    )
    sts["metadata"].setdefault("annotations", {})["note"] = "LEAK-annotation-value"
    sts["metadata"]["labels"]["team"] = "LEAK-label-value"
    pod = sts["spec"]["template"]["spec"]
    pod["serviceAccountName"] = "LEAK-service-account"
    pod["nodeSelector"] = {"pool": "LEAK-node"}
    container = pod["containers"][0]
    container["env"] = [{"name": "DB", "value": "LEAK-env-literal"}]
    script = container["command"][-1]
    container["command"][-1] = (
        script + " --client_auth_params LEAK-auth-params --secrets_provider LEAK-provider"
    )
    facts = cluster.ClusterFacts(secrets={"db": frozenset({"user", "LEAK-other-key"})})
    mutated, _, validated = mutate_then_validate(sts, cfg, facts)
    assert mutated["warnings"], "the replacements must still be reported"
    assert "secrets/exists" in validated["auditAnnotations"]["rules"]
    shown = json.dumps(
        [mutated.get("warnings"), mutated.get("auditAnnotations"), validated], sort_keys=True
    )
    for leak in leaks:
        assert leak not in shown, leak


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a document (mappings' keys and lists' indexes), parents first."""
    found = [prefix]
    if isinstance(node, dict):
        for key, child in node.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found += _paths(child, (*prefix, index))
    return found


FULL = worker.statefulset(
    secrets={"DB": {"path": "db", "key": "password"}},
    auth="sa-token",
    ca_secret="broker-ca",
    audience="pulsar",
    custom_runtime_options={
        "extraLabels": {"team": "a"},
        "tolerations": [{"key": "dedicated", "operator": "Exists"}],
        "resourceRequirements": {"limits": {"cpu": "2"}},
    },
)
FULL_PATHS = [p for p in _paths(FULL) if p]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    path=st.sampled_from(FULL_PATHS),
    value=hostile_values | hostile_text,
    cfg=st.sampled_from([GRANULAR, strict_config()]),
)
def test_no_hostile_value_anywhere_in_the_object_makes_a_review_raise(
    path: tuple[Any, ...], value: Any, cfg: Config
) -> None:
    """Someone who can write the StatefulSet controls every field of it."""
    obj = copy.deepcopy(FULL)
    node = obj
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    for response in _answers(review_of(obj), cfg):
        assert response["uid"] == "u-1"


def test_a_selector_override_denial_with_huge_labels_stays_within_the_message_limit() -> None:
    """The mutating denial quotes label keys and values the object carries: it is cut to
    MAX_MESSAGE like every other denial, however many and however long they are."""
    sts = worker.statefulset()
    selected = sts["spec"]["selector"]["matchLabels"]
    assert selected
    huge = "v" * 100_000
    sts["spec"]["template"]["metadata"]["labels"].update({key: huge for key in selected})
    sts["metadata"].setdefault("labels", {}).update({key: huge for key in selected})
    response = _answers(review_of(sts), config.default_config())[0]
    assert response["allowed"] is False
    assert response["status"]["code"] == 403
    assert "[customizer/options]" in response["status"]["message"]
    assert len(response["status"]["message"]) <= review.MAX_MESSAGE


def test_a_service_name_that_is_not_a_dns1035_label_is_a_finding_at_its_path() -> None:
    sts = worker.statefulset()
    sts["spec"]["serviceName"] = "9-starts-with-a-digit"
    decisions = policy.validate(sts, config.default_config()).decisions
    hits = [d for d in decisions if d.rule == "naming/service-name"]
    assert [d.path for d in hits] == ["spec.serviceName"]
    assert "'9-starts-with-a-digit' is not a DNS-1035 label" in hits[0].message
