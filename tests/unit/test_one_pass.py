"""One pass per request: one /mutate and one /validate review of a worker StatefulSet, through
the server with the real cluster-caches provider, detect the workload once, analyse it once and
tokenise its command line once.

The counts come from spies: pass-through wrappers that count calls and return what the real
function returns (nothing is replaced; the answers are the real ones and are checked too).
"""

from __future__ import annotations

import base64
import collections
import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
from kubernetes_asyncio import client as k8s

from tests.reviews import admission_review
from tests.unit import test_golden as golden
from tests.unit.test_server import ClientFactory, post_review, state_with
from tests.worker import statefulset
from webhook.core import analysis, command, config, mutation, policy, workload
from webhook.kube import caches
from webhook.server import handlers

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "functions_worker.yml"
NAMESPACE = "pulsar-functions"
SECRETS = {"db-creds": {"password"}, "api": {"token"}, "broker-ca": {"ca.crt"}}


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[collections.Counter[str]]:
    counted: collections.Counter[str] = collections.Counter()

    def spy(module: Any, name: str, label: str) -> None:
        real: Callable[..., Any] = getattr(module, name)

        def counting(*args: Any, **kwargs: Any) -> Any:
            counted[label] += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, counting)

    spy(workload, "is_function_workload", "detected")
    spy(analysis, "analyse", "analysed")
    spy(command, "parse", "tokenised")
    yield counted


def _worker() -> dict[str, Any]:
    return statefulset(
        tenant="acme",
        name="orders",
        secrets={
            "DB_PASSWORD": {"path": "db-creds", "key": "password"},
            "API_KEY": {"path": "api", "key": "token"},
        },
        auth="sa-token",
        ca_secret="broker-ca",
        audience="pulsar",
        expiration=3600,
        custom_runtime_options={"nodeSelectorLabels": {"disktype": "ssd"}},
    )


def _provider(api: k8s.ApiClient) -> caches.ClusterCaches:
    """The real provider with its caches as after the first lists: every lookup is a hit."""
    provider = caches.ClusterCaches(api, timeout=1.0)
    for name, keys in SECRETS.items():
        provider.secret_meta[""].put(NAMESPACE, name, "7")
        provider.secret_keys[(NAMESPACE, name)] = ("7", frozenset(keys))
    reflectors: list[Any] = [*provider.secret_meta.values(), provider.statefulsets]
    for reflector in reflectors:
        reflector.synced.set()
    provider.service_accounts.synced.set()
    return provider


async def test_one_review_detects_analyses_and_tokenises_once(
    aiohttp_client: ClientFactory, calls: collections.Counter[str]
) -> None:
    cfg = config.loads(EXAMPLE.read_text())
    api = k8s.ApiClient(k8s.Configuration(host="http://127.0.0.1:9"))  # never asked
    provider = _provider(api)
    try:
        client = await aiohttp_client(handlers.create_app(state_with(provider, config=cfg)))
        obj = _worker()
        mutated = await post_review(client, "/mutate", admission_review(obj, namespace=NAMESPACE))
        assert dict(calls) == {"detected": 1, "analysed": 1, "tokenised": 1}
        ops = json.loads(base64.b64decode(mutated["response"]["patch"]))
        stored = jsonpatch.apply_patch(copy.deepcopy(obj), ops)
        # the ServiceAccount the mutation named (serviceAccountName template) exists
        account = stored["spec"]["template"]["spec"]["serviceAccountName"]
        assert account.startswith("pf-acme-default-orders")
        provider.service_accounts.put(NAMESPACE, account, True)

        calls.clear()
        validated = await post_review(
            client, "/validate", admission_review(stored, namespace=NAMESPACE)
        )
        assert dict(calls) == {"detected": 1, "analysed": 1, "tokenised": 1}
    finally:
        await api.close()
    # the provider answered from its caches: every cluster-backed rule could check
    response = validated["response"]
    assert response["allowed"] is True, response
    assert not [w for w in response.get("warnings", []) if "could not check" in w]


@pytest.mark.parametrize("path", golden.CASES, ids=lambda p: p.stem)
def test_the_validation_reads_the_object_without_changing_it(path: Path) -> None:
    """The validation only reads the review's object: it must never write into it, neither
    as sent nor after our mutation."""
    case = golden._load(path)
    cfg = golden._config(case)
    sent = golden._input(case)
    for obj in (sent, mutation.mutate(copy.deepcopy(sent), cfg).obj):
        before = copy.deepcopy(obj)
        policy.validate(obj, cfg)
        assert obj == before
