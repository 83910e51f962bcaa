"""`pf-webhook audit` against a real kube-apiserver: tokens minted by the TokenRequest API and
verified with the API server's own issuer discovery and JWKS; StatefulSets listed from the
cluster. No webhook is installed here: the StatefulSets are stored exactly as the worker shapes
them. Namespaces start with `e2e-audit` so no other test module's webhook selects them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from controlplane import ControlPlane

from tests import worker
from webhook import cli

TOKEN_NS = "e2e-audit"
CLUSTER_NS = "e2e-audit-cluster"
ACCOUNT = "fn-audit"


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def _run(capsys: pytest.CaptureFixture[str], *argv: str, token: str | None = None) -> Run:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    if token is not None:
        for part in [token, *token.split(".")]:
            assert part not in captured.out and part not in captured.err, "token leaked"
    return Run(code, captured.out, captured.err)


def _ensure_namespace(cp: ControlPlane, name: str) -> None:
    if not cp.kubectl("get", "namespace", name, "--ignore-not-found", "-o", "name").strip():
        cp.kubectl("create", "namespace", name)


@pytest.fixture(scope="module")
def minted(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Path:
    _ensure_namespace(control_plane, TOKEN_NS)
    control_plane.kubectl("create", "serviceaccount", ACCOUNT, "-n", TOKEN_NS)
    token = control_plane.kubectl(
        "create", "token", ACCOUNT, "-n", TOKEN_NS, "--audience", "pulsar", "--duration", "10m"
    ).strip()
    path = tmp_path_factory.mktemp("audit") / "token"
    path.write_text(token + "\n")
    return path


def test_token_verifies_against_the_cluster(
    control_plane: ControlPlane, minted: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = minted.read_text().strip()
    kubeconfig = str(control_plane.kubeconfig)
    run = _run(
        capsys,
        *("audit", "token", str(minted), "--kubeconfig", kubeconfig, "--audience", "pulsar"),
        "-o",
        "json",
        token=token,
    )
    assert run.code == 0, run.out + run.err
    doc = run.json()
    assert doc["verified"] is True
    assert doc["findings"] == []
    assert doc["role"] == f"system:serviceaccount:{TOKEN_NS}:{ACCOUNT}"
    assert doc["issuer"] == control_plane.sa_issuer
    assert doc["claims"]["iss"] == control_plane.sa_issuer
    assert doc["namespace"] == TOKEN_NS
    assert doc["serviceAccount"] == ACCOUNT
    assert doc["algorithm"] == "ES256"
    assert doc["lifetimeSeconds"] == 600
    assert doc["keySource"].endswith("/openid/v1/jwks")

    text = _run(capsys, "audit", "token", str(minted), "--kubeconfig", kubeconfig, token=token)
    assert text.code == 0, text.out + text.err
    assert f"pulsar role:     system:serviceaccount:{TOKEN_NS}:{ACCOUNT}" in text.out
    assert "verified:        yes" in text.out


def test_token_for_another_audience(
    control_plane: ControlPlane, minted: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = minted.read_text().strip()
    run = _run(
        capsys,
        *("audit", "token", str(minted), "--kubeconfig", str(control_plane.kubeconfig)),
        *("--audience", "other"),
        token=token,
    )
    assert run.code == 1
    assert "verified:        yes" in run.out
    assert "FINDING [aud] audience pulsar is not one of other" in run.out


def test_token_of_another_issuer(
    control_plane: ControlPlane, minted: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The cluster's keys, but the user expects another issuer: an `iss` finding."""
    run = _run(
        capsys,
        *("audit", "token", str(minted), "--kubeconfig", str(control_plane.kubeconfig)),
        *("--issuer", "https://other.example", "-o", "json"),
        token=minted.read_text().strip(),
    )
    assert run.code == 1
    doc = run.json()
    assert doc["verified"] is True
    assert [f["check"] for f in doc["findings"]] == ["iss"]


def test_cluster_reports_functions_and_shared_role(
    control_plane: ControlPlane, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    installed = control_plane.kubectl(
        "get", "mutatingwebhookconfigurations,validatingwebhookconfigurations", "-o", "name"
    ).split()
    if installed:  # their selectors would catch our StatefulSets in any namespace
        pytest.fail(
            "admission webhook configurations are still installed (left by another test "
            f"module?): {', '.join(installed)}; this test stores worker StatefulSets as they are"
        )
    _ensure_namespace(control_plane, CLUSTER_NS)
    manifest = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            worker.statefulset(
                k8s_namespace=CLUSTER_NS,
                name=name,
                auth="sa-token",
                audience="pulsar",
                expiration=3600,
            )
            for name in ("audit-one", "audit-two")
        ],
    }
    path = tmp_path / "functions.json"
    path.write_text(json.dumps(manifest))
    control_plane.kubectl("create", "-f", str(path))

    kubeconfig = str(control_plane.kubeconfig)
    run = _run(
        capsys,
        *("audit", "cluster", "--kubeconfig", kubeconfig, "--namespace", CLUSTER_NS, "-o", "json"),
    )
    assert run.code == 0, run.out + run.err
    doc = run.json()
    functions = {f["function"]["name"]: f for f in doc["functions"]}
    assert set(functions) == {"audit-one", "audit-two"}
    for fn in functions.values():
        assert fn["namespace"] == CLUSTER_NS
        assert fn["audience"] == "pulsar"
        assert fn["expirationSeconds"] == 3600
        assert fn["serviceAccount"] == "default"
        assert fn["role"] == f"system:serviceaccount:{CLUSTER_NS}:default"
        assert fn["function"]["tenant"] == "public"
    role = f"system:serviceaccount:{CLUSTER_NS}:default"
    assert [(r["role"], r["count"]) for r in doc["sharedRoles"]] == [(role, 2)]
    assert doc["withoutAudience"] == []
    assert doc["counts"]["functions"] == 2
    assert doc["leftOut"] == 0

    limited = _run(
        capsys,
        *("audit", "cluster", "--kubeconfig", kubeconfig, "--namespace", CLUSTER_NS),
        *("--limit", "1"),
    )
    assert limited.code == 0, limited.err
    assert limited.out.splitlines()[0].startswith("NAMESPACE")
    assert "... 1 more functions left out (raise --limit)" in limited.out
    assert f"{role}  2 functions" in limited.out

    # All namespaces: ours are among them (other test modules may add their own).
    everywhere = _run(capsys, "audit", "cluster", "--kubeconfig", kubeconfig, "-o", "json")
    assert everywhere.code in (0, 1), everywhere.err
    names = {(f["namespace"], f["function"]["name"]) for f in everywhere.json()["functions"]}
    assert {(CLUSTER_NS, "audit-one"), (CLUSTER_NS, "audit-two")} <= names
