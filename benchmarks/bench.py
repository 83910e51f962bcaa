"""`make bench`: one table for the three views of the webhook's speed.

1. in process, per golden fixture: one review, body to answer (bench_core.py);
2. over HTTPS with keep-alive, load from wrk: `pf-webhook serve` (a) against the no-op
   aiohttp TLS webhook (b), alternately, at 1, 16 and 64 connections (bench_serve.py);
3. through the real API server: its own admission-webhook histograms for our two webhooks
   while N function StatefulSets are created (bench_apiserver.py).

Every request is distinct. Progress goes to stderr, the table to stdout. Nothing here is
asserted by the test suite.

    make bench                      # everything
    .venv/bin/python benchmarks/bench.py --only serve --seconds 5
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_core
import bench_serve
import common


def _machine() -> str:
    load = os.getloadavg()
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; python {platform.python_version()}; "
        f"{os.cpu_count()} cores {model}; load average {load[0]:.1f} at start"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("core", "serve", "apiserver"), action="append")
    parser.add_argument("--rounds", type=int, default=2000, help="in process: reviews per row")
    parser.add_argument("--seconds", type=float, default=10.0, help="wrk: seconds per run")
    parser.add_argument("--repeats", type=int, default=2, help="wrk: alternating runs each")
    parser.add_argument("--connections", default="1,16,64")
    parser.add_argument("--bodies", type=int, default=10_000, help="wrk: distinct reviews")
    parser.add_argument("--functions", type=int, default=300, help="API server: StatefulSets")
    parser.add_argument("--clients", default="1,8", help="API server: parallel clients")
    args = parser.parse_args()
    parts = args.only or ["core", "serve", "apiserver"]
    if "serve" in parts:
        bench_serve.require_wrk()  # fail before minutes of other work
    header = _machine()
    rows: list[dict[str, str]] = []
    if "core" in parts:
        common.info("in process, per golden fixture ...")
        rows += bench_core.rows(args.rounds, ("mutate", "validate"))
    if "serve" in parts:
        common.info("over HTTPS, wrk against (a) pf-webhook serve and (b) the no-op webhook ...")
        rows += bench_serve.compare(
            seconds=args.seconds,
            repeats=args.repeats,
            connections=[int(c) for c in args.connections.split(",")],
            count=args.bodies,
        )
    if "apiserver" in parts:
        import bench_apiserver  # needs the control plane's module path

        rows += bench_apiserver.rows(args.functions, [int(c) for c in args.clients.split(",")])
    print(f"pf-webhook benchmarks: {header}, {os.getloadavg()[0]:.1f} at the end")
    print(common.table(rows))


if __name__ == "__main__":
    main()
