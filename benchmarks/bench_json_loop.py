"""Do orjson and uvloop pay? Each measured on its own (the server reads and writes JSON with
orjson since this was measured; uvloop is not used: see README "Benchmarks").

1. JSON, in process, on distinct typical worker reviews: parse the request body (the stdlib
   reader `wire.load_json` falls back to, `wire.load_json` itself: orjson behind its guard for
   long digit runs, and orjson alone) and write the answer and a whole object (stdlib against
   orjson), next to the whole in-process review for scale.
2. Over HTTPS with wrk (c=16, alternating runs): the no-op webhook with json/asyncio,
   orjson/asyncio, json/uvloop and orjson/uvloop; `pf-webhook serve` on asyncio and on
   uvloop (installed as the loop policy before serve starts: no code change).

    make bench-json      # installs uvloop into .venv, then runs this
Nothing here is asserted by the test suite.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_serve
import common

from webhook.core import config as config_module
from webhook.server import wire


def _time(fn: Callable[[Any], object], items: list[Any]) -> tuple[float, float]:
    for item in items[:50]:
        fn(item)
    samples = []
    for item in items:
        start = time.perf_counter_ns()
        fn(item)
        samples.append((time.perf_counter_ns() - start) / 1e9)
    return statistics.median(samples), common.percentile(samples, 99)


def stdlib_dumps(doc: Any) -> str:
    return json.dumps(doc, separators=(",", ":"))


def json_rows(rounds: int) -> list[dict[str, str]]:
    import orjson

    config = config_module.loads(common.EXAMPLE_CONFIG.read_text())
    bodies = [
        json.dumps(
            common.admission_review(
                common.typical_worker(i), uid=f"j-{i}", namespace="pulsar-functions"
            ),
            separators=(",", ":"),
        ).encode()
        for i in range(rounds)
    ]
    answers = [json.loads(common.review_body(b, config, "mutate")) for b in bodies]
    objects = [json.loads(b)["request"]["object"] for b in bodies]
    # the two libraries must agree on what they read and write, or the comparison means nothing
    assert all(wire._load_json_stdlib(b) == wire.load_json(b) for b in bodies[:100])
    assert all(json.loads(stdlib_dumps(a)) == json.loads(wire.dumps(a)) for a in answers[:100])

    def whole(body: bytes) -> None:
        common.review_body(body, config, "mutate")

    cases: list[tuple[str, Callable[[Any], object], list[Any]]] = [
        ("whole /mutate review (for scale)", whole, bodies),
        ("parse request: stdlib json.loads (as before)", wire._load_json_stdlib, bodies),
        ("parse request: wire.load_json (orjson + guard)", wire.load_json, bodies),
        ("parse request: orjson.loads alone", orjson.loads, bodies),
        ("write answer: stdlib json.dumps compact", stdlib_dumps, answers),
        ("write answer: wire.dumps (orjson)", wire.dumps, answers),
        ("write object: stdlib json.dumps compact", stdlib_dumps, objects),
        ("write object: orjson.dumps", orjson.dumps, objects),
    ]
    out = []
    for name, fn, items in cases:
        median, p99 = _time(fn, items)
        common.info(f"  {name}: {common.fmt_seconds(median)}")
        out.append(
            {
                "section": "JSON in process",
                "case": name,
                "rate": f"{1 / median:.0f}",
                "p50": common.fmt_seconds(median),
                "p99": common.fmt_seconds(p99),
                "notes": f"{len(items)} distinct, body {sum(map(len, bodies)) // len(bodies)} B",
            }
        )
    return out


def loop_rows(seconds: float, repeats: int, connections: int) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    with ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="pf-webhook-bench-json-"))
        stack.callback(shutil.rmtree, workdir, True)
        bodies = workdir / "bodies.jsonl"
        common.write_bodies(bodies, 10_000)
        cert_dir = common.make_certs(workdir / "certs")
        servers = [
            common.start_noop(
                stack, workdir, cert_dir, extra=["--json", "json"], label="no-op json/asyncio"
            ),
            common.start_noop(
                stack, workdir, cert_dir, extra=["--json", "orjson"], label="no-op orjson/asyncio"
            ),
            common.start_noop(
                stack,
                workdir,
                cert_dir,
                extra=["--json", "json", "--loop", "uvloop"],
                label="no-op json/uvloop",
            ),
            common.start_noop(
                stack,
                workdir,
                cert_dir,
                extra=["--json", "orjson", "--loop", "uvloop"],
                label="no-op orjson/uvloop",
            ),
            common.start_serve(stack, workdir, cert_dir, label="serve asyncio")[0],
            common.start_serve(stack, workdir, cert_dir, uvloop=True, label="serve uvloop")[0],
        ]
        offset = 0
        for server in servers:  # warm-up
            bench_serve.wrk(server.url + "/mutate", connections=4, seconds=1, bodies=bodies)
        runs: dict[str, list[bench_serve.WrkResult]] = {s.label: [] for s in servers}
        for _ in range(repeats):
            for server in servers:
                result = bench_serve.wrk(
                    server.url + "/mutate",
                    connections=connections,
                    seconds=seconds,
                    bodies=bodies,
                    offset=offset,
                )
                offset += result.requests
                runs[server.label].append(result)
                common.info(f"  {server.label}: {result.rate:.0f}/s")
        for label, results in runs.items():
            rows.append(bench_serve.row("HTTPS wrk, loop/JSON", label, connections, results, ""))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    try:
        import orjson  # noqa: F401
        import uvloop  # noqa: F401
    except ImportError as exc:
        raise SystemExit(f"{exc.name} is not installed: run `make bench-json`") from None
    rows = json_rows(args.rounds)
    rows += loop_rows(args.seconds, args.repeats, args.connections)
    print(common.table(rows))


if __name__ == "__main__":
    main()
