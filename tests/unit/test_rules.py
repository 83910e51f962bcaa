"""The rule registry: each rule declared once beside its check; the config, the README's rule
table and the metrics read it, and no check can report a rule it does not hold."""

from __future__ import annotations

import ast
import copy
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import webhook
import webhook.core
from tests import worker
from webhook.core import config, mutation, policy, rules
from webhook.server import metrics

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted((ROOT / "webhook").rglob("*.py"))


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Name) and node.func.id == name)
            or (isinstance(node.func, ast.Attribute) and node.func.attr == name)
        )
    ]


@pytest.mark.parametrize("path", SOURCES, ids=[str(p.relative_to(ROOT)) for p in SOURCES])
def test_findings_are_made_of_declared_rules_only(path: Path) -> None:
    """A Finding takes a Rule (mypy holds that); a Rule comes from `rules.declare`, never from a
    bare constructor, and every Finding names its rule by a declared constant."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    if path.name != "rules.py" or path.parent.name != "core":
        assert not _calls(tree, "Rule"), f"{path}: build rules with rules.declare"
    for call in _calls(tree, "Finding"):
        rule = call.args[0] if call.args else None
        assert isinstance(rule, ast.Name | ast.Attribute), f"{path}:{call.lineno}"


def test_every_rule_constant_in_the_core_is_the_registered_one() -> None:
    found = {}
    for module in pkgutil.iter_modules(webhook.core.__path__, "webhook.core."):
        for name, value in vars(importlib.import_module(module.name)).items():
            if isinstance(value, rules.Rule):
                assert rules.find(value.id) is value, f"{module.name}.{name}"
                found[value.id] = f"{module.name}.{name}"
    assert set(found) == {rule.id for rule in rules.declared()}


def test_every_rule_reported_over_the_golden_corpus_is_declared() -> None:
    declared = {rule.id for rule in rules.declared()}
    seen = set()
    for path in sorted((ROOT / "tests" / "golden").glob("*.yaml")):
        case = yaml.safe_load(path.read_text(encoding="utf-8"))
        obj = worker.statefulset(**case["worker"]) if "worker" in case else case["input"]
        cfg = config.from_mapping(case["config"]) if case.get("config") else config.Config()
        result = mutation.mutate(copy.deepcopy(obj), cfg, namespace=case.get("namespace"))
        for subject in (obj, result.obj):
            verdict = policy.validate(subject, cfg, namespace=case.get("namespace"))
            seen |= {decision.rule for decision in verdict.decisions}
    assert seen and seen <= declared


@pytest.mark.parametrize(
    "first", ["webhook.core.config", "webhook.core.rules", "webhook.core.labels"]
)
def test_the_registry_is_complete_whichever_module_is_imported_first(first: str) -> None:
    script = (
        f"import {first}\n"
        "from webhook.core import config, rules\n"
        "ids = [rule.id for rule in rules.declared()]\n"
        "config.loads('webhook: {policy: {rules: {%s: warn}}}' % ids[-1])\n"
        "print(len(ids))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert int(done.stdout) == len(rules.declared())


def test_a_rule_is_declared_once_with_a_well_formed_id_and_one_line() -> None:
    with pytest.raises(ValueError, match="declared twice"):
        rules.declare("tokens/audience", "again")
    with pytest.raises(ValueError, match="not of the form"):
        rules.declare("Tokens audience", "what")
    with pytest.raises(ValueError, match="one line"):
        rules.declare("tokens/not-declared", "two\nlines")
    assert rules.find("tokens/not-declared") is None


def test_policy_rules_accepts_exactly_the_declared_ids() -> None:
    every = {rule.id: "audit" for rule in rules.declared()}
    assert dict(config.from_mapping({"webhook": {"policy": {"rules": every}}}).rules) == every
    with pytest.raises(config.ConfigError, match=r"^webhook\.policy\.rules\.pod/nope: unknown"):
        config.from_mapping({"webhook": {"policy": {"rules": {"pod/nope": "deny"}}}})


def test_the_readme_rule_table_is_the_registry() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Validation rules", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    expected = [f"| `{rule.id}` | {rule.checks} |" for rule in rules.declared()]
    assert rows == expected, "\n".join(["README's rule table should read:", *expected])


def test_the_findings_metric_has_a_series_for_every_rule_from_the_start() -> None:
    text = metrics.Metrics().render().decode()
    for rule in rules.declared():
        for action in ("deny", "warn", "audit"):
            assert f'pf_webhook_findings_total{{action="{action}",rule="{rule.id}"}} 0.0' in text
