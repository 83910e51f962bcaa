"""Benchmark: `pf-webhook serve` against the no-op aiohttp webhook over HTTPS, load from wrk.

Keep-alive connections (as the API server keeps them), every request another function's
AdmissionReview to /mutate. For each connection count the two servers are loaded alternately
(a, b, a, b, ...) so both see the same machine; the table gives throughput, wrk's p50/p99, the
ratio (a)/(b), and the p99 estimated from our own /metrics histogram.

    .venv/bin/python benchmarks/bench_serve.py [--seconds 10] [--repeats 2] [--connections 1,16,64]
    .venv/bin/python benchmarks/bench_serve.py --soak 180     # the bounded soak
Nothing here is asserted by the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

LUA = common.HERE / "post_reviews.lua"
METRIC = "pf_webhook_request_duration_seconds"
WRK_HINT = "wrk is not installed: on Debian/Ubuntu run `sudo apt-get install -y wrk`"


@dataclass
class WrkResult:
    requests: int
    seconds: float
    p50: float
    p99: float
    mean: float
    errors: dict[str, int]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def require_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit(WRK_HINT)
    return wrk


def wrk(
    url: str,
    *,
    connections: int,
    seconds: float,
    bodies: Path,
    offset: int = 0,
    delay_ms: int = 0,
) -> WrkResult:
    """One wrk run (one thread: the other core is the server's); raises if wrk fails."""
    argv = [
        require_wrk(),
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        url,
    ]
    env = {
        "BENCH_BODIES": str(bodies),
        "BENCH_OFFSET": str(offset),
        "BENCH_DELAY_MS": str(delay_ms),
    }
    proc = subprocess.run(
        argv, capture_output=True, text=True, env={**os.environ, **env}, check=False
    )
    found = [line for line in proc.stdout.splitlines() if line.startswith("WRK_RESULT ")]
    if proc.returncode != 0 or not found:
        raise SystemExit(f"wrk failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    doc: dict[str, Any] = json.loads(found[-1].split(" ", 1)[1])
    return WrkResult(
        requests=doc["requests"],
        seconds=doc["duration_us"] / 1e6,
        p50=doc["p50_us"] / 1e6,
        p99=doc["p99_us"] / 1e6,
        mean=doc["mean_us"] / 1e6,
        errors={k: doc[k] for k in ("connect", "read", "write", "status", "timeout") if doc[k]},
    )


def server_histogram(metrics_port: int) -> tuple[dict[float, float], float, float]:
    return common.histogram(common.scrape(metrics_port), METRIC, endpoint="mutate")


def row(
    section: str, case: str, conns: int | str, runs: list[WrkResult], note: str
) -> dict[str, str]:
    rates = [r.rate for r in runs]
    spread = f" ({min(rates):.0f}-{max(rates):.0f})" if len(rates) > 1 else ""
    errors = sum(sum(r.errors.values()) for r in runs)
    return {
        "section": section,
        "case": case,
        "conns": str(conns),
        "rate": f"{statistics.median(rates):.0f}{spread}",
        "p50": common.fmt_seconds(statistics.median(r.p50 for r in runs)),
        "p99": common.fmt_seconds(statistics.median(r.p99 for r in runs)),
        "notes": "; ".join(x for x in (note, f"{errors} errors" if errors else "") if x),
    }


def compare(
    *, seconds: float, repeats: int, connections: list[int], count: int
) -> list[dict[str, str]]:
    """The serve-vs-floor rows of the table."""
    require_wrk()
    rows: list[dict[str, str]] = []
    with ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="pf-webhook-bench-"))
        stack.callback(shutil.rmtree, workdir, True)
        bodies = workdir / "bodies.jsonl"
        size = common.write_bodies(bodies, count)
        cert_dir = common.make_certs(workdir / "certs")
        serve, metrics_port = common.start_serve(stack, workdir, cert_dir)
        noop = common.start_noop(stack, workdir, cert_dir)
        common.info(f"bodies: {count} distinct /mutate reviews, {size} bytes on average")
        # warm both (imports, first TLS handshakes, the allocator), not measured
        offset = 0
        for server in (serve, noop):
            wrk(server.url + "/mutate", connections=4, seconds=2, bodies=bodies, offset=offset)
            offset += 3000
        for conns in connections:
            runs: dict[str, list[WrkResult]] = {"a": [], "b": []}
            server_p50: list[float] = []
            server_p99: list[float] = []
            for rep in range(repeats):
                for key, server in (("a", serve), ("b", noop)):
                    before = server_histogram(metrics_port) if key == "a" else None
                    result = wrk(
                        server.url + "/mutate",
                        connections=conns,
                        seconds=seconds,
                        bodies=bodies,
                        offset=offset,
                    )
                    offset += result.requests
                    runs[key].append(result)
                    if before is not None:
                        buckets, _, _ = common.minus(server_histogram(metrics_port), before)
                        p50, p99 = common.quantile(0.5, buckets), common.quantile(0.99, buckets)
                        if p50 is not None and p99 is not None:
                            server_p50.append(p50)
                            server_p99.append(p99)
                    common.info(
                        f"  c={conns} rep {rep + 1} ({key}) {server.label}: {result.rate:.0f}/s "
                        f"p50 {common.fmt_seconds(result.p50)} p99 {common.fmt_seconds(result.p99)}"
                        + (f" errors {result.errors}" if result.errors else "")
                    )
            ratio = statistics.median(r.rate for r in runs["a"]) / max(
                1e-9, statistics.median(r.rate for r in runs["b"])
            )
            server_note = (
                f"serve's /metrics p50 ≈ {common.fmt_seconds(statistics.median(server_p50))}, "
                f"p99 ≈ {common.fmt_seconds(statistics.median(server_p99))}"
                if server_p99
                else ""
            )
            rows.append(
                row("HTTPS wrk", "(a) pf-webhook serve /mutate", conns, runs["a"], server_note)
            )
            rows.append(
                row("HTTPS wrk", "(b) no-op aiohttp TLS webhook /mutate", conns, runs["b"], "")
            )
            rows.append(
                {
                    "section": "HTTPS wrk",
                    "case": "ratio (a)/(b) throughput",
                    "conns": str(conns),
                    "rate": f"{ratio:.2f}",
                    "p50": "",
                    "p99": "",
                    "notes": f"median of {repeats} alternating runs of {seconds:g}s each",
                }
            )
    return rows


