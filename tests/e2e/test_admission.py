"""The webhook against a real kube-apiserver + etcd: our manifests' webhook configurations,
a real `pf-webhook serve` process, and what the API server stores or refuses.

Each test uses its own namespace (namespaces cannot really be deleted without a
controller-manager). The webhook's config file is rewritten by some tests; the running server
picks it up (hot reload), which is itself part of what is tested.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from controlplane import ControlPlane, free_ports

from tests import worker
from tests.polling import wait_for
from webhook.certs import pki
from webhook.core import naming

ROOT = Path(__file__).resolve().parents[2]
KUBECTL = "/usr/bin/kubectl"

CONFIG = """\
authenticationEnabled: true
functionRuntimeFactoryClassName: org.apache.pulsar.functions.runtime.kubernetes.KubernetesRuntimeFactory
secretsProviderConfiguratorClassName: org.apache.pulsar.functions.secretsproviderconfigurator.KubernetesSecretsProviderConfigurator
functionAuthProviderClassName: org.apache.pulsar.functions.auth.KubernetesServiceAccountTokenAuthProvider
runtimeCustomizerClassName: org.apache.pulsar.functions.runtime.kubernetes.BasicKubernetesManifestCustomizer
functionRuntimeFactoryConfigs:
  kubernetesFunctionAuthProviderConfig:
    serviceAccountTokenAudience: pulsar
    serviceAccountTokenExpirationSeconds: "3600"
    brokerClientTrustCertsSecretName: broker-ca
runtimeCustomizerConfig:
  extraAnnotations: {owner: platform}
  nodeSelectorLabels: {pool: functions}
  tolerations:
  - {key: dedicated, operator: Equal, value: pulsar, effect: NoSchedule}
webhook:
  secrets: {verify: deny}
  tokens: {allowedAudiences: [pulsar]}
  policy: {enforcement: %(enforcement)s}
"""


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


class Cluster:
    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp

    def kubectl(self, *args: str, stdin: Any = None) -> Result:
        data = None if stdin is None else (stdin if isinstance(stdin, str) else json.dumps(stdin))
        proc = subprocess.run(
            [
                KUBECTL,
                f"--kubeconfig={self.cp.kubeconfig}",
                f"--cache-dir={self.cp.tmpdir}/kc-cache",
                *args,
            ],
            input=data,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def create(self, obj: Any, *extra: str) -> Result:
        return self.kubectl("create", "-f", "-", "-o", "json", *extra, stdin=obj)

    def namespace(self, name: str, *, secrets: dict[str, dict[str, str]] | None = None) -> str:
        assert self.kubectl("create", "namespace", name).code == 0
        for secret, data in (secrets or {}).items():
            self.secret(name, secret, data)
        return name

    def secret(self, namespace: str, name: str, data: dict[str, str]) -> None:
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "data": encoded,
        }
        result = self.create(body)
        assert result.code == 0, result.err


class Webhook:
    """A real `pf-webhook serve` process with its own certificates and config file."""

    def __init__(self, workdir: Path, kubeconfig: Path) -> None:
        self.workdir = workdir
        self.kubeconfig = kubeconfig
        self.config = workdir / "functions_worker.yml"
        self.cert_dir = workdir / "certs"
        pki.generate(
            service="pf-webhook",
            namespace="pf-webhook",
            out_dir=self.cert_dir,
            hosts=("localhost",),
            ips=("127.0.0.1",),
        )
        self.port, self.metrics_port = free_ports(2)
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None
        self.log = workdir / "webhook.log"
        self.write_config("deny")

    def write_config(self, enforcement: str) -> None:
        tmp = self.config.with_suffix(".tmp")
        tmp.write_text(CONFIG % {"enforcement": enforcement}, encoding="utf-8")
        os.replace(tmp, self.config)

    def start(self) -> None:
        env = {**os.environ, "PF_WEBHOOK_SHUTDOWN_DELAY": "0"}
        self._log_file = self.log.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "webhook",
                "serve",
                "--config",
                str(self.config),
                "--cert-dir",
                str(self.cert_dir),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--metrics-port",
                str(self.metrics_port),
                "--kubeconfig",
                str(self.kubeconfig),
            ],
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
        wait_for(self.ready, 30, "webhook /readyz")

    def ready(self) -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.metrics_port}/readyz", timeout=1
            ) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


def webhook_configurations(port: int, ca: bytes) -> list[dict[str, Any]]:
    """Our manifests' configurations, with only the client config switched to URL + caBundle."""
    configs = []
    for name in ("mutatingwebhookconfiguration.yaml", "validatingwebhookconfiguration.yaml"):
        doc = yaml.safe_load((ROOT / "manifests" / "base" / name).read_text())
        for hook in doc["webhooks"]:
            path = hook["clientConfig"]["service"]["path"]
            hook["clientConfig"] = {
                "url": f"https://127.0.0.1:{port}{path}",
                "caBundle": base64.b64encode(ca).decode(),
            }
        configs.append(doc)
    return configs


