"""Every test vector of reference/pulsar-runtime.md, against the pure core.

Sections follow the reference: §2 job names, §3 labels, §9 customizer, §10 secrets, §11 auth
providers, §12 resource checks, §6.4 quantities. Where the webhook deliberately differs from
Pulsar (SPEC: end fixed after truncation, duplicate tolerations dropped, one projected volume
at /etc/auth), the test says so and asserts our behaviour next to Pulsar's.
"""

from __future__ import annotations

import copy
import json
import subprocess
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests import worker
from webhook.core import command, config, customizer, mutation, naming, policy, quantity, secrets
from webhook.core.config import Resources

# ---------------------------------------------------------------------------------------------
# helpers


def _pod(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]


def _container(obj: dict[str, Any]) -> dict[str, Any]:
    containers = _pod(obj)["containers"]
    return next(c for c in containers if c["name"] == "pulsarfunction")


def _script(obj: dict[str, Any]) -> str:
    return _container(obj)["command"][2]


def _options(doc: dict[str, Any], path: str = "options") -> config.RuntimeOptions:
    options, _notes = config.parse_runtime_options(doc, path)
    return options


def _q(value: object) -> Any:
    return quantity.parse(value)


# ---------------------------------------------------------------------------------------------
# §2.4 job names (KubernetesRuntimeTest), §2.5 extra vectors

JOB_NAME_VECTORS = [
    pytest.param(
        "tenant",
        "namespace",
        "container",
        None,
        "pf-tenant-namespace-container",
        id="backward-compat",
    ),
    pytest.param(
        "tenant",
        "namespace",
        "UpperCaseFunction",
        None,
        "pf-tenant-namespace-uppercasefunction-f0c5ca9a",
        id="upper-case",
    ),
    pytest.param(
        "tenant",
        "namespace",
        "clazz.testfunction",
        None,
        "pf-tenant-namespace-clazz.testfunction",
        id="dot-kept-no-hash",
    ),
    pytest.param(
        "tenant",
        "namespace",
        "Clazz.TestFunction",
        None,
        "pf-tenant-namespace-clazz.testfunction-92ec5bf6",
        id="dot-and-upper-case",
    ),
    pytest.param(
        "tenant",
        "namespace",
        "test_function*name",
        None,
        "pf-tenant-namespace-test-function-name-b5a215ad",
        id="underscore-and-star",
    ),
    pytest.param(
        "tenant", "namespace", "testfunction", None, "pf-tenant-namespace-testfunction", id="lower"
    ),
    pytest.param(
        "tenant",
        "namespace",
        "testFunction",
        None,
        "pf-tenant-namespace-testfunction-9fda984b",
        id="camel-case",
    ),
    pytest.param(
        "tenant",
        "namespace",
        "test+function*name",
        None,
        "pf-tenant-namespace-test-function-name-8211d14f",
        id="plus-and-star",
    ),
    pytest.param(
        "tenant",
        "namespace",
        "clazz.testfunction",
        "custom-k8s-pod-name",
        "custom-k8s-pod-name-dedfc7cf",
        id="custom",
    ),
    pytest.param(
        "tenant",
        "namespace",
        "clazz.testfunction",
        "invalid_pod*name",
        "invalid-pod-name-af8c3a6c",
        id="custom-converted",
    ),
    pytest.param(
        "tenant",
        "namespace",
        "clazz.testfunction",
        "custom-name",
        "custom-name-85ac54b0",
        id="custom-name",
    ),
    pytest.param(
        "tenantA",
        "nsA",
        "clazz.testfunction",
        "custom-name",
        "custom-name-c66edfe1",
        id="custom-name-other-tenant",
    ),
    pytest.param(
        "tenant",
        "namespace",
        "clazz.testfunction-extra",
        "custom-name",
        "custom-name-0fc9c728",
        id="custom-name-other-function",
    ),
    pytest.param(
        "tenant",
        "namespace",
        "container",
        "custom-name",
        "custom-name-2deb2c2b",
        id="customizer-job-name",
    ),
    pytest.param(
        "tenant",
        "namespace",
        "container",
        "custom-name-overwrite",
        "custom-name-overwrite-7757f1ff",
        id="custom-runtime-options-overwrite",
    ),
    pytest.param(
        "tenant",
        "namespace",
        "clazz.testfunction",
        "custom-k8s-pod-name-over-kuberenetes-max-character-limit-123456789",
        "custom-k8s-pod-name-over-kuberenetes-max-character-limit-123456789-56452d94",
        id="custom-too-long",
    ),
]

EXTRA_JOB_NAME_VECTORS = [
    pytest.param(
        "public", "default", "exclamation", "pf-public-default-exclamation", 29, id="exclamation"
    ),
    pytest.param(
        "public", "default", "my_func", "pf-public-default-my-func-2cbceb3f", 34, id="underscore"
    ),
    pytest.param(
        "public", "default", "My.Func", "pf-public-default-my.func-af70bb36", 34, id="dot"
    ),
    pytest.param(
        "public", "default", "func_", "pf-public-default-func--3b8010e8", 32, id="double-dash"
    ),
    pytest.param("public", "default", "func-", "pf-public-default-func-", 23, id="trailing-dash"),
    pytest.param("public", "default", "a..b", "pf-public-default-a..b", 22, id="empty-segment"),
    pytest.param(
        "platform",
        "namespace:test",
        "inputs:test.input:tf",
        "pf-platform-namespace-test-inputs-test.input-tf-81e3be77",
        56,
        id="issue-19583",
    ),
    pytest.param(
        "verylongtenantname",
        "verylongnamespacename",
        "verylongfunctionname",
        "pf-verylongtenantname-verylongnamespacename-verylongfunctionname",
        64,
        id="issue-9310",
    ),
]

LENGTH_ERROR = "Kubernetes job name size should be less than 53"


def _regex_error(job: str) -> str:
    return f"Kubernetes only admits lower case and numbers. (jobName={job})"


