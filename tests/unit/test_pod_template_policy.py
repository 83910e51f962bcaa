"""Validation judges the resulting pod template (issue 12 item 6), on CREATE and UPDATE, and
ServiceAccount names from the template are injective (item 3)."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests import worker
from tests.unit.test_hostile_input import mutate_then_validate, review_of, strict_config
from webhook.core import config, naming, policy, review, tokens
from webhook.core.config import Config
from webhook.core.workload import FunctionDetails

OPTIONS = "spec.template.spec.containers[0].command[2] --function_details.customRuntimeOptions"


def test_a_label_added_directly_to_the_template_is_judged_there() -> None:
    def edit(pod_template: dict[str, Any]) -> None:
        pod_template["metadata"]["labels"]["app"] = "pulsar-broker"

    _, stored, _ = mutate_then_validate(worker.statefulset(), strict_config())
    edit(stored["spec"]["template"])
    assert ("pod/labels", "spec.template.metadata.labels[app]") in rules_of(stored, strict_config())


def rules_of(obj: Any, cfg: Config) -> list[tuple[str, str]]:
    return [(d.rule, d.path) for d in policy.validate(obj, cfg).decisions]


def test_the_workers_own_statefulset_passes_every_pod_rule() -> None:
    for auth in ("none", "sa-token", "token-secret"):
        sts = worker.statefulset(
            auth=auth,
            ca_secret="broker-ca" if auth == "sa-token" else None,
        )
        assert not [r for r in rules_of(sts, strict_config()) if r[0].startswith("pod/")]


@pytest.mark.parametrize(
    "key",
    ["app", "app.kubernetes.io/name", "k8s-app", "statefulset.kubernetes.io/pod-name", "tier"],
)
def test_a_function_cannot_give_its_pods_a_label_other_selectors_use(key: str) -> None:
    sts = worker.statefulset(custom_runtime_options={"extraLabels": {key: "pulsar-broker"}})
    _, stored, validated = mutate_then_validate(sts, strict_config())
    assert stored["spec"]["template"]["metadata"]["labels"][key] == "pulsar-broker"
    assert validated["allowed"] is False
    # reported once, where the function asked for it
    assert validated["status"]["message"].count("[pod/labels]") == 1
    assert f"[pod/labels] {OPTIONS}.extraLabels.{key}:" in validated["status"]["message"]


def test_labels_the_cluster_config_or_the_selector_sets_are_not_judged() -> None:
    cfg = config.from_mapping(
        {
            "runtimeCustomizerClassName": worker_customizer(),
            "runtimeCustomizerConfig": {"extraLabels": {"app": "pulsar-function"}},
            "functionRuntimeFactoryConfigs": {"customLabels": {"tier": "functions"}},
        }
    )
    sts = worker.statefulset()
    # the worker puts customLabels into the selector and the template labels
    sts["spec"]["selector"]["matchLabels"]["tier"] = "functions"
    sts["spec"]["template"]["metadata"]["labels"]["tier"] = "functions"
    _, stored, validated = mutate_then_validate(sts, cfg)
    assert stored["spec"]["template"]["metadata"]["labels"]["app"] == "pulsar-function"
    assert validated["allowed"] is True, validated
    again = worker.statefulset(custom_runtime_options={"extraLabels": {"app": "pulsar-broker"}})
    assert ("pod/labels", f"{OPTIONS}.extraLabels.app") in rules_of(
        mutate_then_validate(again, cfg)[1], cfg
    )


def worker_customizer() -> str:
    return "org.apache.pulsar.functions.runtime.kubernetes.BasicKubernetesManifestCustomizer"


def test_the_denied_label_list_is_configurable() -> None:
    cfg = config.loads("webhook: {pod: {deniedLabelKeys: [team]}}")
    sts = worker.statefulset()
    sts["spec"]["template"]["metadata"]["labels"].update({"team": "x", "app": "y"})
    assert [r for r in rules_of(sts, cfg) if r[0] == "pod/labels"] == [
        ("pod/labels", "spec.template.metadata.labels[team]")
    ]


@pytest.mark.parametrize(
    "key",
    [
        "container.apparmor.security.beta.kubernetes.io/pulsarfunction",
        "seccomp.security.alpha.kubernetes.io/pod",
        "sidecar.istio.io/inject",
        "pf-webhook/secrets",
    ],
)
def test_a_function_cannot_set_a_security_relevant_pod_annotation(key: str) -> None:
    sts = worker.statefulset(custom_runtime_options={"extraAnnotations": {key: "unconfined"}})
    _, _, validated = mutate_then_validate(sts, strict_config())
    assert validated["allowed"] is False
    if not key.startswith("pf-webhook/"):
        assert (
            f"[pod/annotations] {OPTIONS}.extraAnnotations.{key}:"
            in (validated["status"]["message"])
        )
        assert validated["status"]["message"].count("[pod/annotations]") == 1


def test_annotations_from_the_cluster_config_and_the_worker_are_not_judged() -> None:
    cfg = config.from_mapping(
        {
            "runtimeCustomizerClassName": worker_customizer(),
            "runtimeCustomizerConfig": {"extraAnnotations": {"sidecar.istio.io/inject": "false"}},
        }
    )
    _, stored, validated = mutate_then_validate(worker.statefulset(), cfg)
    annotations = stored["spec"]["template"]["metadata"]["annotations"]
    assert annotations["sidecar.istio.io/inject"] == "false"
    assert "prometheus.io/scrape" in annotations
    assert validated["allowed"] is True


def updated(change: Any) -> tuple[dict[str, Any], review.AdmissionResponse]:
    """A stored (mutated) function, then the same object edited directly as an UPDATE."""
    _, stored, validated = mutate_then_validate(worker.statefulset(), strict_config())
    assert validated["allowed"] is True
    edited = copy.deepcopy(stored)
    change(edited["spec"]["template"]["spec"])
    answer, _ = review.respond(
        review.parse(review_of(edited, "UPDATE"), strict_config()), mode="validate"
    )
    return edited, answer["response"]


def test_an_update_cannot_add_a_forbidden_toleration_or_node_selector_directly() -> None:
    def edit(pod: dict[str, Any]) -> None:
        pod["tolerations"].append(
            {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}
        )
        pod["nodeSelector"] = {"kubernetes.io/hostname": "master-1", "pool": "fast"}

    _, response = updated(edit)
    message = response["status"]["message"]
    assert "[customizer/tolerations] spec.template.spec.tolerations[3]" in message
    assert (
        "[customizer/node-selector] spec.template.spec.nodeSelector[kubernetes.io/hostname]"
        in message
    )
    assert "nodeSelector[pool]" not in message


def test_a_sidecar_cannot_mount_the_token_volume() -> None:
    def edit(pod: dict[str, Any]) -> None:
        pod["containers"].append(
            {
                "name": "sidecar",
                "image": "busybox",
                "volumeMounts": [{"name": "service-account-token", "mountPath": "/steal"}],
            }
        )

    _, response = updated(edit)
    assert (
        "[pod/auth-mounts] spec.template.spec.containers[1].volumeMounts[0]"
        in (response["status"]["message"])
    )


def test_an_init_container_cannot_mount_a_host_path_at_etc_auth() -> None:
    def edit(pod: dict[str, Any]) -> None:
        pod.setdefault("volumes", []).append({"name": "host", "hostPath": {"path": "/etc/auth"}})
        pod["initContainers"] = [
            {
                "name": "plant",
                "image": "busybox",
                "volumeMounts": [{"name": "host", "mountPath": "/etc/auth/../auth/"}],
            }
        ]

    _, response = updated(edit)
    message = response["status"]["message"]
    assert "[pod/auth-mounts] spec.template.spec.initContainers[0].volumeMounts[0]" in message
    assert "[pod/host-path] spec.template.spec.volumes[" in message


def test_host_paths_under_an_allowed_root_pass() -> None:
    cfg = config.loads("webhook: {pod: {allowedHostPaths: [/var/lib/functions]}}")
    sts = worker.statefulset()
    pod = sts["spec"]["template"]["spec"]
    pod["volumes"] = [
        {"name": "ok", "hostPath": {"path": "/var/lib/functions/cache"}},
        {"name": "escape", "hostPath": {"path": "/var/lib/functions/../../../etc"}},
        {"name": "prefix", "hostPath": {"path": "/var/lib/functions-other"}},
    ]
    assert [r for r in rules_of(sts, cfg) if r[0] == "pod/host-path"] == [
        ("pod/host-path", "spec.template.spec.volumes[1].hostPath"),
        ("pod/host-path", "spec.template.spec.volumes[2].hostPath"),
    ]


def test_every_new_rule_can_be_turned_off() -> None:
    cfg = config.loads(
        "webhook: {policy: {rules: {pod/labels: off, pod/annotations: warn, pod/host-path: audit}}}"
    )
    sts = worker.statefulset(
        custom_runtime_options={
            "extraLabels": {"app": "x"},
            "extraAnnotations": {"sidecar.istio.io/inject": "false"},
        }
    )
    sts["spec"]["template"]["spec"]["volumes"] = [{"name": "h", "hostPath": {"path": "/"}}]
    _, stored, _ = mutate_then_validate(sts, cfg)
    result = policy.validate(stored, cfg)
    assert result.allowed
    assert {(d.rule, d.action) for d in result.decisions} == {
        ("pod/annotations", "warn"),
        ("pod/host-path", "audit"),
    }


# ---------------------------------------------------------------------------------------------
# item 3: ServiceAccount names

TEMPLATE = "pf-{tenant}-{namespace}-{name}"


def account(tenant: str, namespace: str, name: str, template: str = TEMPLATE) -> str:
    return naming.service_account_name(template, tenant=tenant, namespace=namespace, name=name)


def test_the_three_colliding_functions_of_the_issue_get_distinct_accounts() -> None:
    names = {
        account("acme-prod", "payments", "charge"),
        account("acme", "prod_payments", "charge"),
        account("ACME_PROD", "payments", "charge"),
        account("acme", "prod-payments", "charge"),
    }
    assert len(names) == 4
    assert all(n.startswith("pf-acme-prod-payments-charge-") for n in names)


def test_an_account_name_is_stable_and_documented() -> None:
    # the scheme is a contract (README): changing it would move every function to a new role
    digest = hashlib.sha256(b'{"name":"My_Func","namespace":"default","tenant":"public"}')
    expected = f"pf-public-default-my-func-{digest.hexdigest()[:16]}"
    assert account("public", "default", "My_Func") == expected
    assert expected == "pf-public-default-my-func-b37a36814cc2d2eb"


def test_the_account_reaches_the_pod() -> None:
    details = FunctionDetails(tenant="acme", namespace="prod_payments", name="charge")
    assert tokens.service_account_name(TEMPLATE, details, {}) == account(
        "acme", "prod_payments", "charge"
    )


pulsar_names = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=80
)


@settings(max_examples=500, deadline=None)
@given(
    a=st.tuples(pulsar_names, pulsar_names, pulsar_names),
    b=st.tuples(pulsar_names, pulsar_names, pulsar_names),
)
def test_distinct_functions_never_share_an_account(
    a: tuple[str, str, str], b: tuple[str, str, str]
) -> None:
    first, second = account(*a), account(*b)
    for name in (first, second):
        assert naming.is_dns1123_label(name) and len(name) <= 63
    assert (first == second) == (a == b)


@given(a=st.tuples(pulsar_names, pulsar_names), b=st.tuples(pulsar_names, pulsar_names))
def test_a_template_naming_fewer_fields_is_injective_in_those(
    a: tuple[str, str], b: tuple[str, str]
) -> None:
    template = "team-{tenant}-{namespace}"
    first = naming.service_account_name(template, tenant=a[0], namespace=a[1], name="x")
    second = naming.service_account_name(template, tenant=b[0], namespace=b[1], name="y")
    assert (first == second) == (a == b)