@pytest.fixture(scope="module")
def cluster(control_plane: ControlPlane) -> Cluster:
    return Cluster(control_plane)


@pytest.fixture(scope="module")
def webhook(
    control_plane: ControlPlane, cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Webhook]:
    hook = Webhook(tmp_path_factory.mktemp("webhook"), control_plane.kubeconfig)
    try:
        hook.start()
        ca = (hook.cert_dir / "ca.crt").read_bytes()
        for doc in webhook_configurations(hook.port, ca):
            result = cluster.create(doc)
            assert result.code == 0, f"the API server refused our {doc['kind']}: {result.err}"
        probe_ns = cluster.namespace(f"e2e-probe-{hook.port}", secrets=SECRETS)  # once per module

        def mutated() -> bool:
            sts = worker.statefulset(name="probe", k8s_namespace=probe_ns)
            result = cluster.create(sts, "--dry-run=server")
            return result.code == 0 and "service-account-token" in result.out

        wait_for(
            mutated, 30, f"the webhook configurations to take effect (webhook log: {hook.log})"
        )
        yield hook
    finally:
        hook.stop()
        for kind in ("mutatingwebhookconfiguration", "validatingwebhookconfiguration"):
            cluster.kubectl("delete", kind, "pf-webhook", "--ignore-not-found")


def full_function(k8s_namespace: str, /, **extra: Any) -> dict[str, Any]:
    """A worker StatefulSet with secrets, SA-token auth with a CA, and customizer options."""
    kwargs: dict[str, Any] = {
        "k8s_namespace": k8s_namespace,
        "secrets": {"DB_PASSWORD": {"path": "db-creds", "key": "password"}},
        "auth": "sa-token",
        "ca_secret": "broker-ca",
        "audience": "pulsar",
        "expiration": 3600,
        "custom_runtime_options": {
            "extraLabels": {"team": "data eng"},
            "nodeSelectorLabels": {"disktype": "ssd"},
            "resourceRequirements": {"limits": {"cpu": "2"}},
        },
    }
    kwargs.update(extra)
    return worker.statefulset(**kwargs)


SECRETS = {
    "db-creds": {"password": "hunter2-not-logged"},
    "broker-ca": {"ca.crt": "-----BEGIN CERTIFICATE-----"},
}


def test_our_webhook_configurations_are_accepted_by_the_api_server(
    cluster: Cluster, webhook: Webhook
) -> None:
    for kind in ("mutatingwebhookconfiguration", "validatingwebhookconfiguration"):
        stored = cluster.kubectl("get", kind, "pf-webhook", "-o", "json").json()
        for hook in stored["webhooks"]:
            assert hook["sideEffects"] == "None"
            assert hook["timeoutSeconds"] <= 5
            assert hook["failurePolicy"] == "Fail"
            assert hook["matchPolicy"] == "Equivalent"
            if kind.startswith("mutating"):
                assert hook["reinvocationPolicy"] == "IfNeeded"


