"""With the real API server frozen (SIGSTOP), reviews that need a live lookup always get the
same decision: the configured outcome for "could not check", within one timeout budget.

A real `pf-webhook serve` process with its caches synced from the real API server; reviews are
posted to it directly (the API server cannot call webhooks while frozen). The process is
resumed before the test ends, whatever happens.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import ssl
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from controlplane import ControlPlane

from tests import worker
from tests.e2e.test_admission import Cluster, Webhook
from tests.polling import wait_for
from tests.reviews import admission_review

CONFIG = """\
secretsProviderConfiguratorClassName: org.apache.pulsar.functions.secretsproviderconfigurator.KubernetesSecretsProviderConfigurator
webhook:
  secrets: {verify: %(verify)s}
  kube: {timeoutSeconds: 1}
"""


@contextlib.contextmanager
def frozen(control_plane: ControlPlane) -> Iterator[None]:
    proc = control_plane._apiserver
    assert proc is not None and proc.poll() is None
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(proc.pid, signal.SIGCONT)


def review(namespace: str, obj: dict[str, Any], uid: str) -> dict[str, Any]:
    return admission_review(obj, uid=uid, namespace=namespace)


def validate(hook: Webhook, body: dict[str, Any]) -> dict[str, Any]:
    context = ssl.create_default_context(cafile=str(hook.cert_dir / "ca.crt"))
    request = urllib.request.Request(
        f"https://127.0.0.1:{hook.port}/validate",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, context=context, timeout=30) as resp:
        answer: dict[str, Any] = json.loads(resp.read())["response"]
    return answer


def decision(answer: dict[str, Any]) -> tuple[bool, str]:
    """What the API server acts on: allowed, and the message or the warnings."""
    message = answer.get("status", {}).get("message", "")
    return answer["allowed"], message or " | ".join(answer.get("warnings", []))


@pytest.mark.parametrize("verify", ["warn", "deny"])
def test_with_the_api_server_frozen_the_same_review_always_gets_the_same_decision(
    control_plane: ControlPlane, tmp_path: Path, verify: str
) -> None:
    cluster = Cluster(control_plane)
    namespace = cluster.namespace(
        f"outage-{verify}", secrets={"cached-creds": {"password": "s3cr3t"}}
    )
    hook = Webhook(tmp_path, control_plane.kubeconfig)
    hook.config.write_text(CONFIG % {"verify": verify})
    hook.start()  # returns once /readyz is 200: the caches are synced
    try:
        missing = worker.statefulset(
            name="charge",
            k8s_namespace=namespace,
            secrets={"DB_PASSWORD": {"path": "not-cached-creds", "key": "password"}},
        )
        cached = worker.statefulset(
            name="refund",
            k8s_namespace=namespace,
            secrets={"DB_PASSWORD": {"path": "cached-creds", "key": "password"}},
        )
        # its key names are read once (when a function first names it), then kept
        assert validate(hook, review(namespace, cached, "uid-warm"))["allowed"] is True
        with frozen(control_plane):
            answers = [validate(hook, review(namespace, missing, f"uid-{i}")) for i in range(6)]
            from_cache = validate(hook, review(namespace, cached, "uid-cached"))
        decisions = {decision(a) for a in answers}
        assert len(decisions) == 1, decisions
        allowed, text = decisions.pop()
        assert "could not check Secret not-cached-creds" in text
        assert "API server did not answer within 1s" in text
        assert allowed is (verify == "warn")
        # what the cache knows is still used: no lookup, no outage
        assert from_cache["allowed"] is True and "warnings" not in from_cache
        # resumed: the lookup answers again (the Secret does not exist)
        wait_for(
            lambda: (
                "does not exist in this namespace"
                in decision(validate(hook, review(namespace, missing, "uid-after")))[1]
            ),
            30,
            "the lookup to answer again (the Secret does not exist)",
        )
    finally:
        hook.stop()