@pytest.mark.parametrize(("tenant", "namespace", "name", "custom", "expected"), JOB_NAME_VECTORS)
def test_the_job_name_is_the_one_the_worker_computes(
    tenant: str, namespace: str, name: str, custom: str | None, expected: str
) -> None:
    assert naming.job_name(tenant=tenant, namespace=namespace, name=name, custom=custom) == expected


@pytest.mark.parametrize(("tenant", "namespace", "name", "custom", "expected"), JOB_NAME_VECTORS)
def test_pulsar_admits_every_test_job_name_except_the_one_over_53_characters(
    tenant: str, namespace: str, name: str, custom: str | None, expected: str
) -> None:
    wanted = LENGTH_ERROR if len(expected) > 53 else None
    assert naming.pulsar_job_name_error(expected) == wanted


def test_names_differing_only_in_case_or_in_replaced_characters_get_different_job_names() -> None:
    def job(name: str) -> str:
        return naming.job_name(tenant="tenant", namespace="namespace", name=name)

    assert job("testfunction") != job("testFunction")
    assert job("test_function*name") != job("test+function*name")


@pytest.mark.parametrize(
    ("tenant", "namespace", "name", "expected", "length"), EXTRA_JOB_NAME_VECTORS
)
def test_the_extra_job_name_vectors_are_reproduced(
    tenant: str, namespace: str, name: str, expected: str, length: int
) -> None:
    job = naming.job_name(tenant=tenant, namespace=namespace, name=name)
    assert job == expected
    assert len(job) == length


@pytest.mark.parametrize(
    ("job", "message"),
    [
        pytest.param("pf-public-default-exclamation", None, id="exclamation"),
        pytest.param("pf-public-default-my-func-2cbceb3f", None, id="underscore"),
        pytest.param("pf-public-default-my.func-af70bb36", None, id="dot"),
        pytest.param("pf-public-default-func--3b8010e8", None, id="double-dash-is-legal"),
        pytest.param(
            "pf-public-default-func-", _regex_error("pf-public-default-func-"), id="trailing-dash"
        ),
        pytest.param(
            "pf-public-default-a..b", _regex_error("pf-public-default-a..b"), id="empty-segment"
        ),
        pytest.param(
            "pf-platform-namespace-test-inputs-test.input-tf-81e3be77", LENGTH_ERROR, id="56-chars"
        ),
        pytest.param(
            "pf-verylongtenantname-verylongnamespacename-verylongfunctionname",
            LENGTH_ERROR,
            id="64-chars",
        ),
        pytest.param("Pf-Upper", "Kubernetes does not allow upper case jobNames.", id="upper-case"),
        pytest.param("a" * 53, None, id="53-is-accepted-despite-the-message"),
        pytest.param("a" * 54, LENGTH_ERROR, id="54-is-refused"),
    ],
)
def test_pulsar_rejects_job_names_with_its_exact_messages(job: str, message: str | None) -> None:
    assert naming.pulsar_job_name_error(job) == message


@pytest.mark.parametrize(
    ("length", "admitted"),
    [pytest.param(44, True, id="44-fits"), pytest.param(45, False, id="45-too-long")],
)
def test_a_custom_job_name_has_a_budget_of_44_characters(length: int, admitted: bool) -> None:
    job = naming.job_name(tenant="t", namespace="n", name="f", custom="j" * length)
    assert len(job) == length + 9
    assert (naming.pulsar_job_name_error(job) is None) is admitted


# ---------------------------------------------------------------------------------------------
# §3.3 labels

LONG_LABEL_INPUT = "namespace:$second.part:third@test_0".ljust(100, "0")
BUGGY = "a" * 62 + "-b"

# input, Pulsar's toValidLabelName (bug included), pulsar-runtime style (fixed), documented style
LABEL_VECTORS = [
    pytest.param("tenant", "tenant", "tenant", "tenant", id="tenant"),
    pytest.param(
        LONG_LABEL_INPUT,
        "namespace--second.part-third-test_0".ljust(63, "0"),
        "namespace--second.part-third-test_0".ljust(63, "0"),
        "namespace--second-part-third-test-0".ljust(63, "0"),
        id="padded-to-100",
    ),
    pytest.param(
        "$function_name!", "0function_name0", "0function_name0", "0function-name0", id="ends"
    ),
    pytest.param(
        "my:example:namespace",
        "my-example-namespace",
        "my-example-namespace",
        "my-example-namespace",
        id="issue-9360",
    ),
    pytest.param("--abc", "0-abc", "0-abc", "0-abc", id="leading-dashes"),
    pytest.param("abc--", "abc-0", "abc-0", "abc-0", id="trailing-dashes"),
    pytest.param("_", "0", "0", "0", id="underscore"),
    pytest.param("", "", "", "", id="empty"),
    pytest.param("Hello World", "hello-world", "hello-world", "Hello-World", id="space"),
    pytest.param("é-x", "0-x", "0-x", "0-x", id="non-ascii"),
    pytest.param("a.b_c", "a.b_c", "a.b_c", "a.b_c", id="dot-underscore-valid"),
    pytest.param("x" * 70, "x" * 63, "x" * 63, "x" * 63, id="truncated"),
    pytest.param(BUGGY, "a" * 62 + "-", "a" * 62 + "0", "a" * 62 + "0", id="truncation-bug"),
]


@pytest.mark.parametrize(("value", "pulsar", "runtime", "documented"), LABEL_VECTORS)
def test_pulsar_label_value_reproduces_the_worker_bug_included(
    value: str, pulsar: str, runtime: str, documented: str
) -> None:
    assert naming.pulsar_label_value(value) == pulsar


@pytest.mark.parametrize(("value", "pulsar", "runtime", "documented"), LABEL_VECTORS)
def test_the_pulsar_runtime_style_is_the_worker_rule_with_the_end_fixed_after_truncation(
    value: str, pulsar: str, runtime: str, documented: str
) -> None:
    converted = naming.to_label_value(value, "pulsar-runtime")
    assert converted == runtime
    assert naming.is_label_value(converted)