def test_a_worker_statefulset_is_stored_mutated(cluster: Cluster, webhook: Webhook) -> None:
    ns = cluster.namespace("e2e-mutated", secrets=SECRETS)
    # the worker's own label conversion leaves a trailing '-' here (truncation after the end fix)
    sts = full_function(ns, name="a" * 62 + "-b", job_name="long-fn")
    assert not naming.is_label_value(sts["metadata"]["labels"]["name"])
    result = cluster.create(sts)
    assert result.code == 0, result.err
    stored = result.json()
    pod = stored["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert [e for e in container["env"] if e["name"] == "DB_PASSWORD"] == [
        {
            "name": "DB_PASSWORD",
            "valueFrom": {"secretKeyRef": {"name": "db-creds", "key": "password"}},
        }
    ]
    assert [v["name"] for v in pod["volumes"]] == ["service-account-token"]
    sources = pod["volumes"][0]["projected"]["sources"]
    assert sources[0]["serviceAccountToken"] == {
        "audience": "pulsar",
        "expirationSeconds": 3600,
        "path": "token",
    }
    assert sources[1]["secret"] == {
        "name": "broker-ca",
        "items": [{"key": "ca.crt", "path": "ca.crt"}],
    }
    assert container["volumeMounts"] == [
        {"name": "service-account-token", "mountPath": "/etc/auth", "readOnly": True}
    ]
    script = container["command"][2]
    assert "--client_auth_plugin org.apache.pulsar.client.impl.auth.AuthenticationToken" in script
    assert "--client_auth_params file:///etc/auth/token" in script
    assert "--tls_trust_cert_path /etc/auth/ca.crt" in script
    assert stored["metadata"]["labels"]["team"] == "data-eng"
    assert stored["metadata"]["annotations"]["owner"] == "platform"
    assert pod["nodeSelector"] == {"pool": "functions", "disktype": "ssd"}
    assert {
        "key": "dedicated",
        "operator": "Equal",
        "value": "pulsar",
        "effect": "NoSchedule",
    } in pod["tolerations"]
    assert container["resources"]["limits"]["cpu"] == "2"
    selector = stored["spec"]["selector"]["matchLabels"]
    template = stored["spec"]["template"]["metadata"]["labels"]
    assert selector["name"] == template["name"] == "a" * 62 + "0"
    assert "team" not in selector
    assert (
        json.loads(stored["metadata"]["annotations"]["pf-webhook/original-labels"])["name"]
        == "a" * 62 + "-"
    )


def test_the_workers_ca_layout_is_refused_without_the_webhook_and_repaired_with_it(
    cluster: Cluster, webhook: Webhook
) -> None:
    # our own namespace is excluded by the namespaceSelector: there the API server sees the worker's output as is
    cluster.kubectl("create", "namespace", "pf-webhook")
    raw = worker.statefulset(
        k8s_namespace="pf-webhook",
        auth="sa-token",
        ca_secret="broker-ca",
        audience="pulsar",
        expiration=3600,
    )
    refused = cluster.create(raw)
    assert refused.code != 0
    assert "mountPath" in refused.err and "must be unique" in refused.err
    ns = cluster.namespace("e2e-layout", secrets=SECRETS)
    accepted = cluster.create({**raw, "metadata": {**raw["metadata"], "namespace": ns}})
    assert accepted.code == 0, accepted.err
    pod = accepted.json()["spec"]["template"]["spec"]
    assert [m["mountPath"] for m in pod["containers"][0]["volumeMounts"]] == ["/etc/auth"]


def _refusal(result: Result, rule: str) -> None:
    assert result.code != 0, "expected the API server to refuse"
    assert "denied the request" in result.err
    assert f"[{rule}]" in result.err


