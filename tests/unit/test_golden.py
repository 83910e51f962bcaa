"""Golden cases: one YAML file per case under tests/golden/ (input, config, cluster facts,
expectations).

A case gives its object as `input:` (as written) or `worker:` (tests/worker.py's StatefulSet,
as Pulsar's worker makes it, with optional `edit:` JSONPatch operations applied), an optional
`config:` (functions_worker.yml), `namespace:` (the review's) and `facts:`, what the cluster
holds in that namespace:

    facts:
      secrets: {db-creds: [password]}     # every Secret there, with its key names
      serviceAccounts: [pf-fn]            # every ServiceAccount there
      statefulsets:                       # the other StatefulSets there
      - {name: ..., selector: {...}, templateLabels: {...}}
      unavailable: ...                    # or: why the lookups failed (none was made)

With `facts:` the cluster-backed rules are evaluated, as the server does with a cluster; without
it they are not, as without one.

`expect:` holds what the core decides (`patch`, `warnings`, `audit`, the validation of the input
and of the output) and `respond`, the AdmissionReview answers to /mutate (of the input) and to
/validate (of the input with the /mutate patch applied, as the API server sends it). The uid of
each answer is checked to be the request's, and the base64 JSONPatch of /mutate to decode to
`expect.patch` and to turn the input into the mutated object; both are left out of `respond`.

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
from tests.reviews import admission_review, patch_of
from webhook.core import analysis, cluster, mutation, patch, policy, review
from webhook.core import config as config_module

GOLDEN = Path(__file__).parent.parent / "golden"
CASES = sorted(GOLDEN.glob("*.yaml"))
UID = "9e5b0c1a-golden"
CLUSTER_RULES = (
    "secrets/exists",
    "tokens/ca-secret",
    "tokens/service-account",
    "naming/selector-collision",
)


def _load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _input(case: dict[str, Any]) -> dict[str, Any]:
    if "worker" in case:
        obj = worker.statefulset(**case["worker"])
        return jsonpatch.apply_patch(obj, case.get("edit") or [])
    return copy.deepcopy(case["input"])


def _config(case: dict[str, Any]) -> config_module.Config:
    if case.get("config") is None:
        return config_module.default_config()
    return config_module.from_mapping(case["config"])


def cluster_facts(case: dict[str, Any], lookups: cluster.Lookups) -> cluster.ClusterFacts | None:
    """The facts provider's answer to `lookups` from the case's `facts:` (None without one):
    like the server's caches, it gives what the lookups ask for, Secrets that do not exist as
    None. With `unavailable:` the lookups failed (nothing looked up) and the other StatefulSets
    are known only if listed."""
    held = case.get("facts")
    if held is None:
        return None
    secrets: dict[str, Any] = held.get("secrets") or {}
    accounts = set(held.get("serviceAccounts") or ())
    unavailable = held.get("unavailable")
    others = None
    if lookups.statefulsets and ("statefulsets" in held or not unavailable):
        others = tuple(
            cluster.OtherStatefulSet(
                name=other["name"],
                selector=other.get("selector") or {},
                template_labels=other.get("templateLabels") or {},
            )
            for other in held.get("statefulsets") or ()
        )
    if unavailable:
        return cluster.ClusterFacts(statefulsets=others, unavailable=unavailable)
    return cluster.ClusterFacts(
        secrets={
            name: frozenset(secrets[name]) if name in secrets else None for name in lookups.secrets
        },
        service_accounts={name: name in accounts for name in lookups.service_accounts},
        statefulsets=others,
    )


def admit(
    case: dict[str, Any], obj: dict[str, Any], config: config_module.Config, *, mode: review.Mode
) -> dict[str, Any]:
    """The AdmissionReview response to `obj` at /`mode`, with the case's cluster facts at
    /validate (as the server asks the cluster only there): the one place this harness calls
    the review entry points."""
    doc = admission_review(obj, uid=UID, namespace=case.get("namespace"))
    parsed = review.parse(doc, config)
    facts = cluster_facts(case, review.lookups(parsed)) if mode == "validate" else None
    answer, _ = review.respond(parsed, mode=mode, facts=facts)
    assert answer["apiVersion"] == "admission.k8s.io/v1" and answer["kind"] == "AdmissionReview"
    response = dict(answer["response"])
    assert response.pop("uid") == UID
    return response


def _validate(
    case: dict[str, Any], obj: dict[str, Any], config: config_module.Config
) -> policy.ValidationResult:
    """The core's validation of `obj`, with the case's facts for the lookups it asks for."""
    subject = analysis.classify(obj, config.limits)
    facts = cluster_facts(case, policy.lookups(subject, config))
    return policy.validate_subject(subject, config, facts=facts, namespace=case.get("namespace"))


def _lines(result: policy.ValidationResult) -> list[str]:
    lines = [d.line() for d in result.decisions]
    if result.refusal:
        lines.insert(0, f"REFUSED {result.refusal}")
    return lines


def _respond(
    case: dict[str, Any], obj: dict[str, Any], config: config_module.Config, expected: Any
) -> dict[str, Any]:
    mutated = admit(case, obj, config, mode="mutate")
    ops = patch_of(mutated)
    mutated.pop("patch", None)
    assert ops == (expected or []), "the answer's patch is the core's"
    stored = jsonpatch.apply_patch(copy.deepcopy(obj), ops)
    if mutated["allowed"]:
        assert stored == mutation.mutate(obj, config, namespace=case.get("namespace")).obj
    return {"mutate": mutated, "validate": admit(case, stored, config, mode="validate")}


def _observe(case: dict[str, Any]) -> dict[str, Any]:
    obj, config = _input(case), _config(case)
    namespace = case.get("namespace")
    result = mutation.mutate(obj, config, namespace=namespace)
    observed: dict[str, Any] = {}
    if result.refusal:
        observed["refused"] = result.refusal
    elif result.obj == obj:
        observed["unchanged"] = True
    else:
        observed["patch"] = patch.diff(obj, result.obj)
    observed["warnings"] = list(result.warnings)
    observed["audit"] = dict(result.audit)
    observed["validate_input"] = _lines(_validate(case, obj, config))
    observed["validate_output"] = _lines(_validate(case, result.obj, config))
    observed["respond"] = _respond(case, obj, config, observed.get("patch"))
    return observed


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden_case(path: Path, request: pytest.FixtureRequest) -> None:
    case = _load(path)
    observed = _observe(case)
    if request.config.getoption("--update-golden"):
        case["expect"] = observed
        path.write_text(
            yaml.safe_dump(case, sort_keys=False, width=100, allow_unicode=True), encoding="utf-8"
        )
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


@pytest.mark.parametrize("rule", CLUSTER_RULES)
def test_every_cluster_backed_rule_has_a_golden_denial(rule: str) -> None:
    """Some case with `facts:` is denied at /validate by `rule`, its message in the answer."""
    denials = []
    for path in CASES:
        case = _load(path)
        if "facts" not in case:
            continue
        answer = case["expect"]["respond"]["validate"]
        if not answer["allowed"] and f"[{rule}] " in answer["status"]["message"]:
            denials.append(path.stem)
    assert denials, f"no golden case with facts: is denied by {rule}"
