"""`tokens/service-account`: the ServiceAccount a function's template names exists (from the
cluster facts the shell gathered; without facts the rule is not evaluated)."""

from __future__ import annotations

from typing import Any

from tests import worker
from webhook.core import cluster, policy, rules
from webhook.core.config import default_config, loads


def _sts(**pod: Any) -> dict[str, Any]:
    obj = worker.statefulset(k8s_namespace="fns", name="fn")
    obj["spec"]["template"]["spec"].update(pod)
    return obj


def _rules(obj: dict[str, Any], facts: cluster.ClusterFacts | None) -> list[tuple[str, str, str]]:
    result = policy.validate(obj, default_config(), facts=facts, namespace="fns")
    return [
        (d.rule, d.action, d.message)
        for d in result.decisions
        if d.rule == "tokens/service-account"
    ]


def test_rule_is_declared() -> None:
    assert rules.find("tokens/service-account") is policy.SERVICE_ACCOUNT
    config = loads("webhook:\n  policy: {rules: {tokens/service-account: warn}}\n")
    assert config.action("tokens/service-account") == "warn"


def test_named_account_must_exist() -> None:
    obj = _sts(serviceAccountName="pf-fn")
    assert policy.named_service_account(obj) == "pf-fn"
    assert _rules(obj, cluster.ClusterFacts(service_accounts={"pf-fn": True})) == []
    [(_, action, message)] = _rules(obj, cluster.ClusterFacts(service_accounts={"pf-fn": False}))
    assert action == "deny" and "ServiceAccount pf-fn does not exist" in message
    [(_, _, unknown)] = _rules(obj, cluster.ClusterFacts(unavailable="timed out"))
    assert unknown == "could not check ServiceAccount pf-fn: timed out"
    assert _rules(obj, None) == []  # no cluster: not evaluated


def test_unnamed_template_runs_as_default_and_is_not_checked() -> None:
    obj = _sts()
    assert policy.named_service_account(obj) is None
    assert _rules(obj, cluster.ClusterFacts()) == []
    assert policy.named_service_account(_sts(serviceAccount="legacy")) == "legacy"
