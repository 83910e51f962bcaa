"""Pulsar's own worker creates functions through our webhooks.

Pulsar 4.0.7's KubernetesRuntimeFactory, auth providers, secrets configurator and Basic
customizer, wired from a functions_worker.yml by WorkerConfig.load as the worker does, run
`KubernetesRuntime.start()` against the real API server: the worker's own Kubernetes client
sends the function's Service and then its StatefulSet, through both of our webhook
configurations (the manifests' own, narrowed to this test's namespaces), to a real
`pf-webhook serve` reading the very same functions_worker.yml.

One webhook server per worker config, all started at once, and one JVM for every case: each
config's namespace carries a label that only its own webhook configurations select.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from controlplane import ControlPlane

from tests import pulsar_cases, pulsar_harness
from tests.e2e.test_admission import SECRETS, Cluster, Webhook, webhook_configurations
from tests.polling import wait_for

GROUP_LABEL = "pf-webhook-e2e/worker-config"
# the Secret KubernetesSecretsTokenAuthProvider would have created for auth data "abc123"
TOKEN_SECRET = {"pf-secret-abc123": {"token": "not-a-real-token"}}
EXAMPLE_ACCOUNT = "pf-public-default-exclamation-28ce43b0f5eabbc6"  # tokens.serviceAccountName
E2E_CASES = [case for case in pulsar_cases.CASES if case.e2e]
GROUPS = sorted({case.config for case in E2E_CASES})


def _namespace(group: str) -> str:
    return f"e2e-worker-{group}"


def _function_name(case: pulsar_cases.Case) -> str:
    """A distinct name per case: the worker treats 409 (already exists) as success."""
    return case.name if case.name != "exclaim" else case.id


class ConfigWebhook(Webhook):
    """`pf-webhook serve` reading one of the worker configs as it is (plus its jobNamespace)."""

    def __init__(self, workdir: Path, kubeconfig: Path, text: str) -> None:
        self.text = text
        super().__init__(workdir, kubeconfig)

    def write_config(self, enforcement: str) -> None:
        self.config.write_text(self.text, encoding="utf-8")


@dataclass
class Run:
    results: dict[str, dict[str, Any]]
    configs: dict[str, Path]


def _worker_config(group: str, directory: Path) -> Path:
    source = next(c for c in E2E_CASES if c.config == group).config_path()
    text = source.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^  jobNamespace: .*$", f"  jobNamespace: {_namespace(group)}", text)
    path = directory / f"{group}.yml"
    path.write_text(text, encoding="utf-8")
    return path


def _dry_run_accepted(cluster: Cluster, obj: dict[str, Any]) -> bool:
    return cluster.create(obj, "--dry-run=server").code == 0


def _narrowed(doc: dict[str, Any], group: str) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    doc["metadata"]["name"] = f"pf-webhook-{group}"
    for hook in doc["webhooks"]:
        hook["name"] = f"{group}.{hook['name']}"
        hook["namespaceSelector"].setdefault("matchLabels", {})[GROUP_LABEL] = group
    return doc


@pytest.fixture(scope="module")
def run(
    control_plane: ControlPlane,
    pulsar_harness_command: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Run]:
    cluster = Cluster(control_plane)
    workdir = tmp_path_factory.mktemp("pulsar-runtime")
    hooks: list[ConfigWebhook] = []
    created: list[tuple[str, str]] = []
    try:
        configs = {group: _worker_config(group, workdir) for group in GROUPS}
        for group in GROUPS:
            hooks.append(
                ConfigWebhook(
                    tmp_path_factory.mktemp(f"webhook-{group}"),
                    control_plane.kubeconfig,
                    configs[group].read_text(encoding="utf-8"),
                )
            )
        with ThreadPoolExecutor(len(hooks)) as pool:  # each start waits for its /readyz
            list(pool.map(lambda hook: hook.start(), hooks))
        for group, hook in zip(GROUPS, hooks, strict=True):
            ca = (hook.cert_dir / "ca.crt").read_bytes()
            for doc in webhook_configurations(hook.port, ca):
                narrowed = _narrowed(doc, group)
                result = cluster.create(narrowed)
                assert result.code == 0, result.err
                created.append((doc["kind"].lower(), narrowed["metadata"]["name"]))
            ns = cluster.namespace(_namespace(group), secrets={**SECRETS, **TOKEN_SECRET})
            assert cluster.kubectl("label", "namespace", ns, f"{GROUP_LABEL}={group}").code == 0
            # the example config gives each function its own ServiceAccount, which must exist
            assert cluster.kubectl("-n", ns, "create", "serviceaccount", EXAMPLE_ACCOUNT).code == 0
        for group, hook in zip(GROUPS, hooks, strict=True):
            probe = {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {
                    "name": "probe",
                    "namespace": _namespace(group),
                    "labels": {
                        "component": "function",
                        "tenant": "t",
                        "namespace": "n",
                        "name": "bad value",
                    },
                },
                "spec": {
                    "clusterIP": "None",
                    "selector": {
                        "component": "function",
                        "tenant": "t",
                        "namespace": "n",
                        "name": "bad value",
                    },
                    "ports": [{"name": "grpc", "port": 9093}],
                },
            }
            wait_for(
                functools.partial(_dry_run_accepted, cluster, probe),
                30,
                f"the webhook configurations for {group} to take effect (log: {hook.log})",
            )
        cases = []
        for case in E2E_CASES:
            item = case.harness_case(configs[case.config])
            item["function"]["name"] = _function_name(case)
            cases.append(item)
        results = pulsar_harness.run(
            pulsar_harness_command, "start", cases, kubeconfig=control_plane.kubeconfig
        )
        yield Run(results, configs)
    finally:
        for hook in hooks:
            hook.stop()
        for kind, name in created:
            cluster.kubectl("delete", kind, name, "--ignore-not-found")


def _posts(result: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [
        r for r in result["requests"] if r["method"] == "POST" and r["path"].endswith(f"/{kind}")
    ]


def _stored(result: dict[str, Any], kind: str) -> dict[str, Any]:
    created = [r for r in _posts(result, kind) if r["status"] == 201]
    assert len(created) == 1, [r["status"] for r in _posts(result, kind)]
    return created[0]["response"]


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def test_no_request_of_the_worker_is_ever_answered_422(run: Run) -> None:
    for case_id, result in run.results.items():
        statuses = [r["status"] for r in result["requests"]]
        assert 422 not in statuses, (case_id, statuses)


@pytest.mark.parametrize("case", [c for c in E2E_CASES if c.expect == "ok"], ids=lambda c: c.id)
def test_start_succeeds_and_service_and_statefulset_select_the_same_pods(
    run: Run, case: pulsar_cases.Case
) -> None:
    result = run.results[case.id]
    assert result["stage"] == "ok", json.dumps(result.get("error"), indent=1)[:3000]
    service, sts = _stored(result, "services"), _stored(result, "statefulsets")
    template = sts["spec"]["template"]["metadata"]["labels"]
    assert _selects(sts["spec"]["selector"]["matchLabels"], template)
    assert _selects(service["spec"]["selector"], template)
    assert service["spec"]["selector"] == sts["spec"]["selector"]["matchLabels"]
    pod = sts["spec"]["template"]["spec"]
    volumes = [v["name"] for v in pod.get("volumes", [])]
    script = pod["containers"][0]["command"][2]
    if case.config in ("auth-disabled", "legacy"):
        # authentication off: no token, no auth flags, as the worker made it
        assert volumes == []
        assert "--client_auth_plugin" not in script and "--auth-plugin" not in script
    elif case.config == "token-secret":
        assert volumes == ["function-auth"]  # the worker's token-Secret layout, kept
    else:
        assert volumes == ["service-account-token"]
        mounts = [m["mountPath"] for m in pod["containers"][0]["volumeMounts"]]
        assert mounts == ["/etc/auth"]
    if case.secrets:
        env = {e["name"]: e for e in pod["containers"][0].get("env", [])}
        assert env["DB_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": "db-creds",
            "key": "password",
        }


def test_invalid_label_values_are_converted_alike_on_service_and_statefulset(run: Run) -> None:
    result = run.results["label-truncated-to-dash"]
    assert result["stage"] == "ok", result.get("error")
    service, sts = _stored(result, "services"), _stored(result, "statefulsets")
    for labels in (service["metadata"]["labels"], sts["spec"]["template"]["metadata"]["labels"]):
        assert labels["name"] == "a" * 62 + "0"
        assert labels["team"] == "data-eng"
    originals = json.loads(service["metadata"]["annotations"]["pf-webhook/original-labels"])
    assert originals == {"name": "a" * 62 + "-", "team": "data eng"}


@pytest.mark.parametrize("key", ["name", "component", "tenant", "namespace"])
def test_a_selector_key_override_is_denied_with_our_rule_naming_the_option(
    run: Run, key: str
) -> None:
    result = run.results[f"override-{key}"]
    assert result["stage"] == "start"
    services = _posts(result, "services")
    assert services and all(r["status"] == 403 for r in services)
    message = services[0]["response"]["message"]
    assert "[customizer/options]" in message
    assert f"extraLabels.{key}" in message
    assert not _posts(result, "statefulsets"), "the worker gave up at its Service"


def test_the_checked_in_fixtures_are_what_pulsar_renders_today(
    pulsar_harness_command: list[str],
) -> None:
    results = pulsar_harness.run(
        pulsar_harness_command, "render", [c.harness_case() for c in pulsar_cases.CASES]
    )
    for case in pulsar_cases.CASES:
        rendered = pulsar_cases.fixture(results[case.id])
        assert rendered == pulsar_cases.load_fixture(case.id), (
            f"{case.id}: tests/pulsar-fixtures is stale; run make pulsar-fixtures"
        )
