"""Benchmark: /mutate latency over HTTPS against a real `pf-webhook serve` process.

Run: `make bench` (or `.venv/bin/python benchmarks/bench_serve.py [--requests N]`).
Keep-alive is how the API server talks to webhooks; a new TLS handshake per request shows
the worst case. Nothing here is asserted by the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.worker import statefulset
from webhook import certs


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def run(requests: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="pf-webhook-bench-"))
    certs.generate(
        service="pf-webhook",
        namespace="pf-webhook",
        out_dir=tmp / "certs",
        hosts=("localhost",),
        ips=("127.0.0.1",),
    )
    with (tmp / "out").open("wb") as out, (tmp / "err").open("wb") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "webhook",
                "serve",
                "--cert-dir",
                str(tmp / "certs"),
                "--port",
                "0",
                "--metrics-port",
                "0",
                "--host",
                "127.0.0.1",
            ],
            stdout=out,
            stderr=err,
            cwd=Path(__file__).resolve().parents[1],
        )
        try:
            deadline = time.monotonic() + 20
            while not (found := re.search(r"(https://\S+) ", (tmp / "out").read_text())):
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit(f"pf-webhook serve did not start; see {tmp}/err")
                await asyncio.sleep(0.05)
            url = found[1] + "/mutate"
            obj = statefulset(
                secrets={"DB_PASSWORD": {"path": "db-creds", "key": "password"}},
                auth="sa-token",
                ca_secret="broker-ca",
                audience="pulsar",
            )
            review = {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "request": {
                    "uid": "u",
                    "kind": {"group": "apps", "version": "v1", "kind": "StatefulSet"},
                    "namespace": "pulsar-functions",
                    "operation": "CREATE",
                    "object": obj,
                },
            }
            body = json.dumps(review).encode()
            context = ssl.create_default_context(cafile=str(tmp / "certs" / "ca.crt"))
            print(f"review body {len(body)} bytes, {requests} requests after 50 warm-up")
            print("| connection | median ms | p99 ms |")
            print("|---|---|---|")
            for label, force_close in (
                ("keep-alive", False),
                ("new TLS connection per request", True),
            ):
                async with aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(ssl=context, force_close=force_close)
                ) as session:
                    samples = []
                    for index in range(50 + requests):
                        start = time.perf_counter()
                        async with session.post(
                            url, data=body, headers={"Content-Type": "application/json"}
                        ) as resp:
                            await resp.read()
                            assert resp.status == 200
                        if index >= 50:
                            samples.append((time.perf_counter() - start) * 1000)
                print(
                    f"| {label} | {statistics.median(samples):.2f} | {percentile(samples, 99):.2f} |"
                )
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=500)
    asyncio.run(run(parser.parse_args().requests))


if __name__ == "__main__":
    main()
