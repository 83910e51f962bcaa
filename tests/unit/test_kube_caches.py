"""The cluster caches: stores indexed by namespace (a review reads its namespace's entries
only), the plain lookups the core asks for, and a bounded number of live reads per review."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kubernetes_asyncio import client as k8s

from webhook.core.cluster import Lookups, OtherStatefulSet
from webhook.kube import caches


def _sts(namespace: str, name: str, labels: dict[str, str]) -> k8s.V1StatefulSet:
    return k8s.V1StatefulSet(
        metadata=k8s.V1ObjectMeta(namespace=namespace, name=name),
        spec=k8s.V1StatefulSetSpec(
            selector=k8s.V1LabelSelector(match_labels=labels),
            service_name=name,
            template=k8s.V1PodTemplateSpec(metadata=k8s.V1ObjectMeta(labels=labels)),
        ),
    )


@pytest.fixture
async def provider() -> AsyncIterator[caches.ClusterCaches]:
    api = k8s.ApiClient(k8s.Configuration(host="http://127.0.0.1:9"))  # never reached
    made = caches.ClusterCaches(api, timeout=1.0)
    yield made
    await api.close()


async def test_watch_events_keep_the_store_indexed_by_namespace(
    provider: caches.ClusterCaches,
) -> None:
    store = provider.statefulsets
    store._apply({"type": "ADDED", "object": _sts("a", "one", {"app": "one"})})
    store._apply({"type": "ADDED", "object": _sts("b", "two", {"app": "two"})})
    store._apply({"type": "MODIFIED", "object": _sts("a", "one", {"app": "uno"})})
    assert store.in_namespace("a") == {
        "one": OtherStatefulSet("one", {"app": "uno"}, {"app": "uno"})
    }
    assert list(store.in_namespace("b")) == ["two"]
    store._apply({"type": "DELETED", "object": _sts("b", "two", {"app": "two"})})
    assert store.in_namespace("b") == {} and "b" not in store.store
    assert store.get("a", "one") is not None and store.get("b", "two") is None


async def test_facts_answer_the_lookups_from_the_caches_of_that_namespace_only(
    provider: caches.ClusterCaches,
) -> None:
    for namespace in ("fns", "elsewhere"):
        provider.statefulsets.put(namespace, f"sts-{namespace}", OtherStatefulSet("x", {}, {}))
    provider.secret_meta[""].put("fns", "db", "3")
    provider.secret_keys[("fns", "db")] = ("3", frozenset({"password"}))
    provider.service_accounts.put("fns", "runner", True)
    provider.statefulsets.synced.set()
    lookups = Lookups(secrets=("db",), service_accounts=("runner",), statefulsets=True)
    facts = await provider.facts(lookups, namespace="fns", timeout=1.0)
    assert facts.secrets == {"db": frozenset({"password"})}
    assert facts.service_accounts == {"runner": True}
    assert facts.statefulsets is not None and len(facts.statefulsets) == 1
    assert facts.unavailable is None
    # nothing asked, nothing answered (a function Service asks only for the StatefulSets)
    facts = await provider.facts(Lookups(), namespace="fns", timeout=1.0)
    assert facts.statefulsets is None and not facts.secrets and not facts.service_accounts


async def test_one_review_makes_at_most_the_capped_number_of_live_reads() -> None:
    budget = caches.Budget(5.0, reads=2)
    made: list[str] = []

    async def read(name: str) -> Any:
        made.append(name)
        return name

    results = [await budget.read(f"Secret ns/{n}", functools.partial(read, n)) for n in "abc"]
    assert made == ["a", "b"]
    assert results == [(True, "a"), (True, "b"), (False, None)]
    assert budget.failed == "more than 2 cluster reads for one object; not read"
    assert (await budget.read("Secret ns/d", lambda: read("d"))) == (False, None)
    assert made == ["a", "b"]
