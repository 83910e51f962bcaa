"""Profile one review kind with cProfile: distinct typical worker reviews, the example config.

    .venv/bin/python benchmarks/profile_review.py [--mode mutate] [--reviews 300] [--top 25]
    .venv/bin/python benchmarks/profile_review.py --stages [--reviews 1000]
Prints the top entries by cumulative and by own time; divide the call counts by --reviews for
the per-review figures (how many times a function runs for one review). `--stages` instead
times each stage of the path on its own (this thread's CPU time, median over the distinct
reviews, no profiler overhead): where the time of one review goes.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

from webhook.core import analysis, bounded, command, mutation, patch, review, workload
from webhook.core import config as config_module
from webhook.server import handlers, wire


def stages(bodies: list[bytes], config: config_module.Config) -> None:
    """Median CPU time of each stage of a /mutate review, every review distinct."""
    docs = [wire.load_json(body) for body in bodies]
    parsed = [handlers.parse_body(body, config) for body in bodies]
    results = [mutation.mutate_subject(p.subject, config, namespace=p.namespace) for p in parsed]
    limits = config.limits

    def script(p: review.Review) -> str:
        subject = p.subject
        assert subject.analysis is not None
        index = subject.analysis.container_index
        return str(subject.obj["spec"]["template"]["spec"]["containers"][index]["command"][-1])

    rows: list[tuple[str, Callable[[int], Any]]] = [
        ("handlers.parse_body (all of it)", lambda i: handlers.parse_body(bodies[i], config)),
        ("  wire.load_json", lambda i: wire.load_json(bodies[i])),
        ("  bounded.problem_in (limits walk)", lambda i: bounded.problem_in(docs[i], limits)),
        ("  analysis.classify (all of it)", lambda i: analysis.classify(parsed[i].subject.obj, limits)),
        ("    command.parse", lambda i: command.parse(script(parsed[i]))),
        ("handlers.answer /mutate (all of it)", lambda i: handlers.answer(parsed[i], "mutate", None)),
        ("  mutation.mutate_subject", lambda i: mutation.mutate_subject(parsed[i].subject, config, namespace=parsed[i].namespace)),
        ("    workload.without_nulls (copy)", lambda i: workload.without_nulls(parsed[i].subject.obj)),
        ("  patch.diff", lambda i: patch.diff(parsed[i].subject.obj, results[i].obj)),
        ("handlers.answer /validate (all of it)", lambda i: handlers.answer(parsed[i], "validate", None)),
    ]  # fmt: skip
    print(f"{len(bodies)} distinct typical worker reviews; CPU time per review, median and p99")
    timings: list[list[int]] = [[] for _ in rows]
    for index in range(len(bodies)):  # one review's stages back to back, as a request runs them
        for times, (_, run) in zip(timings, rows, strict=True):
            started = time.thread_time_ns()
            run(index)
            times.append(time.thread_time_ns() - started)
    for times, (name, _) in zip(timings, rows, strict=True):
        times.sort()
        median = statistics.median(times) / 1000
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))] / 1000
        print(f"{name:40s} {median:8.1f} us  {p99:8.1f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("mutate", "validate"), default="mutate")
    parser.add_argument("--reviews", type=int, default=300)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--stages", action="store_true", help="time each stage instead")
    args = parser.parse_args()
    config = config_module.loads(common.EXAMPLE_CONFIG.read_text())
    bodies = [
        json.dumps(
            common.admission_review(
                common.typical_worker(i), uid=f"profile-{i}", namespace="pulsar-functions"
            ),
            separators=(",", ":"),
        ).encode()
        for i in range(args.reviews)
    ]
    if args.stages:
        stages(bodies, config)
        return
    mode: review.Mode = args.mode
    profile = cProfile.Profile()
    profile.enable()
    for body in bodies:
        common.review_body(body, config, mode)
    profile.disable()
    print(f"{args.reviews} distinct /{mode} reviews of a typical worker StatefulSet")
    stats = pstats.Stats(profile, stream=sys.stdout).strip_dirs()
    stats.sort_stats("cumulative").print_stats(args.top)
    stats.sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
