"""The CLI contract: inputs (YAML/JSON, many documents, List, AdmissionReview), outputs, exit
codes, and one-line errors without tracebacks."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
import yaml

from tests import worker
from tests.reviews import patch_of
from webhook import cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CONFIG = str(EXAMPLES / "functions_worker.yml")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_mutate_prints_yaml_and_warnings_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "mutate", "-f", str(EXAMPLES / "worker-statefulset.yaml"), "--config", CONFIG
    )
    assert code == 0
    mutated = yaml.safe_load(out)
    volumes = mutated["spec"]["template"]["spec"]["volumes"]
    assert [v["name"] for v in volumes] == ["service-account-token"]
    assert all(line.startswith("warning: ") for line in err.splitlines())


def test_mutate_patch_output_applies_to_the_input(capsys: pytest.CaptureFixture[str]) -> None:
    source = yaml.safe_load((EXAMPLES / "worker-statefulset.yaml").read_text())
    _, out, _ = run(
        capsys,
        "mutate",
        "-f",
        str(EXAMPLES / "worker-statefulset.yaml"),
        "--config",
        CONFIG,
        "-o",
        "json",
    )
    _, ops, _ = run(
        capsys,
        "mutate",
        "-f",
        str(EXAMPLES / "worker-statefulset.yaml"),
        "--config",
        CONFIG,
        "-o",
        "patch",
    )
    assert jsonpatch.apply_patch(copy.deepcopy(source), json.loads(ops)) == json.loads(out)


def test_multiple_documents_and_lists_pass_non_functions_through(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "pf-x"},
        "spec": {"clusterIP": "None"},
    }
    sts = worker.statefulset(name="My_Func")
    docs = write(
        tmp_path,
        "all.yaml",
        yaml.safe_dump_all([service, {"apiVersion": "v1", "kind": "List", "items": [sts]}]),
    )
    code, out, _ = run(capsys, "mutate", "-f", docs)
    assert code == 0
    first, second = list(yaml.safe_load_all(out))
    assert first == service
    assert second["kind"] == "StatefulSet"


def test_an_admission_review_gets_the_servers_answer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "mutate", "-f", str(EXAMPLES / "admission-review.json"))
    assert code == 0
    answer = json.loads(out)
    assert answer["apiVersion"] == "admission.k8s.io/v1" and answer["kind"] == "AdmissionReview"
    response = answer["response"]
    assert (
        response["uid"] == "1"
        and response["allowed"] is True
        and response["patchType"] == "JSONPatch"
    )
    review = json.loads((EXAMPLES / "admission-review.json").read_text())
    ops = patch_of(response)
    patched = jsonpatch.apply_patch(copy.deepcopy(review["request"]["object"]), ops)
    assert [v["name"] for v in patched["spec"]["template"]["spec"]["volumes"]] == [
        "service-account-token"
    ]


def test_validate_text_and_json_and_exit_codes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    long = worker.statefulset(
        tenant="analytics", namespace="clickstream-ingest", name="sessionize-events-v2a"
    )
    path = write(tmp_path, "long.json", json.dumps(long))
    code, out, _ = run(capsys, "validate", "-f", path)
    assert code == 1
    assert out.startswith("DENY [naming/statefulset-name] metadata.name: ")
    code, out, _ = run(capsys, "validate", "-f", path, "-o", "json")
    report: dict[str, Any] = json.loads(out)
    assert code == 1 and report["allowed"] is False
    assert report["findings"][0]["rule"] == "naming/statefulset-name"
    assert set(report["findings"][0]) == {"rule", "action", "path", "message"}
    ok = write(tmp_path, "ok.yaml", yaml.safe_dump(worker.statefulset()))
    assert run(capsys, "validate", "-f", ok) == (0, "", "")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("a: [1, 2\n", "line", id="broken-yaml"),
        pytest.param("- just\n- a list\n", "not an object", id="not-an-object"),
        pytest.param("", "no documents", id="empty"),
        pytest.param(
            '{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}',
            "request",
            id="review-without-request",
        ),
    ],
)
def test_unreadable_input_is_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    path = write(tmp_path, "bad.yaml", text)
    for command in ("mutate", "validate"):
        code, out, err = run(capsys, command, "-f", path)
        assert code == 2
        assert out == ""
        assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and expected in err
        assert "Traceback" not in err


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        pytest.param(
            "runtimeCustomizerClassName: com.example.Mine\n",
            "runtimeCustomizerClassName",
            id="unknown-class",
        ),
        pytest.param(
            "functionRuntimeFactoryConfigs:\n  kubernetesFunctionAuthProviderConfig:\n    serviceAccountTokenExpirationSeconds: 60\n",
            "serviceAccountTokenExpirationSeconds",
            id="expiration-too-short",
        ),
        pytest.param("webhook:\n  polcy: {}\n", "webhook.polcy", id="typo-in-our-section"),
    ],
)
def test_bad_config_is_exit_2_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], config: str, expected: str
) -> None:
    cfg = write(tmp_path, "worker.yml", config)
    code, out, err = run(
        capsys, "validate", "-f", str(EXAMPLES / "worker-statefulset.yaml"), "--config", cfg
    )
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and expected in err and cfg in err


def test_missing_files_are_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "mutate", "-f", "/nonexistent/sts.yaml")
    assert code == 2 and "cannot read" in err
    code, _, err = run(
        capsys,
        "mutate",
        "-f",
        str(EXAMPLES / "worker-statefulset.yaml"),
        "--config",
        "/nonexistent.yml",
    )
    assert code == 2 and "/nonexistent.yml" in err


def test_a_wrong_shaped_object_is_refused_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sts = worker.statefulset()
    sts["spec"]["template"]["spec"]["containers"][0]["env"] = {"A": "b"}
    path = write(tmp_path, "shape.json", json.dumps(sts))
    code, _, err = run(capsys, "mutate", "-f", path)
    assert code == 1 and "env must be a list" in err and "Traceback" not in err
    code, out, _ = run(capsys, "validate", "-f", path)
    assert code == 1 and "env must be a list" in out


def test_validate_denies_requests_above_limits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sts = worker.statefulset()
    sts["spec"]["template"]["spec"]["containers"][0]["resources"] = {
        "requests": {"cpu": "1500m", "memory": "1Gi"},
        "limits": {"cpu": "1", "memory": "2Gi"},
    }
    code, out, _ = run(capsys, "validate", "-f", write(tmp_path, "sts.json", json.dumps(sts)))
    assert code == 1
    assert out.splitlines() == [
        "DENY [resources/requests-within-limits] spec.template.spec.containers[0].resources.requests.cpu: request 1500m is above the limit 1; lower the request or raise the limit"
    ]