@pytest.mark.parametrize(("value", "pulsar", "runtime", "documented"), LABEL_VECTORS)
def test_the_documented_style_replaces_every_non_alphanumeric_and_fixes_both_ends(
    value: str, pulsar: str, runtime: str, documented: str
) -> None:
    converted = naming.to_label_value(value, "documented")
    assert converted == documented
    assert naming.is_label_value(converted)


def test_the_worker_bug_leaves_an_invalid_label_and_is_not_idempotent() -> None:
    once = naming.pulsar_label_value(BUGGY)
    assert not naming.is_label_value(once)
    assert naming.pulsar_label_value(once) == "a" * 62 + "0"


@pytest.mark.parametrize("style", ["documented", "pulsar-runtime"])
@pytest.mark.parametrize(
    "value",
    [
        pytest.param("tenant", id="lower"),
        pytest.param("Tenant", id="upper-case-is-valid"),
        pytest.param("a.b_c", id="dot-underscore"),
        pytest.param("a-b", id="dash"),
        pytest.param("x" * 63, id="63-chars"),
        pytest.param("", id="empty"),
        pytest.param("0", id="digit"),
    ],
)
def test_a_valid_label_value_never_changes(value: str, style: naming.LabelStyle) -> None:
    assert naming.is_label_value(value)
    assert naming.to_label_value(value, style) == value


@given(st.text(max_size=130), st.sampled_from(["documented", "pulsar-runtime"]))
def test_a_converted_label_value_is_always_valid_and_stable(
    value: str, style: naming.LabelStyle
) -> None:
    converted = naming.to_label_value(value, style)
    assert naming.is_label_value(converted)
    assert naming.to_label_value(converted, style) == converted


@given(st.text(max_size=130))
def test_the_pulsar_runtime_style_agrees_with_the_worker_whenever_the_worker_is_right(
    value: str,
) -> None:
    pulsar = naming.pulsar_label_value(value)
    if not naming.is_label_value(value) and naming.is_label_value(pulsar):
        assert naming.to_label_value(value, "pulsar-runtime") == pulsar


# ---------------------------------------------------------------------------------------------
# §9.5 BasicKubernetesManifestCustomizer

STANDARD = {
    "jobNamespace": "custom-ns",
    "jobName": "custom-name",
    "extraAnnotations": {"annotation": "test"},
    "extraLabels": {"label": "test"},
    "nodeSelectorLabels": {"selector": "test"},
    "tolerations": [{"key": "test", "value": "test", "effect": "test"}],
    "resourceRequirements": {
        "requests": {"cpu": "1", "memory": "4G"},
        "limits": {"cpu": "2", "memory": "8G"},
    },
}

MERGE_FUNCTION = {
    "jobName": "merged-name",
    "tolerations": [
        {"key": "merge-key", "effect": "NoSchedule", "operator": "Equal", "tolerationSeconds": 6000}
    ],
    "resourceRequirements": {"limits": {"cpu": "20", "memory": "10240"}},
    "nodeSelectorLabels": {"disktype": "ssd"},
    "extraAnnotations": {"functiontype": "sink"},
    "extraLabels": {"functiontype": "sink"},
}

CUSTOMIZER_ON = {"runtimeCustomizerClassName": config.BASIC_CUSTOMIZER}


def test_options_without_any_field_are_empty() -> None:
    options = _options({})
    assert options == config.RuntimeOptions()
    assert options.job_name is None
    assert options.job_namespace is None
    assert not options.extra_labels
    assert not options.extra_annotations
    assert not options.node_selector_labels
    assert options.tolerations == ()
    assert not options.resource_requirements


def test_options_with_job_namespace_and_name_return_them() -> None:
    options = _options({"jobNamespace": "custom-ns", "jobName": "custom-name"})
    assert (options.job_namespace, options.job_name) == ("custom-ns", "custom-name")


def test_merge_reproduces_pulsars_TestMergeRuntimeOpts() -> None:
    merged = customizer.merge(_options(STANDARD), _options(MERGE_FUNCTION))
    assert merged.job_name == "merged-name"
    assert merged.job_namespace == "custom-ns"
    assert len(merged.tolerations) == 2
    assert len(merged.extra_annotations) == 2
    assert len(merged.extra_labels) == 2
    assert len(merged.node_selector_labels) == 2
    limits = merged.resource_requirements["limits"]
    assert _q(limits["cpu"]) == 20
    assert _q(limits["memory"]) == 10240
    requests = merged.resource_requirements["requests"]
    assert (_q(requests["cpu"]), _q(requests["memory"])) == (1, 4 * 10**9)


def test_merge_puts_cluster_tolerations_first_and_drops_exact_duplicates() -> None:
    cluster = _options(STANDARD)
    function = _options({"tolerations": [*STANDARD["tolerations"], *MERGE_FUNCTION["tolerations"]]})
    merged = customizer.merge(cluster, function)
    assert [t["key"] for t in merged.tolerations] == ["test", "merge-key"]


def test_merge_does_not_modify_its_arguments() -> None:
    opts1 = _options(
        {
            "jobNamespace": "namespace1",
            "jobName": "job1",
            "extraLabels": {},
            "extraAnnotations": {},
            "nodeSelectorLabels": {},
            "resourceRequirements": {},
            "tolerations": [],
        }
    )
    opts2 = _options(
        {
            "jobNamespace": "namespace2",
            "jobName": "job2",
            "extraLabels": {"testKey": "testValue"},
            "extraAnnotations": {"testKey": "testValue"},
            "nodeSelectorLabels": {"testKey": "testValue"},
            "resourceRequirements": {"limits": {}},
            "tolerations": [{}],
        }
    )
    before1, before2 = copy.deepcopy(opts1), copy.deepcopy(opts2)
    merged = customizer.merge(opts1, opts2)
    assert (opts1, opts2) == (before1, before2)
    assert (merged.job_namespace, merged.job_name) == ("namespace2", "job2")
    assert merged.extra_labels == {"testKey": "testValue"}
    assert merged.tolerations == ({},)


