"""The pure parts of `audit cluster`: pods against their template, pf-secret token status,
the grants each role needs, and the broker's answer per function, on worker-shaped objects."""

from __future__ import annotations

import json
import shlex
from dataclasses import replace
from typing import Any

from tests import worker
from webhook.audit import broker, cluster, scan
from webhook.core import broker_config, grants
from webhook.core.config import default_config

NOW = 1_800_000_000
NS = "fns"


def _sts(name: str, **kwargs: Any) -> dict[str, Any]:
    return worker.statefulset(k8s_namespace=NS, name=name, **kwargs)


def _pod(sts: dict[str, Any], index: int = 0, **spec: Any) -> dict[str, Any]:
    template = sts["spec"]["template"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{sts['metadata']['name']}-{index}",
            "namespace": NS,
            "labels": dict(template["metadata"]["labels"]),
        },
        "spec": {**json.loads(json.dumps(template["spec"])), **spec},
    }


def test_needs_from_function_details() -> None:
    details = worker.function_details(tenant="t", namespace="n", name="f")
    details["source"]["inputSpecs"]["persistent://t/n/pattern-.*"] = {"isRegexPattern": True}
    details["logTopic"] = "persistent://t/n/log"
    details["retryDetails"] = {"maxMessageRetries": 3, "deadLetterTopic": "persistent://t/n/dlq"}
    need = grants.needs(details)
    assert need.consume == ("persistent://t/n/in",)
    assert need.patterns == ("persistent://t/n/pattern-.*",)
    assert need.produce == ("persistent://t/n/out", "persistent://t/n/log", "persistent://t/n/dlq")
    assert need.subscription == "t/n/f"
    no_dlq = dict(details, retryDetails={"maxMessageRetries": 3})
    assert any("dead-letter" in n for n in grants.needs(no_dlq).notes)
    assert "persistent://t/n/dlq" not in grants.needs(dict(details, retryDetails={})).produce


def test_commands_exactly_what_is_needed_and_quoted() -> None:
    a = grants.needs(worker.function_details(tenant="t", namespace="n", name="a"))
    details = worker.function_details(tenant="t", namespace="n", name="b")
    details["sink"]["topic"] = "persistent://t/n/in"  # b produces what a consumes
    details["source"]["inputSpecs"] = {"persistent://t/n/x;rm -rf /": {}}
    b = grants.needs(details)
    role = "system:serviceaccount:fns:default"
    result = grants.commands(role, [a, b])
    assert result.shared and result.functions == ("t/n/a", "t/n/b")
    parsed = [shlex.split(c) for c in result.commands]
    by_target = {p[3]: p for p in parsed}
    assert by_target["persistent://t/n/in"][-1] == "consume,produce"
    assert by_target["persistent://t/n/out"][-1] == "produce"
    assert by_target["persistent://t/n/x;rm -rf /"][-1] == "consume"  # one quoted argument
    assert by_target["t/n"][:3] == ["pulsar-admin", "namespaces", "grant-permission"]
    assert by_target["t/n"][-1] == "functions"
    assert all(p[p.index("--role") + 1] == role for p in parsed)
    assert len(parsed) == 4


def test_commands_leave_out_targets_read_as_options() -> None:
    details = worker.function_details(tenant="t", namespace="n", name="f")
    details["source"]["inputSpecs"] = {"--role=admin": {}, "-p": {"isRegexPattern": True}}
    details["sink"]["topic"] = "-h"
    result = grants.commands("r", [grants.needs(details)])
    targets = [shlex.split(c)[3] for c in result.commands]
    assert targets == ["t/n"]
    assert any("2 topic name(s)" in n for n in result.notes)


def test_no_commands_for_a_role_with_control_characters() -> None:
    need = grants.needs(worker.function_details(tenant="t", namespace="n", name="f"))
    result = grants.commands("alice\nbob", [need])
    assert result.commands == ()
    assert any("control characters" in n for n in result.notes)


def test_grants_text_escapes_function_names() -> None:
    row = cluster.summarize_workload(_sts("fn-e"), default_config())
    details = worker.function_details(tenant="t", namespace="n", name="f\x1b[2J")
    row = replace(row, needs=grants.needs(details))
    report = cluster.cluster_report([row], scanned=1, limit=10, scope="x", with_grants=True)
    text = cluster.render_cluster_text(report, limit=10)
    assert "\x1b" not in text
    assert "t/n/f\\x1b[2J" in text