def test_policy_denials_carry_our_rule_and_message(cluster: Cluster, webhook: Webhook) -> None:
    ns = cluster.namespace("e2e-deny", secrets=SECRETS)
    long = full_function(
        ns, tenant="analytics", namespace="clickstream-ingest", name="sessionize-events-v2a"
    )
    assert len(long["metadata"]["name"]) == 53
    result = cluster.create(long)
    _refusal(result, "naming/statefulset-name")
    assert "jobName" in result.err

    other_audience = full_function(ns, name="vault-reader")
    pod = other_audience["spec"]["template"]["spec"]
    pod["volumes"].append(
        {
            "name": "vault-token",
            "projected": {
                "sources": [
                    {
                        "serviceAccountToken": {
                            "audience": "vault",
                            "expirationSeconds": 3600,
                            "path": "vault",
                        }
                    }
                ]
            },
        }
    )
    pod["containers"][0]["volumeMounts"].append(
        {"name": "vault-token", "mountPath": "/var/run/vault", "readOnly": True}
    )
    _refusal(cluster.create(other_audience), "tokens/audience")

    missing = full_function(
        ns, name="missing-secret", secrets={"API_KEY": {"path": "no-such-secret", "key": "token"}}
    )
    result = cluster.create(missing)
    _refusal(result, "secrets/exists")
    assert "no-such-secret" in result.err


def test_in_warn_mode_the_object_is_created_and_the_client_sees_the_warning(
    cluster: Cluster, webhook: Webhook
) -> None:
    ns = cluster.namespace("e2e-warn", secrets=SECRETS)
    long = full_function(
        ns, tenant="analytics", namespace="clickstream-ingest", name="sessionize-events-v2a"
    )
    webhook.write_config("warn")
    try:

        def created() -> bool:
            result = cluster.create(long)
            created.last = result  # type: ignore[attr-defined]
            return result.code == 0

        wait_for(created, 15, "the config change to be picked up")
        result: Result = created.last  # type: ignore[attr-defined]
        assert "Warning:" in result.err and "[naming/statefulset-name]" in result.err
    finally:
        webhook.write_config("deny")
        wait_for(lambda: cluster.create(long, "--dry-run=server").code != 0, 15, "deny mode again")


def test_a_secret_created_just_before_its_statefulset_is_found(
    cluster: Cluster, webhook: Webhook
) -> None:
    ns = cluster.namespace("e2e-race", secrets={"broker-ca": SECRETS["broker-ca"]})
    fresh = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "fresh-creds", "namespace": ns},
        "data": {"password": base64.b64encode(b"x").decode()},
    }
    sts = full_function(
        ns, name="race", secrets={"DB_PASSWORD": {"path": "fresh-creds", "key": "password"}}
    )
    result = cluster.create({"apiVersion": "v1", "kind": "List", "items": [fresh, sts]})
    assert result.code == 0, result.err


def test_two_functions_whose_labels_truncate_alike_collide(
    cluster: Cluster, webhook: Webhook
) -> None:
    ns = cluster.namespace("e2e-collide", secrets=SECRETS)
    first = full_function(ns, name="x" * 70 + "1", job_name="first")
    second = full_function(ns, name="x" * 70 + "2", job_name="second")
    assert first["spec"]["selector"]["matchLabels"] == second["spec"]["selector"]["matchLabels"]
    created = cluster.create(first)
    assert created.code == 0, created.err
    first_name = created.json()["metadata"]["name"]

    def refused() -> bool:  # the StatefulSet cache learns of `first` from its watch
        result = cluster.create(second, "--dry-run=server")
        refused.last = result  # type: ignore[attr-defined]
        return result.code != 0

    wait_for(refused, 10, "the collision to be seen")
    result: Result = refused.last  # type: ignore[attr-defined]
    _refusal(result, "naming/selector-collision")
    assert first_name in result.err


def _spec_and_meta(obj: dict[str, Any]) -> dict[str, Any]:
    meta = {
        k: v
        for k, v in obj["metadata"].items()
        if k in ("name", "namespace", "labels", "annotations")
    }
    return {"metadata": meta, "spec": obj["spec"]}


def test_dry_run_and_reapplying_the_stored_object_change_nothing(
    cluster: Cluster, webhook: Webhook
) -> None:
    ns = cluster.namespace("e2e-idempotent", secrets=SECRETS)
    sts = full_function(ns, name="again")
    dry = cluster.create(sts, "--dry-run=server")
    assert dry.code == 0, dry.err
    stored = cluster.create(sts)
    assert stored.code == 0, stored.err
    assert _spec_and_meta(dry.json()) == _spec_and_meta(stored.json())
    again = copy.deepcopy(stored.json())
    replaced = cluster.kubectl("replace", "-f", "-", "-o", "json", stdin=again)
    assert replaced.code == 0, replaced.err
    after = replaced.json()
    assert _spec_and_meta(after) == _spec_and_meta(stored.json())
    assert after["metadata"]["generation"] == stored.json()["metadata"]["generation"] == 1