def test_one_functions_options_never_leak_into_the_next_merge() -> None:
    cluster = _options(STANDARD)
    before = copy.deepcopy(cluster)
    first = customizer.merge(cluster, _options(MERGE_FUNCTION))
    first.extra_labels["leak"] = "x"  # type: ignore[index]
    first.resource_requirements["limits"]["cpu"] = "99"  # type: ignore[index]
    second = customizer.merge(cluster, _options({"jobName": "other"}))
    assert cluster == before
    assert second.extra_labels == {"label": "test"}
    assert second.resource_requirements == STANDARD["resourceRequirements"]
    assert len(second.tolerations) == 1


@pytest.mark.parametrize(
    ("function_job_name", "merged"),
    [
        pytest.param("", "custom-name", id="empty-does-not-override"),
        pytest.param(" ", " ", id="space-overrides"),
        pytest.param("mine", "mine", id="function-wins"),
    ],
)
def test_a_function_job_name_wins_only_when_non_empty(function_job_name: str, merged: str) -> None:
    result = customizer.merge(_options(STANDARD), _options({"jobName": function_job_name}))
    assert result.job_name == merged


def _assert_standard_config_applied(obj: dict[str, Any]) -> None:
    assert obj["metadata"]["annotations"]["annotation"] == "test"
    assert obj["metadata"]["labels"]["label"] == "test"
    template = obj["spec"]["template"]["metadata"]
    assert template["annotations"]["annotation"] == "test"
    assert template["labels"]["label"] == "test"
    assert "label" not in obj["spec"]["selector"]["matchLabels"]
    pod = _pod(obj)
    assert pod["nodeSelector"]["selector"] == "test"
    assert len(pod["tolerations"]) == 4
    assert pod["tolerations"][3] == {"key": "test", "value": "test", "effect": "test"}
    resources = _container(obj)["resources"]
    assert _q(resources["requests"]["cpu"]) == 1
    assert _q(resources["requests"]["memory"]) == _q("4G") == 4000000000
    assert _q(resources["limits"]["cpu"]) == 2
    assert _q(resources["limits"]["memory"]) == _q("8G") == 8000000000


@pytest.mark.parametrize(
    ("doc", "options"),
    [
        pytest.param(
            {**CUSTOMIZER_ON, "runtimeCustomizerConfig": STANDARD},
            None,
            id="runtimeCustomizerConfig",
        ),
        pytest.param(CUSTOMIZER_ON, STANDARD, id="customRuntimeOptions"),
    ],
)
def test_the_standard_config_is_applied_to_a_worker_statefulset(
    doc: dict[str, Any], options: dict[str, Any] | None
) -> None:
    sts = worker.statefulset(
        tenant="tenant", namespace="namespace", name="container", custom_runtime_options=options
    )
    original = copy.deepcopy(sts)
    cfg = config.from_mapping(doc)
    result = mutation.mutate(sts, cfg)
    _assert_standard_config_applied(result.obj)
    assert sts == original
    assert mutation.mutate(result.obj, cfg).obj == result.obj


def test_the_standard_config_matches_a_worker_that_used_the_same_customizer() -> None:
    sts = worker.statefulset(
        tenant="tenant",
        namespace="namespace",
        name="container",
        job_name="custom-name",
        k8s_namespace="custom-ns",
    )
    assert sts["metadata"]["name"] == "custom-name-2deb2c2b"
    result = mutation.mutate(
        sts, config.from_mapping({**CUSTOMIZER_ON, "runtimeCustomizerConfig": STANDARD})
    )
    assert not [w for w in result.warnings if "jobName" in w or "jobNamespace" in w]


def test_job_name_and_namespace_from_options_are_compared_with_the_object() -> None:
    sts = worker.statefulset(tenant="tenant", namespace="namespace", name="container")
    cfg = config.from_mapping({**CUSTOMIZER_ON, "runtimeCustomizerConfig": STANDARD})
    result = mutation.mutate(sts, cfg)
    assert any("custom-name-2deb2c2b" in w for w in result.warnings)
    assert any("'custom-ns'" in w for w in result.warnings)


def test_custom_runtime_options_override_the_cluster_job_name_and_namespace() -> None:
    overwrite = {"jobNamespace": "custom-ns-overwrite", "jobName": "custom-name-overwrite"}
    sts = worker.statefulset(
        tenant="tenant", namespace="namespace", name="container", custom_runtime_options=overwrite
    )
    cfg = config.from_mapping({**CUSTOMIZER_ON, "runtimeCustomizerConfig": STANDARD})
    result = mutation.mutate(sts, cfg)
    _assert_standard_config_applied(result.obj)
    assert any("custom-name-overwrite-7757f1ff" in w for w in result.warnings)
    assert any("'custom-ns-overwrite'" in w for w in result.warnings)
    assert not any("custom-name-2deb2c2b" in w for w in result.warnings)


def test_custom_runtime_options_without_a_customizer_are_ignored_with_a_warning() -> None:
    sts = worker.statefulset(
        tenant="tenant", namespace="namespace", name="container", custom_runtime_options=STANDARD
    )
    cfg = config.from_mapping({"runtimeCustomizerConfig": STANDARD})
    assert not cfg.customizer_enabled
    result = mutation.mutate(sts, cfg)
    assert result.obj == sts
    assert any("customRuntimeOptions are ignored" in w for w in result.warnings)


def test_the_documentation_typo_extract_labels_is_read_as_extra_labels_with_a_warning() -> None:
    sts = worker.statefulset(custom_runtime_options={"extractLabels": {"team": "data"}})
    result = mutation.mutate(sts, config.default_config())
    assert result.obj["metadata"]["labels"]["team"] == "data"
    assert any("extractLabels" in w for w in result.warnings)


# ---------------------------------------------------------------------------------------------
# §9.2 parsing customRuntimeOptions (Gson in the worker)


@pytest.mark.parametrize("raw", [pytest.param("", id="empty"), pytest.param("null", id="null")])
def test_empty_or_null_custom_runtime_options_mean_no_options(raw: str) -> None:
    sts = worker.statefulset(custom_runtime_options=raw)
    result = mutation.mutate(sts, config.default_config())
    assert result.obj == sts
    assert result.warnings == ()


