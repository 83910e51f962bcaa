"""`pf-webhook certs inject` writes our CA into the caBundle of both webhook configurations on
a real API server, and leaves everything else as it was."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import yaml
from controlplane import ControlPlane

from webhook.certs import pki

ROOT = Path(__file__).resolve().parents[2]
NAME = "pf-webhook-inject-test"


def _configuration(kind: str) -> dict[str, object]:
    doc = yaml.safe_load(
        (ROOT / "manifests" / "base" / f"{kind.lower()}webhookconfiguration.yaml").read_text()
    )
    doc["metadata"]["name"] = NAME
    for hook in doc["webhooks"]:
        # never matches anything, so this configuration cannot disturb other tests
        hook["objectSelector"] = {"matchLabels": {"pf-webhook-e2e": "never"}}
    return doc


def test_certs_inject_sets_the_ca_bundle_of_both_configurations(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    for kind in ("Mutating", "Validating"):
        control_plane.kubectl("apply", "-f", str(_write(tmp_path, kind)))
    paths = pki.generate(service="pf-webhook", namespace="pf-webhook", out_dir=tmp_path / "certs")
    cmd = [
        sys.executable,
        "-m",
        "webhook",
        "certs",
        "inject",
        "--ca-file",
        str(paths.ca_cert),
        "--kubeconfig",
        str(control_plane.kubeconfig),
        "--mutating",
        NAME,
        "--validating",
        NAME,
    ]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert first.returncode == 0, first.stderr
    expected = base64.b64encode(pki.read_ca_bundle(paths.ca_cert)).decode()
    for kind in ("mutatingwebhookconfiguration", "validatingwebhookconfiguration"):
        stored = json.loads(control_plane.kubectl("get", kind, NAME, "-o", "json"))
        for hook in stored["webhooks"]:
            assert hook["clientConfig"]["caBundle"] == expected
            assert hook["clientConfig"]["service"]["name"] == "pf-webhook"
            assert hook["failurePolicy"] == "Fail"
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert again.returncode == 0 and "up to date" in again.stdout
    for kind in ("mutatingwebhookconfiguration", "validatingwebhookconfiguration"):
        control_plane.kubectl("delete", kind, NAME)


def _write(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.yaml"
    path.write_text(yaml.safe_dump(_configuration(kind)), encoding="utf-8")
    return path
