"""Golden cases: one YAML file per case under tests/golden/ (input, config, expectations).

Adding a case is adding a file; `pytest --update-golden` rewrites the `expect:` blocks, and the
diff is reviewed like code. Every case is also re-run on its own output, which must produce no
patch (reinvocation safety).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
import yaml

from tests import worker
from webhook.core import config as config_module
from webhook.core import mutation, patch, policy

GOLDEN = Path(__file__).parent.parent / "golden"
CASES = sorted(GOLDEN.glob("*.yaml"))


def _load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _input(case: dict[str, Any]) -> dict[str, Any]:
    if "worker" in case:
        return worker.statefulset(**case["worker"])
    return copy.deepcopy(case["input"])


def _config(case: dict[str, Any]) -> config_module.Config:
    if case.get("config") is None:
        return config_module.default_config()
    return config_module.from_mapping(case["config"])


def _lines(result: policy.ValidationResult) -> list[str]:
    lines = [d.line() for d in result.decisions]
    if result.refusal:
        lines.insert(0, f"REFUSED {result.refusal}")
    return lines


def _observe(case: dict[str, Any]) -> dict[str, Any]:
    obj, config = _input(case), _config(case)
    result = mutation.mutate(obj, config, namespace=case.get("namespace"))
    observed: dict[str, Any] = {}
    if result.refusal:
        observed["refused"] = result.refusal
    elif result.obj == obj:
        observed["unchanged"] = True
    else:
        observed["patch"] = patch.diff(obj, result.obj)
    observed["warnings"] = list(result.warnings)
    observed["audit"] = dict(result.audit)
    observed["validate_input"] = _lines(
        policy.validate(obj, config, namespace=case.get("namespace"))
    )
    observed["validate_output"] = _lines(
        policy.validate(result.obj, config, namespace=case.get("namespace"))
    )
    return observed


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden_case(path: Path, request: pytest.FixtureRequest) -> None:
    case = _load(path)
    observed = _observe(case)
    if request.config.getoption("--update-golden"):
        case["expect"] = observed
        path.write_text(yaml.safe_dump(case, sort_keys=False, width=100), encoding="utf-8")
        return
    assert observed == case["expect"]


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden_patch_applies_and_reinvocation_changes_nothing(path: Path) -> None:
    case = _load(path)
    obj, config = _input(case), _config(case)
    first = mutation.mutate(obj, config, namespace=case.get("namespace"))
    ops = patch.diff(obj, first.obj)
    assert jsonpatch.apply_patch(copy.deepcopy(obj), ops) == first.obj
    second = mutation.mutate(first.obj, config, namespace=case.get("namespace"))
    assert patch.diff(first.obj, second.obj) == []
    assert second.obj == first.obj


def test_there_are_golden_cases() -> None:
    assert len(CASES) >= 10