def test_non_object_custom_runtime_options_are_reported_not_applied() -> None:
    sts = worker.statefulset(custom_runtime_options="custom-service-account")
    result = mutation.mutate(sts, config.default_config())
    assert result.obj == sts
    assert any(w.startswith("customRuntimeOptions: ") for w in result.warnings)
    decisions = policy.validate(sts, config.default_config()).decisions
    assert [(d.rule, d.action) for d in decisions] == [("customizer/options", "deny")]
    assert decisions[0].path.endswith("--function_details.customRuntimeOptions")


def test_numbers_and_booleans_in_string_maps_are_coerced_to_strings() -> None:
    sts = worker.statefulset(custom_runtime_options={"extraLabels": {"a": 1, "b": True}})
    labels = mutation.mutate(sts, config.default_config()).obj["metadata"]["labels"]
    assert (labels["a"], labels["b"]) == ("1", "true")


def test_a_quantity_option_may_be_a_string_or_a_number() -> None:
    options = {"resourceRequirements": {"limits": {"cpu": 2, "memory": "4G"}}}
    sts = worker.statefulset(custom_runtime_options=options)
    limits = _container(mutation.mutate(sts, config.default_config()).obj)["resources"]["limits"]
    assert (_q(limits["cpu"]), _q(limits["memory"])) == (2, 4 * 10**9)


def test_a_nan_quantity_option_is_reported_not_a_crash() -> None:
    sts = worker.statefulset(
        custom_runtime_options='{"resourceRequirements":{"limits":{"cpu":NaN}}}'
    )
    result = mutation.mutate(sts, config.default_config())
    assert any("customRuntimeOptions" in w for w in result.warnings)


# ---------------------------------------------------------------------------------------------
# §10 secrets (KubernetesSecretsProviderConfiguratorTest)


@pytest.mark.parametrize(
    ("secrets_map", "message"),
    [
        pytest.param(
            {"secretname": "randomsecret"},
            "Kubernetes Secret should be a Map containing id/key pairs",
            id="not-a-map",
        ),
        pytest.param(
            {"secretname": {"secretname": "secretvalue"}},
            "Kubernetes Secret should contain id and key",
            id="size-below-2",
        ),
        pytest.param(
            {"secretname": {"key": "secretvalue", "other": "x"}},
            "Kubernetes Secret should contain id information",
            id="no-path",
        ),
        pytest.param(
            {"secretname": {"path": "secretvalue", "other": "x"}},
            "Kubernetes Secret should contain key information",
            id="no-key",
        ),
    ],
)
def test_a_bad_secrets_entry_is_refused_with_pulsars_exact_message(
    secrets_map: dict[str, Any], message: str
) -> None:
    refs, findings = secrets.parse(json.dumps(secrets_map), "secretsMap")
    assert refs == []
    assert [(f.rule.id, f.path, f.message) for f in findings] == [
        ("secrets/entry", "secretsMap[secretname]", message)
    ]


@pytest.mark.parametrize(
    "entry",
    [
        pytest.param({"path": "secretvalue", "key": "secretvalue"}, id="path-and-key"),
        pytest.param({"path": "secretvalue", "key": "secretvalue", "extra": "x"}, id="extra-key"),
    ],
)
def test_a_secrets_entry_with_path_and_key_is_accepted(entry: dict[str, str]) -> None:
    refs, findings = secrets.parse(json.dumps({"secretname": entry}), "secretsMap")
    assert findings == []
    assert refs == [secrets.SecretRef(env="secretname", secret="secretvalue", key="secretvalue")]


DATABASE = {"DATABASE_PASSWORD": {"path": "database-creds", "key": "password"}}
DATABASE_ENV = {
    "name": "DATABASE_PASSWORD",
    "valueFrom": {"secretKeyRef": {"name": "database-creds", "key": "password"}},
}


@pytest.mark.parametrize(
    ("runtime", "provider"),
    [
        pytest.param("JAVA", secrets.JAVA_PROVIDER, id="java"),
        pytest.param("PYTHON", secrets.PYTHON_PROVIDER, id="python"),
    ],
)
def test_the_docs_secret_becomes_a_secret_key_ref_and_the_environment_provider(
    runtime: worker.Runtime, provider: str
) -> None:
    sts = worker.statefulset(runtime=runtime, secrets=DATABASE, secrets_configurator=False)
    assert command.get_flag(_script(sts), "--secrets_provider") is None
    result = mutation.mutate(sts, config.default_config())
    container = _container(result.obj)
    assert container["env"][-1] == DATABASE_ENV
    assert [e["name"] for e in container["env"]] == ["POD_NAME", "DATABASE_PASSWORD"]
    assert command.get_flag(_script(result.obj), "--secrets_provider") == provider
    assert result.warnings == ()
    assert mutation.mutate(result.obj, config.default_config()).obj == result.obj


@pytest.mark.parametrize("runtime", ["JAVA", "PYTHON", "GO"])
def test_a_worker_with_the_kubernetes_configurator_already_has_the_right_env(
    runtime: worker.Runtime,
) -> None:
    sts = worker.statefulset(runtime=runtime, secrets=DATABASE)
    assert _container(sts)["env"][-1] == DATABASE_ENV
    result = mutation.mutate(sts, config.default_config())
    assert result.obj == sts


def test_a_go_function_gets_the_env_and_a_warning_that_go_has_no_secrets_provider() -> None:
    sts = worker.statefulset(runtime="GO", secrets=DATABASE, secrets_configurator=False)
    result = mutation.mutate(sts, config.default_config())
    assert _container(result.obj)["env"][-1] == DATABASE_ENV
    assert command.get_flag(_script(result.obj), "--secrets_provider") is None
    assert any("Go functions have no secrets provider" in w for w in result.warnings)


