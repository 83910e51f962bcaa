"""Issue 12 items 2 and 6 through the real API server with enforcement `deny`: a function
cannot steer its own validation through our annotations, and validation judges the stored pod
template on CREATE and UPDATE."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.e2e.test_admission import (
    SECRETS,
    Cluster,
    Result,
    Webhook,
    cluster,
    full_function,
    webhook,
)

__all__ = ["cluster", "webhook"]  # the module-scoped fixtures, reused here


def _refused_with(result: Result, *rules: str) -> None:
    assert result.code != 0, "expected the API server to refuse"
    assert "denied the request" in result.err
    for rule in rules:
        assert f"[{rule}]" in result.err, (rule, result.err)


@pytest.mark.parametrize(
    ("annotation", "extra_rule"),
    [
        ("pf-webhook/custom-runtime-options", "namespace/job-namespace"),
        ("pf-webhook/secrets", "secrets/exists"),
    ],
    ids=["options", "secrets"],
)
def test_our_annotation_in_extra_annotations_does_not_open_the_gate(
    cluster: Cluster, webhook: Webhook, annotation: str, extra_rule: str
) -> None:
    ns = cluster.namespace(f"e2e-bypass-{extra_rule.split('/')[0]}", secrets=SECRETS)
    attack = full_function(
        ns,
        name="bypass",
        secrets={"STOLEN": {"path": "not-in-this-namespace", "key": "password"}},
        custom_runtime_options={
            "jobNamespace": "kube-system",
            "extraAnnotations": {annotation: "{}"},
        },
    )
    result = cluster.create(attack)
    _refused_with(result, "customizer/reserved-keys", extra_rule)
    assert f"extraAnnotations.{annotation}" in result.err
    assert cluster.kubectl("get", "statefulset", "-n", ns, "-o", "name").out.strip() == ""


def _replace(cluster: Cluster, obj: dict[str, Any]) -> Result:
    return cluster.kubectl("replace", "-f", "-", "-o", "json", stdin=obj)


def test_an_update_cannot_hand_the_token_to_a_sidecar_or_relabel_the_pods(
    cluster: Cluster, webhook: Webhook
) -> None:
    ns = cluster.namespace("e2e-update-pod", secrets=SECRETS)
    created = cluster.create(full_function(ns, name="steady"))
    assert created.code == 0, created.err
    stored = created.json()

    sidecar = copy.deepcopy(stored)
    pod = sidecar["spec"]["template"]["spec"]
    pod["containers"].append(
        {
            "name": "sidecar",
            "image": "busybox",
            "volumeMounts": [{"name": "service-account-token", "mountPath": "/steal"}],
        }
    )
    _refused_with(_replace(cluster, sidecar), "pod/auth-mounts")

    host = copy.deepcopy(stored)
    pod = host["spec"]["template"]["spec"]
    pod["volumes"].append({"name": "host-auth", "hostPath": {"path": "/etc/auth"}})
    pod["initContainers"] = [
        {
            "name": "plant",
            "image": "busybox",
            "volumeMounts": [{"name": "host-auth", "mountPath": "/etc/auth"}],
        }
    ]
    _refused_with(_replace(cluster, host), "pod/auth-mounts", "pod/host-path")

    relabel = copy.deepcopy(stored)
    relabel["spec"]["template"]["metadata"]["labels"]["app"] = "pulsar-broker"
    annotations = relabel["spec"]["template"]["metadata"].setdefault("annotations", {})
    annotations["container.apparmor.security.beta.kubernetes.io/pulsarfunction"] = "unconfined"
    _refused_with(_replace(cluster, relabel), "pod/labels", "pod/annotations")

    # the stored object is unchanged by every refused update
    now = cluster.kubectl("get", "statefulset", "-n", ns, stored["metadata"]["name"], "-o", "json")
    assert now.json()["spec"]["template"] == stored["spec"]["template"]


def test_a_function_cannot_give_its_pods_another_workloads_label(
    cluster: Cluster, webhook: Webhook
) -> None:
    ns = cluster.namespace("e2e-pod-label", secrets=SECRETS)
    sts = full_function(
        ns, name="lookalike", custom_runtime_options={"extraLabels": {"app": "pulsar-broker"}}
    )
    _refused_with(cluster.create(sts), "pod/labels")