def _rss_sampler(
    server: common.Server, every: float, out: list[tuple[float, int]]
) -> threading.Event:
    stop = threading.Event()
    start = time.monotonic()

    def loop() -> None:
        while not stop.is_set():
            try:
                out.append((time.monotonic() - start, server.rss_bytes()))
            except OSError:
                return
            stop.wait(every)

    threading.Thread(target=loop, daemon=True).start()
    return stop


def _slope_mb_per_min(samples: list[tuple[float, int]]) -> float:
    if len(samples) < 2:
        return 0.0
    xs = [t for t, _ in samples]
    ys = [r / 2**20 for _, r in samples]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return 60 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


def soak(*, seconds: float, connections: int, count: int, pace_ms: int) -> int:
    """A bounded soak of `pf-webhook serve`; prints its report, returns the exit status."""
    require_wrk()
    with ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="pf-webhook-soak-"))
        stack.callback(shutil.rmtree, workdir, True)
        bodies = workdir / "bodies.jsonl"
        common.write_bodies(bodies, count)
        cert_dir = common.make_certs(workdir / "certs")
        serve, metrics_port = common.start_serve(stack, workdir, cert_dir)
        wrk(serve.url + "/mutate", connections=4, seconds=2, bodies=bodies)  # warm-up
        before_text = common.scrape(metrics_port)
        before = common.histogram(before_text, METRIC, endpoint="mutate")
        samples: list[tuple[float, int]] = []
        stop = _rss_sampler(serve, 5.0, samples)
        common.info(
            f"soak: {seconds:g}s of wrk -c{connections} (pause {pace_ms} ms) against pf-webhook serve ..."
        )
        try:
            result = wrk(
                serve.url + "/mutate",
                connections=connections,
                seconds=seconds,
                bodies=bodies,
                offset=5000,
                delay_ms=pace_ms,
            )
        finally:
            stop.set()
        after_text = common.scrape(metrics_port)
        buckets, total, observed = common.minus(
            common.histogram(after_text, METRIC, endpoint="mutate"), before
        )
        server_errors = _errors(after_text) - _errors(before_text)
        alive = serve.proc.poll() is None
    warm = [s for s in samples if s[0] >= min(60.0, seconds / 4)]
    mb = [r / 2**20 for _, r in warm] or [0.0]
    paced = f", each connection pausing {pace_ms} ms between requests" if pace_ms else ", unpaced"
    print(
        f"## Soak: {seconds:g}s, wrk -t1 -c{connections}{paced}, every request another function\n"
    )
    print("| measure | load generator (wrk) | server (/metrics histogram) |")
    print("|---|---|---|")
    print(f"| requests | {result.requests} | {observed:.0f} |")
    print(f"| throughput | {result.rate:.0f}/s | {observed / result.seconds:.0f}/s |")
    print(
        f"| mean | {common.fmt_seconds(result.mean)} | {common.fmt_seconds(total / observed if observed else None)} |"
    )
    print(
        f"| p50 | {common.fmt_seconds(result.p50)} | {common.fmt_seconds(common.quantile(0.5, buckets))} (bucket estimate) |"
    )
    print(
        f"| p99 | {common.fmt_seconds(result.p99)} | {common.fmt_seconds(common.quantile(0.99, buckets))} (bucket estimate) |"
    )
    print(
        f"| errors | {result.errors or 0} | {server_errors:.0f} (pf_webhook_errors + error decisions) |"
    )
    print()
    print(
        f"RSS after warm-up ({len(warm)} samples every 5 s from t={warm[0][0] if warm else 0:.0f}s): "
        f"first {mb[0]:.1f} MiB, min {min(mb):.1f}, max {max(mb):.1f}, last {mb[-1]:.1f}, "
        f"slope {_slope_mb_per_min(warm):+.2f} MiB/min"
    )
    print("RSS series (s: MiB): " + ", ".join(f"{t:.0f}: {r / 2**20:.1f}" for t, r in samples))
    server_mean = total / observed if observed else 0.0
    print(
        f"Agreement: the histogram's mean is {server_mean / max(result.mean, 1e-9):.0%} of wrk's "
        f"(wrk {common.fmt_seconds(result.mean)}, server {common.fmt_seconds(server_mean)}; "
        f"difference {common.fmt_seconds(max(0.0, result.mean - server_mean))} per request). The "
        "histogram times each request from the moment aiohttp hands it to the app (headers in) "
        "until its answer is written; wrk also counts the time the request waits in the "
        "kernel's socket buffer until the server's event loop reads it, TLS decryption of its "
        "headers, and the answer's way back. "
        + (
            "Paced at about half the server's capacity, what is left is that way in and out "
            "(with wrk's own thread on the same 2 cores) and the short queues that form when "
            "requests of several connections arrive together."
            if pace_ms
            else f"Unpaced, wrk keeps {connections} requests in flight, so at saturation its "
            f"mean is about connections / throughput = "
            f"{common.fmt_seconds(connections / max(result.rate, 1e-9))}: the queue in front "
            "of the event loop, which no in-process histogram sees."
        )
    )
    counts_agree = abs(observed - result.requests) <= connections  # in flight when wrk stopped
    print(
        f"request counts {'agree' if counts_agree else 'DISAGREE'}: wrk {result.requests}, "
        f"histogram {observed:.0f} (up to {connections} still in flight when wrk stopped)"
    )
    ok = alive and not result.errors and server_errors == 0 and counts_agree
    print("soak " + ("passed: no errors" if ok else "FAILED: see above"))
    return 0 if ok else 1


def _errors(text: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith("pf_webhook_errors_total{") or (
            line.startswith("pf_webhook_decisions_total{") and 'decision="error"' in line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of one wrk run")
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs per server")
    parser.add_argument("--connections", default="1,16,64")
    parser.add_argument("--bodies", type=int, default=10_000, help="distinct reviews to cycle")
    parser.add_argument("--soak", type=float, metavar="SECONDS", help="run the soak instead")
    parser.add_argument("--soak-connections", type=int, default=16)
    parser.add_argument(
        "--soak-pause-ms",
        type=int,
        default=40,
        help="each connection's pause between requests (0: unpaced, the server saturated)",
    )
    args = parser.parse_args()
    if args.soak:
        raise SystemExit(
            soak(
                seconds=args.soak,
                connections=args.soak_connections,
                count=args.bodies,
                pace_ms=args.soak_pause_ms,
            )
        )
    rows = compare(
        seconds=args.seconds,
        repeats=args.repeats,
        connections=[int(c) for c in args.connections.split(",")],
        count=args.bodies,
    )
    print(common.table(rows))


if __name__ == "__main__":
    main()