def test_invalid_secrets_entries_are_reported_and_valid_ones_still_injected() -> None:
    sts = worker.statefulset(
        secrets={"secretname": "randomsecret", **DATABASE}, secrets_configurator=False
    )
    result = mutation.mutate(sts, config.default_config())
    assert [e["name"] for e in _container(result.obj)["env"]] == ["POD_NAME", "DATABASE_PASSWORD"]
    assert any(
        "Kubernetes Secret should be a Map containing id/key pairs" in w for w in result.warnings
    )


def test_no_secret_is_injected_by_a_worker_file_without_the_kubernetes_configurator() -> None:
    sts = worker.statefulset(secrets=DATABASE, secrets_configurator=False)
    result = mutation.mutate(sts, config.from_mapping({"functionRuntimeFactoryConfigs": {}}))
    assert result.obj == sts


# ---------------------------------------------------------------------------------------------
# §11.2 KubernetesServiceAccountTokenAuthProvider, §11.1 token-secret layout

AUTH_PLUGIN = "org.apache.pulsar.client.impl.auth.AuthenticationToken"
TOKEN_VOLUME = {"name": "service-account-token", "mountPath": "/etc/auth", "readOnly": True}


def _sa_config(**provider_config: object) -> config.Config:
    return config.from_mapping(
        {
            "authenticationEnabled": True,  # the worker uses the provider only then
            "functionAuthProviderClassName": config.SA_TOKEN_AUTH_PROVIDER,
            "functionRuntimeFactoryConfigs": {
                "kubernetesFunctionAuthProviderConfig": provider_config
            },
        }
    )


WITH_CA = {
    "brokerClientTrustCertsSecretName": "my-secret",
    "serviceAccountTokenExpirationSeconds": "600",
    "serviceAccountTokenAudience": "my-audience",
}


def _worker_with_ca(runtime: worker.Runtime = "JAVA") -> dict[str, Any]:
    return worker.statefulset(
        tenant="tenant",
        namespace="namespace",
        name="container",
        runtime=runtime,
        auth="sa-token",
        ca_secret="my-secret",
        audience="my-audience",
        expiration=600,
    )


def _single_projected_volume(
    audience: str | None, expiration: int, ca: str | None
) -> dict[str, Any]:
    token: dict[str, Any] = {"audience": audience} if audience else {}
    token.update({"expirationSeconds": expiration, "path": "token"})
    sources: list[dict[str, Any]] = [{"serviceAccountToken": token}]
    if ca:
        sources.append({"secret": {"name": ca, "items": [{"key": "ca.crt", "path": "ca.crt"}]}})
    return {"name": "service-account-token", "projected": {"sources": sources}}


def test_the_worker_fixture_has_pulsars_duplicate_mount_layout() -> None:
    sts = _worker_with_ca()
    pod = _pod(sts)
    assert [v["name"] for v in pod["volumes"]] == ["ca-cert", "service-account-token"]
    assert pod["volumes"][0]["secret"] == {
        "secretName": "my-secret",
        "items": [{"key": "ca.crt", "path": "ca.crt"}],
    }
    assert pod["volumes"][1]["projected"]["sources"] == [
        {
            "serviceAccountToken": {
                "audience": "my-audience",
                "expirationSeconds": 600,
                "path": "token",
            }
        }
    ]
    mounts = _container(sts)["volumeMounts"]
    assert [(m["name"], m["mountPath"]) for m in mounts] == [
        ("service-account-token", "/etc/auth"),
        ("ca-cert", "/etc/auth"),
    ]
    rules = [d.rule for d in policy.validate(sts, config.default_config()).decisions]
    assert "tokens/mount-path" in rules


@pytest.mark.parametrize(
    "cfg",
    [
        pytest.param(_sa_config(**WITH_CA), id="token-projection-on"),
        pytest.param(config.default_config(), id="token-projection-off"),
    ],
)
def test_the_worker_ca_layout_becomes_one_projected_volume_mounted_once(cfg: config.Config) -> None:
    result = mutation.mutate(_worker_with_ca(), cfg)
    pod = _pod(result.obj)
    assert pod["volumes"] == [_single_projected_volume("my-audience", 600, "my-secret")]
    assert _container(result.obj)["volumeMounts"] == [TOKEN_VOLUME]
    assert not any(v["name"] == "ca-cert" for v in pod["volumes"])
    assert "tokens/mount-path" not in [d.rule for d in policy.validate(result.obj, cfg).decisions]
    assert mutation.mutate(result.obj, cfg).obj == result.obj


def test_repair_with_token_projection_off_leaves_the_command_alone() -> None:
    sts = _worker_with_ca()
    result = mutation.mutate(sts, config.default_config())
    assert _script(result.obj) == _script(sts)


@pytest.mark.parametrize("runtime", ["JAVA", "PYTHON"])
def test_the_command_uses_the_projected_token_and_ca(runtime: worker.Runtime) -> None:
    sts = worker.statefulset(
        tenant="tenant", namespace="namespace", name="container", runtime=runtime
    )
    assert command.get_flag(_script(sts), "--client_auth_plugin") is None
    result = mutation.mutate(sts, _sa_config(**WITH_CA))
    script = _script(result.obj)
    assert command.get_flag(script, "--client_auth_plugin") == AUTH_PLUGIN
    assert command.get_flag(script, "--client_auth_params") == "file:///etc/auth/token"
    assert command.get_flag(script, "--tls_trust_cert_path") == "/etc/auth/ca.crt"
    assert _pod(result.obj)["volumes"] == [
        _single_projected_volume("my-audience", 600, "my-secret")
    ]
    assert _container(result.obj)["volumeMounts"] == [TOKEN_VOLUME]


def test_the_worker_ca_layout_command_is_already_right() -> None:
    sts = _worker_with_ca()
    result = mutation.mutate(sts, _sa_config(**WITH_CA))
    assert _script(result.obj) == _script(sts)
    assert result.warnings == ()


