"""Benchmark: in-process cost of one review, per golden fixture (tests/golden/*.yaml).

The path production takes for a request body, through the server's own functions
(`common.review_body`): the body read once (`handlers.parse_body`: strict JSON with orjson,
the envelope, the object detected and analysed) and answered (`handlers.answer`:
`review.respond`, with its JSONPatch in base64, as compact JSON text); no network, no cluster lookups (facts=None, as `serve` without a
cluster). The object and config come from the golden harness; every
iteration's review is distinct (tenant, namespace or name changed, same lengths), so no cache
can answer it; a fixture whose varied copies are decided differently from the fixture itself
is flagged.

    .venv/bin/python benchmarks/bench_core.py [--rounds 2000] [--mode mutate|validate|both]
Nothing here is asserted by the test suite.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

from tests.unit import test_golden as golden
from webhook.core import review

Variant = Callable[[int], dict[str, Any]]


def _variants(case: dict[str, Any]) -> Variant:
    """index -> the fixture's object with its tenant/namespace (or name) made distinct."""
    if "worker" in case:
        kwargs = dict(case["worker"])
        tenant, namespace = kwargs.get("tenant", "public"), kwargs.get("namespace", "default")

        def from_worker(index: int) -> dict[str, Any]:
            from tests import worker

            return worker.statefulset(
                **{
                    **kwargs,
                    "tenant": common.tag(tenant, index),
                    "namespace": common.tag(namespace, index),
                }
            )

        return from_worker
    base = copy.deepcopy(case["input"])
    metadata = base.get("metadata") or {}
    labels = metadata.get("labels") or {}
    # words to replace everywhere (labels, names, the command line), longest first
    words = [labels[k] for k in ("tenant", "namespace") if isinstance(labels.get(k), str)]
    if not words and isinstance(metadata.get("name"), str):
        words = [metadata["name"]]
    text = json.dumps(base)
    words = sorted({w for w in words if w}, key=len, reverse=True)

    def from_input(index: int) -> dict[str, Any]:
        varied = text
        for word in words:
            varied = varied.replace(word, common.tag(word, index))
        result: dict[str, Any] = json.loads(varied)
        return result

    return from_input


def _decision(body: bytes, config: Any, mode: review.Mode) -> str:
    answer = json.loads(common.review_body(body, config, mode))["response"]
    return "patched" if "patch" in answer else "allowed" if answer["allowed"] else "denied"


def measure(path: Path, mode: review.Mode, rounds: int) -> tuple[float, float, float, int, bool]:
    """(median s, p99 s, median CPU s, mean body bytes, same decision as the fixture itself).

    The CPU time (this thread's) is what the review costs when the machine is shared: wall
    time also counts the time other processes held the core."""
    case = golden._load(path)
    config = golden._config(case)
    variant = _variants(case)
    namespace = case.get("namespace")

    def body(index: int, obj: dict[str, Any]) -> bytes:
        ns = namespace or (obj.get("metadata") or {}).get("namespace")
        doc = common.admission_review(obj, uid=f"core-{index:08d}", namespace=ns)
        return json.dumps(doc, separators=(",", ":")).encode()

    warm = min(100, rounds)
    bodies = [body(i, variant(i + 1)) for i in range(rounds + warm)]
    reference = _decision(body(0, golden._input(case)), config, mode)
    same = all(_decision(b, config, mode) == reference for b in bodies[:: max(1, rounds // 20)])
    samples, cpu = [], []
    for index, data in enumerate(bodies):
        start, start_cpu = time.perf_counter_ns(), time.thread_time_ns()
        common.review_body(data, config, mode)
        if index >= warm:
            cpu.append((time.thread_time_ns() - start_cpu) / 1e9)
            samples.append((time.perf_counter_ns() - start) / 1e9)
    return (
        statistics.median(samples),
        common.percentile(samples, 99),
        statistics.median(cpu),
        sum(map(len, bodies)) // len(bodies),
        same,
    )


def rows(rounds: int, modes: tuple[review.Mode, ...]) -> list[dict[str, str]]:
    out = []
    for path in golden.CASES:
        for mode in modes:
            median, p99, cpu, size, same = measure(path, mode, rounds)
            common.info(
                f"  {path.stem} /{mode}: median {common.fmt_seconds(median)} p99 {common.fmt_seconds(p99)}"
            )
            notes = [f"CPU median {common.fmt_seconds(cpu)}", f"{size / 1024:.1f} KiB"]
            if not same:
                notes.append("varied copies decided differently from the fixture")
            out.append(
                {
                    "section": "in process",
                    "case": f"{path.stem} /{mode}",
                    "conns": "",
                    "rate": f"{1 / median:.0f}",
                    "p50": common.fmt_seconds(median),
                    "p99": common.fmt_seconds(p99),
                    "notes": ", ".join(notes),
                }
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000, help="distinct reviews per fixture")
    parser.add_argument("--mode", choices=("mutate", "validate", "both"), default="both")
    args = parser.parse_args()
    modes: tuple[review.Mode, ...] = ("mutate", "validate") if args.mode == "both" else (args.mode,)
    print(f"python {sys.version.split()[0]}, {args.rounds} distinct reviews per row")
    print(common.table(rows(args.rounds, modes)))


if __name__ == "__main__":
    main()
