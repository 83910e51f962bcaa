"""`pf-webhook mutate|validate` on hostile input (issue 12 item 8): one line and exit 2, or a
denial, never a traceback and never our own internal error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests import worker
from tests.unit.test_hostile_input import _details_with, _nest, review_of
from webhook import cli

ROOT = Path(__file__).resolve().parents[2]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _bomb() -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [{', '.join(f'*a{i - 1}' for _ in range(10))}]")
    return "\n".join(lines) + "\nkind: StatefulSet\n"


UNREADABLE = {
    "huge-int-yaml": ("x: " + "9" * 5000 + "\n", "Exceeds the limit"),
    "deep-yaml": ("x: " + "[" * 3000 + "]" * 3000 + "\n", "nested too deeply"),
    "deep-json": (json.dumps({**worker.statefulset(), "x": _nest(100)}), "nested deeper than 64"),
    "nan-yaml": (
        yaml.safe_dump(worker.statefulset()) + "extra: .nan\n",
        "nan is not a JSON number",
    ),
    "alias-bomb": (_bomb(), "more than 2000000 values"),
    "kind-not-a-string": ("kind: 7\nitems: []\n", None),
}


@pytest.mark.parametrize("mode", ["mutate", "validate"])
@pytest.mark.parametrize("case", sorted(UNREADABLE))
def test_unreadable_documents_are_one_line_and_exit_2(
    case: str, mode: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text, words = UNREADABLE[case]
    path = tmp_path / "in.yaml"
    path.write_text(text, encoding="utf-8")
    code, _, err = run(capsys, mode, "-f", str(path))
    assert "internal error" not in err
    assert "Traceback" not in err
    if words is None:  # readable after all: answered normally
        assert code in (0, 1)
        return
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert words in err


@pytest.mark.parametrize(
    "obj",
    [
        _details_with(resources={"cpu": "NaN", "ram": "1"}),
        _details_with(resources={"cpu": "_c"}, _c="1e999"),
        _details_with(resources={"ram": "_r"}, _r="9" * 5000),
        _details_with(customRuntimeOptions="[" * 100_000),
        _details_with(secretsMap=json.dumps({"A": _nest(490)})),
        worker.statefulset(
            custom_runtime_options={"resourceRequirements": {"limits": {"cpu": "1e6000000"}}}
        ),
    ],
    ids=["nan-cpu", "inf-cpu", "huge-ram", "deep-options", "deep-secrets", "huge-exponent"],
)
def test_hostile_function_details_are_denied_not_raised(
    obj: dict[str, object], granular: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "in.json"
    path.write_text(json.dumps(obj), encoding="utf-8")
    code, out, err = run(capsys, "validate", "-f", str(path), "--config", str(granular))
    assert code == 1, err
    assert out.startswith("DENY [")
    assert "internal error" not in err
    code, _, err = run(capsys, "mutate", "-f", str(path), "--config", str(granular))
    assert code == 0
    assert "internal error" not in err


@pytest.fixture(scope="module")
def granular(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config") / "functions_worker.yml"
    path.write_text(
        "functionInstanceResourceGranularities: {cpu: 0.5, ram: 1024}\n"
        "functionInstanceResourceChangeInLockStep: true\n"
        "runtimeCustomizerClassName: org.apache.pulsar.functions.runtime.kubernetes.BasicKubernetesManifestCustomizer\n",
        encoding="utf-8",
    )
    return path


def test_an_admission_review_with_a_deep_object_is_answered_with_a_denial(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "review.json"
    path.write_text(json.dumps(review_of({**worker.statefulset(), "x": _nest(100)})))
    code, out, _ = run(capsys, "validate", "-f", str(path))
    assert code == 1
    response = json.loads(out)["response"]
    assert response["allowed"] is False
    assert (
        "nested deeper than 64 levels (webhook.limits.maxJsonDepth)"
        in (response["status"]["message"])
    )


def test_the_installed_command_prints_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "in.yaml"
    path.write_text("x: " + "[" * 3000 + "]" * 3000 + "\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "webhook", "validate", "-f", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [f"error: {path}: nested too deeply"]
