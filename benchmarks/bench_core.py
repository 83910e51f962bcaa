"""Benchmark: in-process cost of the pure core on a typical worker StatefulSet.

Run: `make bench` (or `.venv/bin/python benchmarks/bench_core.py [--rounds N]`).
Reports median and p99 per operation; nothing here is asserted by the test suite.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import worker
from webhook import config, mutation, policy, review

CONFIG = config.loads(
    (Path(__file__).resolve().parents[1] / "examples" / "functions_worker.yml").read_text()
)


def typical() -> dict:
    return worker.statefulset(
        k8s_namespace="pulsar-functions",
        secrets={
            "DB_PASSWORD": {"path": "db-creds", "key": "password"},
            "API_KEY": {"path": "api", "key": "token"},
        },
        auth="sa-token",
        ca_secret="broker-ca",
        audience="pulsar",
        expiration=3600,
        custom_runtime_options={
            "extraLabels": {"team": "data"},
            "nodeSelectorLabels": {"disktype": "ssd"},
        },
    )


def measure(fn: Callable[[], object], rounds: int) -> tuple[float, float]:
    for _ in range(min(200, rounds)):
        fn()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - start) / 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5000)
    args = parser.parse_args()
    sts = typical()
    mutated = mutation.mutate(sts, CONFIG, namespace="pulsar-functions").obj
    body = json.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "bench",
                "operation": "CREATE",
                "namespace": "pulsar-functions",
                "kind": {"group": "apps", "version": "v1", "kind": "StatefulSet"},
                "object": sts,
            },
        }
    ).encode()

    def mutate_and_validate() -> None:
        out = mutation.mutate(sts, CONFIG, namespace="pulsar-functions").obj
        policy.validate(out, CONFIG, namespace="pulsar-functions")

    cases = {
        "mutate (worker StatefulSet, all features)": lambda: mutation.mutate(
            sts, CONFIG, namespace="pulsar-functions"
        ),
        "validate (mutated StatefulSet)": lambda: policy.validate(
            mutated, CONFIG, namespace="pulsar-functions"
        ),
        "mutate + validate": mutate_and_validate,
        "/mutate review: parse + respond (incl. JSONPatch, base64)": lambda: review.respond(
            review.parse(body), CONFIG, mode="mutate"
        ),
    }
    print(f"python {sys.version.split()[0]}, {args.rounds} rounds each, microseconds")
    print("| operation | median µs | p99 µs |")
    print("|---|---|---|")
    for name, fn in cases.items():
        median, p99 = measure(fn, args.rounds)
        print(f"| {name} | {median:.0f} | {p99:.0f} |")


if __name__ == "__main__":
    main()