def test_without_a_ca_there_is_one_volume_one_mount_and_no_trust_path() -> None:
    sts = worker.statefulset(auth="sa-token", audience="pulsar-cluster")
    assert len(_pod(sts)["volumes"]) == 1
    assert len(_container(sts)["volumeMounts"]) == 1
    cfg = _sa_config(
        serviceAccountTokenAudience="pulsar-cluster", serviceAccountTokenExpirationSeconds="600"
    )
    result = mutation.mutate(sts, cfg)
    assert _pod(result.obj)["volumes"] == [_single_projected_volume("pulsar-cluster", 600, None)]
    assert _container(result.obj)["volumeMounts"] == [TOKEN_VOLUME]
    script = _script(result.obj)
    assert command.get_flag(script, "--client_auth_plugin") == AUTH_PLUGIN
    assert command.get_flag(script, "--tls_trust_cert_path") is None


@pytest.mark.parametrize(
    ("configured", "expected"),
    [
        pytest.param("600", 600, id="quoted-as-in-pulsar-docs"),
        pytest.param("+900", 900, id="signed-string-as-long-parselong-reads-it"),
        pytest.param("7200", 7200, id="longer"),
        pytest.param(None, 3600, id="unset-defaults-to-3600"),
    ],
)
def test_the_token_expiration_is_the_configured_value(configured: object, expected: int) -> None:
    provider = {**WITH_CA, "serviceAccountTokenExpirationSeconds": configured}
    result = mutation.mutate(_worker_with_ca(), _sa_config(**provider))
    [volume] = _pod(result.obj)["volumes"]
    token = volume["projected"]["sources"][0]["serviceAccountToken"]
    assert token["expirationSeconds"] == expected
    changed = expected != 600
    assert any("expiration" in w for w in result.warnings) is changed


def test_a_go_function_gets_the_auth_settings_in_its_instance_conf() -> None:
    sts = worker.statefulset(tenant="tenant", namespace="namespace", name="container", runtime="GO")
    before = command.get_json_flag(_script(sts), "-instance-conf")
    assert before is not None and "clientAuthenticationPlugin" not in before
    result = mutation.mutate(sts, _sa_config(**WITH_CA))
    script = _script(result.obj)
    conf = command.get_json_flag(script, "-instance-conf")
    assert conf is not None
    assert conf["clientAuthenticationPlugin"] == AUTH_PLUGIN
    assert conf["clientAuthenticationParameters"] == "file:///etc/auth/token"
    assert conf["tlsTrustCertsFilePath"] == "/etc/auth/ca.crt"
    assert {k: v for k, v in conf.items() if k in before} == before
    for flag in ("--client_auth_plugin", "--client_auth_params", "--tls_trust_cert_path"):
        assert command.get_flag(script, flag) is None
    assert mutation.mutate(result.obj, _sa_config(**WITH_CA)).obj == result.obj


def test_the_go_worker_ca_layout_keeps_its_instance_conf() -> None:
    sts = _worker_with_ca("GO")
    result = mutation.mutate(sts, _sa_config(**WITH_CA))
    assert _script(result.obj) == _script(sts)
    assert _pod(result.obj)["volumes"] == [
        _single_projected_volume("my-audience", 600, "my-secret")
    ]


@pytest.mark.parametrize(
    "cfg",
    [
        pytest.param(config.default_config(), id="default"),
        pytest.param(
            config.from_mapping(
                {
                    "authenticationEnabled": True,
                    "functionAuthProviderClassName": config.SECRETS_TOKEN_AUTH_PROVIDER,
                }
            ),
            id="secrets-token-provider",
        ),
    ],
)
def test_the_token_secret_layout_is_left_alone(cfg: config.Config) -> None:
    sts = worker.statefulset(auth="token-secret", ca_secret="broker-ca")
    assert _pod(sts)["volumes"] == [
        {"name": "function-auth", "secret": {"secretName": "pf-secret-z7mxx"}}
    ]
    assert _container(sts)["volumeMounts"] == [
        {"name": "function-auth", "mountPath": "/etc/auth", "readOnly": True}
    ]
    assert command.get_flag(_script(sts), "--tls_trust_cert_path") == "/etc/auth/ca.pem"
    assert mutation.mutate(sts, cfg).obj == sts


# ---------------------------------------------------------------------------------------------
# §12 resource checks (KubernetesRuntimeFactoryTest)

GRANULARITY = Resources(cpu=0.1, ram=1000)
CPU_GRAIN = "Per instance cpu requested, {cpu}, for function should be positive and a multiple of the granularity, 0.1"
RAM_GRAIN = "Per instance ram requested, {ram}, for function should be positive and a multiple of the granularity, 1000"
LOCK_STEP = "Per instance cpu requested, {cpu}, ram requested, {ram}, for function should be positive and the same multiple of the granularity, cpu, 0.1, ram, 1000"


def _granularity(cpu: float, ram: int, *, lock_step: bool = False) -> list[str]:
    return policy.pulsar_resource_messages(
        cpu, ram, minimum=None, maximum=None, granularity=GRANULARITY, lock_step=lock_step
    )


@pytest.mark.parametrize(
    ("cpu", "ram", "first"),
    [
        pytest.param(0.05, 100, CPU_GRAIN.format(cpu="0.05"), id="cpu-below-grain"),
        pytest.param(0.1, 100, RAM_GRAIN.format(ram=100), id="ram-below-grain"),
        pytest.param(0.999, 1000, CPU_GRAIN.format(cpu="0.999"), id="cpu-0.999"),
        pytest.param(1.001, 1000, CPU_GRAIN.format(cpu="1.001"), id="cpu-1.001"),
        pytest.param(0.1, 1000, None, id="one-grain"),
        pytest.param(1.0, 1000, None, id="ten-cpu-grains"),
        pytest.param(5.0, 1000, None, id="fifty-cpu-grains"),
    ],
)
def test_granularity_is_checked_with_pulsars_messages(
    cpu: float, ram: int, first: str | None
) -> None:
    messages = _granularity(cpu, ram)
    assert (messages[0] if messages else None) == first


def test_a_request_failing_both_granularities_reports_the_cpu_first_as_pulsar_does() -> None:
    assert _granularity(0.05, 100) == [CPU_GRAIN.format(cpu="0.05"), RAM_GRAIN.format(ram=100)]


