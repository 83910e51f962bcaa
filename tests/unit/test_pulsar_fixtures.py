"""The webhook on what Pulsar 4.0.7's worker really sends (tests/pulsar-fixtures, rendered by
Pulsar's own KubernetesRuntime: `make pulsar-fixtures`), with the webhook reading the very same
functions_worker.yml the worker read."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests import pulsar_cases, worker
from webhook import cli
from webhook.core import cluster, command, config, mutation, naming, policy, workload
from webhook.core.config import Config, Resources

CASES = {case.id: case for case in pulsar_cases.CASES}
REPAIRABLE = [c for c in pulsar_cases.CASES if c.expect == "ok"]
OVERRIDES = [c for c in pulsar_cases.CASES if c.id.startswith("override-")]


def _config(case: pulsar_cases.Case) -> Config:
    path = case.config_path()
    return config.loads(path.read_text(encoding="utf-8"), source=str(path))


def _objects(case_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    fixture = pulsar_cases.load_fixture(case_id)
    assert fixture["stage"] == "ok", fixture
    # the Java client sends no apiVersion/kind; the API server fills them in before admission
    service = {"apiVersion": "v1", "kind": "Service", **fixture["service"]}
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", **fixture["statefulset"]}
    return service, sts


def _labels_valid(labels: dict[str, str]) -> bool:
    return all(naming.is_label_value(v) for v in labels.values())


def test_every_worker_config_is_read_by_the_webhook_too() -> None:
    for path in sorted(pulsar_cases.CONFIGS.glob("*.yml")):
        config.loads(path.read_text(encoding="utf-8"), source=str(path))


@pytest.mark.parametrize("case", pulsar_cases.CASES, ids=lambda c: c.id)
def test_both_objects_the_worker_sends_are_recognised(case: pulsar_cases.Case) -> None:
    service, sts = _objects(case.id)
    assert workload.is_function_service(service)
    assert workload.is_function_workload(sts)


@pytest.mark.parametrize("case", REPAIRABLE, ids=lambda c: c.id)
def test_service_and_statefulset_come_out_valid_and_selecting_the_same_pods(
    case: pulsar_cases.Case,
) -> None:
    cfg = _config(case)
    service, sts = _objects(case.id)
    svc_out = mutation.mutate(service, cfg).obj
    result = mutation.mutate(sts, cfg)
    assert result.denial is None and result.refusal is None
    sts_out = result.obj
    template = sts_out["spec"]["template"]["metadata"]["labels"]
    selector = sts_out["spec"]["selector"]["matchLabels"]
    for labels in (svc_out["metadata"]["labels"], svc_out["spec"]["selector"], template, selector):
        assert _labels_valid(labels), labels
    assert svc_out["spec"]["selector"] == selector
    assert all(template.get(k) == v for k, v in selector.items())
    # reinvocation changes nothing
    assert mutation.mutate(svc_out, cfg).obj == svc_out
    assert mutation.mutate(sts_out, cfg).obj == sts_out
    # and validate has nothing to deny on what mutate produced
    for obj in (svc_out, sts_out):
        denials = [d.line() for d in policy.validate(obj, cfg).decisions if d.action == "deny"]
        assert denials == []


def test_an_invalid_label_value_is_converted_alike_and_recorded_on_both_objects() -> None:
    case = CASES["label-truncated-to-dash"]
    cfg = _config(case)
    service, sts = _objects(case.id)
    assert service["metadata"]["labels"]["name"].endswith("-")  # the worker's truncation
    assert service["metadata"]["labels"]["team"] == "data eng"  # customizeService applies it
    for obj in (service, sts):
        out = mutation.mutate(obj, cfg).obj
        assert out["metadata"]["labels"]["name"] == "a" * 62 + "0"
        assert out["metadata"]["labels"]["team"] == "data-eng"
        originals = json.loads(out["metadata"]["annotations"]["pf-webhook/original-labels"])
        assert originals == {"name": "a" * 62 + "-", "team": "data eng"}
    # before: the Service the API server would refuse with 422 was not even looked at
    findings = policy.validate(service, cfg).decisions
    assert {d.rule for d in findings} == {"naming/label-value"}


@pytest.mark.parametrize("case", OVERRIDES, ids=lambda c: c.id)
def test_a_selector_key_override_is_denied_on_both_objects_naming_the_option(
    case: pulsar_cases.Case,
) -> None:
    key = case.id.removeprefix("override-")
    cfg = _config(case)
    service, sts = _objects(case.id)
    assert service["metadata"]["labels"][key] == "x" != service["spec"]["selector"][key]
    svc = mutation.mutate(service, cfg)
    assert svc.denial is not None and "[customizer/options]" in svc.denial
    assert f"extraLabels.{key}" in svc.denial
    result = mutation.mutate(sts, cfg)
    assert result.denial is not None
    assert f"customRuntimeOptions extraLabels.{key}" in result.denial
    # validate says the same (e.g. for `pf-webhook validate` on stored objects)
    assert any(d.rule == "customizer/options" for d in policy.validate(sts, cfg).decisions)


@pytest.mark.parametrize("case", OVERRIDES, ids=lambda c: c.id)
def test_a_selector_key_override_is_repaired_when_the_rule_does_not_deny(
    case: pulsar_cases.Case,
) -> None:
    key = case.id.removeprefix("override-")
    cfg = replace(_config(case), rules={"customizer/options": "warn"})
    service, sts = _objects(case.id)
    for obj in (service, sts):
        result = mutation.mutate(obj, cfg)
        assert result.denial is None
        out = result.obj
        selector = (
            out["spec"]["selector"]
            if obj["kind"] == "Service"
            else out["spec"]["selector"]["matchLabels"]
        )
        assert out["metadata"]["labels"][key] == selector[key]
        assert json.loads(out["metadata"]["annotations"]["pf-webhook/original-labels"])[key] == "x"
        assert any(f"label {key}: kept the worker's" in w for w in result.warnings)
    template = mutation.mutate(sts, cfg).obj["spec"]["template"]["metadata"]["labels"]
    assert template[key] == sts["spec"]["selector"]["matchLabels"][key]


def test_with_authentication_disabled_the_auth_parts_are_left_as_the_worker_made_them() -> None:
    case = CASES["java-auth-disabled"]
    cfg = _config(case)
    assert not cfg.tokens_enabled and not cfg.token_secret_auth
    _, sts = _objects(case.id)
    out = mutation.mutate(sts, cfg).obj
    pod, before = out["spec"]["template"]["spec"], sts["spec"]["template"]["spec"]
    assert pod.get("volumes") == before.get("volumes") is None
    script = out["spec"]["template"]["spec"]["containers"][0]["command"][2]
    assert script == before["containers"][0]["command"][2]  # no auth flags added
    assert "--client_auth_plugin" not in script


def test_the_download_step_gets_the_same_credentials_as_the_instance() -> None:
    case = CASES["java"]
    cfg = _config(case)
    _, sts = _objects(case.id)
    sts = copy.deepcopy(sts)
    container = sts["spec"]["template"]["spec"]["containers"][0]
    container["command"][2] = container["command"][2].replace(
        "file:///etc/auth/token", "file:///stale/token"
    )
    out = mutation.mutate(sts, cfg).obj
    script = out["spec"]["template"]["spec"]["containers"][0]["command"][2]
    download = script.split(" && ", 1)[0]
    assert "--auth-params file:///etc/auth/token" in download
    assert command.get_flag(script, "--client_auth_params") == "file:///etc/auth/token"
    assert "stale" not in script


def test_gson_lenient_options_the_worker_accepted_are_accepted_and_numbers_kept() -> None:
    case = CASES["gson-lenient-options"]
    cfg = _config(case)
    _, sts = _objects(case.id)
    worker_labels = sts["metadata"]["labels"]
    assert (worker_labels["size"], worker_labels["big"]) == ("1.50", "1e3")
    assert "gone" not in worker_labels
    result = mutation.mutate(sts, cfg)
    assert [w for w in result.warnings if "customRuntimeOptions" in w] == [
        "customRuntimeOptions.resourceRequirements.limits.nvidia.com/gpu is dropped: "
        "the worker's customizer applies only cpu and memory"
    ]
    out = result.obj
    assert out["metadata"]["labels"]["size"] == "1.50"  # not reprinted as 1.5
    assert out["metadata"]["labels"]["big"] == "1e3"  # nor as 1000.0
    assert (
        out["spec"]["template"]["spec"]["containers"][0]["resources"]
        == (sts["spec"]["template"]["spec"]["containers"][0]["resources"])
    ), "nvidia.com/gpu dropped as by the worker's customizer; cpu 2 already applied"
    assert {
        "key": "spot",
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 30,
    } in (out["spec"]["template"]["spec"]["tolerations"])
    assert not [d for d in policy.validate(sts, cfg).decisions if d.rule == "customizer/options"]


def test_tolerations_the_worker_duplicated_are_deduplicated() -> None:
    case = CASES["duplicate-worker-toleration"]
    _, sts = _objects(case.id)
    tolerations = sts["spec"]["template"]["spec"]["tolerations"]
    assert len(tolerations) != len({json.dumps(t, sort_keys=True) for t in tolerations})
    out = mutation.mutate(sts, _config(case)).obj["spec"]["template"]["spec"]["tolerations"]
    assert len(out) == len({json.dumps(t, sort_keys=True) for t in out}) == len(out)
    assert len(out) == len(tolerations) - 1


def test_the_token_secret_provider_is_the_workers_default() -> None:
    case = CASES["token-secret"]
    cfg = _config(case)
    assert cfg.token_secret_auth and not cfg.tokens_enabled
    _, sts = _objects(case.id)
    assert sts["spec"]["template"]["spec"]["volumes"] == [
        {"name": "function-auth", "secret": {"secretName": "pf-secret-abc123"}}
    ]


def test_the_legacy_block_is_read_wholesale_as_by_the_worker() -> None:
    case = CASES["legacy-block"]
    cfg = _config(case)
    _, sts = _objects(case.id)
    assert sts["metadata"]["namespace"] == cfg.job_namespace == "legacy-functions"
    assert sts["metadata"]["labels"]["cluster"] == cfg.custom_labels["cluster"] == "legacy"
    assert (
        "tier" not in sts["metadata"]["labels"] and "tier" not in cfg.cluster_options.extra_labels
    )
    assert cfg.lock_step is True  # "true" as a string, accepted by the worker


@pytest.mark.parametrize(
    "granularity",
    [Resources(cpu=0.0, ram=0), Resources(cpu=-0.1, ram=-5), Resources(cpu=0.0004, ram=None)],
    ids=["zero", "negative", "rounds-to-zero-millicores"],
)
def test_a_granularity_of_zero_or_below_skips_the_check_as_in_pulsar(
    granularity: Resources,
) -> None:
    messages = policy.pulsar_resource_messages(
        0.25, 2000, minimum=None, maximum=None, granularity=granularity, lock_step=True
    )
    assert messages == []


def test_the_token_warning_never_says_none() -> None:
    case = CASES["java"]
    cfg = replace(_config(case), token_audience=None, token_expiration_seconds=7200)
    _, sts = _objects(case.id)
    warnings = mutation.mutate(sts, cfg).warnings
    [line] = [w for w in warnings if "token audience" in w]
    assert "None" not in line
    assert "(API server default)" in line


def test_mutate_on_a_body_captured_from_the_worker_without_kind_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = tmp_path / "sts.json"
    body.write_text(json.dumps(pulsar_cases.load_fixture("java")["statefulset"]))
    assert cli.main(["mutate", "-f", str(body)]) == 1
    assert "no kind" in capsys.readouterr().err


def test_mutate_reports_a_selector_override_denial(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, sts = _objects("override-name")
    body = tmp_path / "sts.json"
    body.write_text(json.dumps(sts))
    config_file = CASES["override-name"].config_path()
    assert cli.main(["mutate", "-f", str(body), "--config", str(config_file)]) == 1
    assert "[customizer/options]" in capsys.readouterr().err


def test_with_cluster_facts_the_service_must_select_its_own_statefulsets_pods_only() -> None:
    case = CASES["java"]
    cfg = _config(case)
    service, sts = _objects(case.id)
    service = mutation.mutate(service, cfg).obj
    sts = mutation.mutate(sts, cfg).obj
    name = sts["metadata"]["name"]
    template = sts["spec"]["template"]["metadata"]["labels"]
    own = cluster.OtherStatefulSet(name, sts["spec"]["selector"]["matchLabels"], template)
    facts = cluster.ClusterFacts(statefulsets=(own,))
    assert policy.validate(service, cfg, facts=facts).decisions == ()
    moved = cluster.OtherStatefulSet(name, {}, {**template, "name": "other"})
    lines = [
        d.line()
        for d in policy.validate(
            service, cfg, facts=cluster.ClusterFacts(statefulsets=(moved,))
        ).decisions
    ]
    assert lines and "does not select the pods of its StatefulSet" in lines[0]
    twin = cluster.OtherStatefulSet("pf-public-default-twin", {}, template)
    lines = [
        d.line()
        for d in policy.validate(
            service, cfg, facts=cluster.ClusterFacts(statefulsets=(own, twin))
        ).decisions
    ]
    assert lines and "selects the pods of StatefulSet pf-public-default-twin too" in lines[0]


def _instance_flags(sts: dict[str, Any]) -> list[str]:
    """The instance's own flag names in order (values dropped), as the script writes them."""
    script = sts["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    instance = script.split(" exec ", 1)[1]
    return [word for word in instance.split() if word.startswith("--")]


@pytest.mark.parametrize(
    ("case_id", "runtime"),
    [("java-auth-disabled", "JAVA"), ("python-secrets", "PYTHON")],
)
def test_the_hand_written_worker_model_writes_the_flags_pulsar_writes_in_its_order(
    case_id: str, runtime: worker.Runtime
) -> None:
    """tests/worker.py builds most unit tests' objects; it must not drift from Pulsar's output."""
    real = pulsar_cases.load_fixture(case_id)["statefulset"]
    auth: worker.Auth = "none" if case_id == "java-auth-disabled" else "sa-token"
    model = worker.statefulset(
        runtime=runtime,
        auth=auth,
        ca_secret="pulsar-ca" if auth != "none" else None,
        secrets={"DB_PASSWORD": {"path": "db-creds", "key": "password"}},
    )
    assert _instance_flags(model) == _instance_flags(real)