def test_with_the_webhook_stopped_failure_policy_fail_refuses_function_statefulsets(
    cluster: Cluster, webhook: Webhook
) -> None:
    ns = cluster.namespace("e2e-down", secrets=SECRETS)
    webhook.stop()
    try:
        result = cluster.create(full_function(ns, name="while-down"))
        assert result.code != 0
        assert "failed calling webhook" in result.err
        # objects outside the selectors are untouched by the outage
        plain = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "unaffected", "namespace": ns},
        }
        assert cluster.create(plain).code == 0
    finally:
        webhook.start()


def _create_event(cp: ControlPlane, ns: str, name: str) -> dict[str, Any] | None:
    """The audit event of the StatefulSet's create (its response sent), if logged yet."""
    for event in cp.audit_events():
        ref = event.get("objectRef") or {}
        if (
            event.get("verb") == "create"
            and event.get("stage") == "ResponseComplete"
            and ref.get("resource") == "statefulsets"
            and ref.get("namespace") == ns
            and ref.get("name") == name
        ):
            return event
    return None


def _logged(cp: ControlPlane, ns: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def present() -> bool:
        event = _create_event(cp, ns, name)
        if event is not None:
            found.update(event)
        return event is not None

    wait_for(present, 10, f"the audit event of creating StatefulSet {ns}/{name}")
    return found


def test_the_audit_log_records_our_decision(
    control_plane: ControlPlane, cluster: Cluster, webhook: Webhook
) -> None:
    """The API server's audit log carries our auditAnnotations on the StatefulSet's create
    event: audience, expiration, role and auth from the mutation; the rules fired from the
    validation (here the ServiceAccount rule, against the real cluster)."""
    ns = cluster.namespace("e2e-audit-log", secrets=SECRETS)
    sts = full_function(ns, name="audited")
    name = sts["metadata"]["name"]
    result = cluster.create(sts)
    assert result.code == 0, result.err
    annotations = _logged(control_plane, ns, name).get("annotations") or {}
    assert annotations["mutate.pf-webhook.io/pulsar-role"] == f"system:serviceaccount:{ns}:default"
    assert annotations["mutate.pf-webhook.io/token-audience"] == "pulsar"
    assert annotations["mutate.pf-webhook.io/token-expiration-seconds"] == "3600"
    assert annotations["mutate.pf-webhook.io/auth"] == "service-account-token"
    assert annotations["mutate.pf-webhook.io/ca-secret"] == "broker-ca"
    assert not any(k.startswith("validate.pf-webhook.io/") for k in annotations)  # none fired

    # A template naming a ServiceAccount nobody created: refused, and the log says which rule.
    nobody = full_function(ns, name="nobody")
    nobody["spec"]["template"]["spec"]["serviceAccountName"] = "pf-nobody"
    refused = cluster.create(nobody)
    _refusal(refused, "tokens/service-account")
    assert "ServiceAccount pf-nobody does not exist" in refused.err
    event = _logged(control_plane, ns, nobody["metadata"]["name"])
    assert event["responseStatus"]["code"] == 403
    assert event["annotations"]["validate.pf-webhook.io/rules"] == "tokens/service-account=deny"
    assert (
        event["annotations"]["mutate.pf-webhook.io/pulsar-role"]
        == f"system:serviceaccount:{ns}:pf-nobody"
    )

    # Created a moment before its StatefulSet (not yet in the watch cache): found.
    assert cluster.kubectl("create", "serviceaccount", "pf-nobody", "-n", ns).code == 0
    created = cluster.create(nobody)
    assert created.code == 0, created.err

    # Level Metadata: no request or response bodies, so no Secret value in the log.
    text = control_plane.audit_log.read_text(errors="replace")
    assert "hunter2-not-logged" not in text
    assert base64.b64encode(b"hunter2-not-logged").decode() not in text