@pytest.mark.parametrize(
    ("cpu", "ram", "message"),
    [
        pytest.param(0.1, 2000, LOCK_STEP.format(cpu="0.1", ram=2000), id="cpu-1-ram-2"),
        pytest.param(0.2, 1000, LOCK_STEP.format(cpu="0.2", ram=1000), id="cpu-2-ram-1"),
        pytest.param(0.2, 2000, None, id="both-2"),
        pytest.param(1.0, 10000, None, id="both-10"),
        pytest.param(10.0, 100000, None, id="both-100"),
    ],
)
def test_lock_step_needs_the_same_multiple_of_both_granularities(
    cpu: float, ram: int, message: str | None
) -> None:
    assert _granularity(cpu, ram, lock_step=True) == ([message] if message else [])


@pytest.mark.parametrize(
    ("cpu", "ram", "messages"),
    [
        pytest.param(0.2, 2048, [], id="above-minimum"),
        pytest.param(
            0.05,
            2048,
            [
                "Per instance CPU requested, 0.05, for function is less than the minimum required, 0.1"
            ],
            id="cpu-below-minimum",
        ),
        pytest.param(
            0.2,
            1000,
            [
                "Per instance RAM requested, 1000, for function is less than the minimum required, 1024"
            ],
            id="ram-below-minimum",
        ),
    ],
)
def test_the_minimum_is_checked_with_pulsars_messages(
    cpu: float, ram: int, messages: list[str]
) -> None:
    minimum = Resources(cpu=0.1, ram=1024)
    assert (
        policy.pulsar_resource_messages(
            cpu, ram, minimum=minimum, maximum=None, granularity=None, lock_step=False
        )
        == messages
    )


@pytest.mark.parametrize(
    ("cpu", "ram", "messages"),
    [
        pytest.param(
            1.01,
            512,
            [
                "Per instance CPU requested, 1.01, for function is greater than the maximum required, 1.0"
            ],
            id="cpu-above-maximum",
        ),
        pytest.param(
            1.00,
            2049,
            [
                "Per instance RAM requested, 2049, for function is greater than the maximum required, 2048"
            ],
            id="ram-above-maximum",
        ),
        pytest.param(1.0, 2048, [], id="at-maximum"),
    ],
)
def test_the_maximum_is_checked_with_pulsars_messages(
    cpu: float, ram: int, messages: list[str]
) -> None:
    maximum = Resources(cpu=1.0, ram=2048)
    assert (
        policy.pulsar_resource_messages(
            cpu, ram, minimum=None, maximum=maximum, granularity=None, lock_step=False
        )
        == messages
    )


def test_cpu_values_are_printed_as_java_prints_doubles() -> None:
    messages = policy.pulsar_resource_messages(
        0.0005, 2048, minimum=Resources(cpu=0.001), maximum=None, granularity=None, lock_step=False
    )
    assert messages == [
        "Per instance CPU requested, 5.0E-4, for function is less than the minimum required, 0.001"
    ]


def test_validation_reports_the_resource_checks_as_resources_bounds() -> None:
    sts = worker.statefulset(cpu=0.05, ram=2048)
    cfg = config.from_mapping({"functionInstanceMinResources": {"cpu": 0.1, "ram": 1024}})
    decisions = policy.validate(sts, cfg).decisions
    assert [(d.rule, d.message) for d in decisions if d.rule == "resources/bounds"] == [
        (
            "resources/bounds",
            "Per instance CPU requested, 0.05, for function is less than the minimum required, 0.1",
        )
    ]


# ---------------------------------------------------------------------------------------------
# §6.4 quantities: the API server's canonical forms equal Pulsar's


@pytest.mark.parametrize(
    ("canonical", "pulsar"),
    [
        pytest.param("1", "1.0", id="cpu-1"),
        pytest.param("769m", "0.769", id="cpu-0.769"),
        pytest.param("667m", "0.667", id="cpu-0.667"),
        pytest.param("513m", "0.513", id="cpu-0.513"),
        pytest.param("500m", "0.5", id="cpu-0.5"),
        pytest.param("1100", "1100", id="memory-1100"),
        pytest.param("733", "733", id="memory-733"),
        pytest.param("1181116006", "1181116006", id="memory-padded"),
        pytest.param("1073741824", "1073741824", id="memory-1Gi-as-int"),
        pytest.param("1Gi", "1073741824", id="memory-1Gi"),
        pytest.param("4G", "4000000000", id="memory-4G"),
        pytest.param("8G", "8000000000", id="memory-8G"),
    ],
)
def test_canonical_quantities_equal_pulsars(canonical: str, pulsar: str) -> None:
    assert quantity.parse(canonical) == quantity.parse(pulsar)


@pytest.mark.parametrize(
    ("a", "b"),
    [pytest.param("769m", "0.77", id="769m-vs-0.77"), pytest.param("4G", "4Gi", id="G-vs-Gi")],
)
def test_different_quantities_do_not_compare_equal(a: str, b: str) -> None:
    assert quantity.parse(a) != quantity.parse(b)


# ---------------------------------------------------------------------------------------------
# §6.5 the function details travel in single quotes without escaping


def test_a_single_quote_in_the_function_details_breaks_the_shell_and_is_reported() -> None:
    sts = worker.statefulset()
    script = _script(sts).replace(
        '"className"', '"userConfig":"{\\"greeting\\":\\"it\'s\\"}","className"', 1
    )
    _container(sts)["command"][2] = script
    shell = subprocess.run(["sh", "-n", "-c", script], capture_output=True, text=True, check=False)
    assert shell.returncode != 0
    with pytest.raises(command.CommandError):
        command.get_json_flag(script, "--function_details")
    result = mutation.mutate(sts, config.default_config())
    assert result.obj is sts
    assert any("function details unreadable" in w for w in result.warnings)
    validation = policy.validate(sts, config.default_config())
    assert not validation.allowed
    assert [d.rule for d in validation.decisions] == ["function/details"]