def test_stored_token_status() -> None:
    def status(**claims: Any) -> str:
        return cluster.stored_token(NS, "pf-secret-x", claims, now=NOW, warn_days=7).status

    assert status(sub="alice") == "never-expires"
    assert status(exp=NOW - 1) == "expired"
    assert status(exp=NOW) == "expired"
    assert status(exp=NOW + 6 * 86400) == "expiring"
    assert status(exp=NOW + 8 * 86400) == "ok"
    token = cluster.stored_token(
        NS, "pf-secret-x", {"sub": "alice", "iss": "me", "aud": "pulsar"}, now=NOW, warn_days=7
    )
    assert token.as_json() == {
        "secret": "pf-secret-x",
        "status": "never-expires",
        "subject": "alice",
        "issuer": "me",
        "audiences": ["pulsar"],
        "expires": None,
        "problem": None,
    }


def test_pods_matched_and_compared_with_template() -> None:
    sts = _sts("fn-a", auth="sa-token", audience="pulsar", expiration=3600)
    other = _sts("fn-b", auth="sa-token", audience="pulsar", expiration=3600)
    rows = [cluster.summarize_workload(o, default_config()) for o in (sts, other)]
    same = _pod(sts)
    assert cluster.match_pod(same, rows) is rows[0]
    edited = _pod(sts, 1, serviceAccountName="intruder")
    pod_row = cluster.summarize_pod(edited, rows[0])
    assert pod_row.role == f"system:serviceaccount:{NS}:intruder"
    assert pod_row.differs == ("service account intruder (template: default)",)
    owned = _pod(other)
    owned["metadata"]["ownerReferences"] = [{"kind": "StatefulSet", "name": rows[1].name}]
    assert cluster.match_pod(owned, rows) is rows[1]
    row = replace(rows[0], pods=(cluster.summarize_pod(same, rows[0]), pod_row))
    assert row.pulsar_roles == (
        f"system:serviceaccount:{NS}:default",
        f"system:serviceaccount:{NS}:intruder",
    )


def test_token_secret_function_role_is_the_token_subject() -> None:
    sts = _sts("fn-s", auth="token-secret")
    row = cluster.summarize_workload(sts, default_config())
    assert row.token_secrets == ("pf-secret-z7mxx",)
    stored = cluster.stored_token(
        NS, "pf-secret-z7mxx", {"sub": "alice", "exp": NOW - 5}, now=NOW, warn_days=7
    )
    row = replace(row, stored=(stored,))
    assert row.pulsar_roles == ("alice",)
    report = cluster.cluster_report([row], scanned=1, limit=10, scope="x", with_grants=True)
    assert report["ok"] is False  # an expired stored token is a finding
    assert report["tokenSecrets"]["expired"] == [
        f"{NS}/{sts['metadata']['name']} (pf-secret-z7mxx)"
    ]
    assert report["grants"][0]["role"] == "alice"
    text = cluster.render_cluster_text(report, limit=10)
    assert "pf-secret-z7mxx: expired" in text and "subject alice" in text


def test_broker_answer_per_function() -> None:
    settings = broker_config.parse(
        "openIDAllowedTokenIssuers=https://k8s\nopenIDAllowedAudiences=pulsar\n", "broker.conf"
    )
    api = broker.ApiServer(host="https://api", issuer="https://k8s")
    rows = {
        name: cluster.summarize_workload(_sts(name, **kw), default_config())
        for name, kw in {
            "good": {"auth": "sa-token", "audience": "pulsar", "expiration": 3600},
            "vault": {"auth": "sa-token", "audience": "vault", "expiration": 3600},
            "none": {},
        }.items()
    }
    answers = {
        name: scan.broker_answer(row, settings, api, ["ES256"], now=NOW)
        for name, row in rows.items()
    }
    assert answers["good"]["accepted"] and answers["good"]["role"] == rows["good"].role
    assert answers["vault"]["code"] == "INVALID_JWT_CLAIM"
    assert answers["none"]["code"] == "ERROR_DECODING_JWT"
    hs = scan.broker_answer(rows["good"], settings, api, ["HS256"], now=NOW)
    assert hs["code"] == "UNSUPPORTED_ALGORITHM"
