"""Benchmark: a real `pf-webhook serve` under 2,000 idle TLS connections and 300 silent TCP
connections (no ClientHello), while a normal keep-alive client posts reviews.

Run: `.venv/bin/python benchmarks/bench_hostile.py [--idle N] [--silent N] [--client-ca]`.
Prints the server's RSS (before, peak, after the connections are gone), the normal client's
latency percentiles, and when the server closed the hostile connections. The connection cap
is raised above the load so every connection is really held; the handshake, header and idle
timeouts are long enough (90 s) for all of them to be open at once, then the server closes
each at its timeout. The bounded version of this run is tests/integration/test_hostile_load.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trustme

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.hostile import NormalClient, open_peers, percentile, rss_mib, sample_rss
from tests.pki import client_pair
from tests.reviews import admission_review
from tests.worker import statefulset
from webhook.certs import pki

TIMEOUT = 90.0  # longer than opening all connections takes, so all are held at once


def review() -> dict[str, Any]:
    obj = statefulset(secrets={"DB_PASSWORD": {"path": "db-creds", "key": "password"}})
    return admission_review(obj, uid="bench-hostile")


def start(tmp: Path, client_ca: Path | None) -> tuple[subprocess.Popen[bytes], str, str]:
    config = tmp / "config.yml"
    config.write_text(
        "webhook:\n  server:\n    connections: {maxConnections: 5000, "
        f"handshakeTimeoutSeconds: {TIMEOUT:g}, headerTimeoutSeconds: {TIMEOUT:g}, "
        f"idleTimeoutSeconds: {TIMEOUT:g}}}\n"
    )
    argv = [sys.executable, "-m", "webhook", "serve", "--cert-dir", str(tmp / "certs")]
    argv += ["--port", "0", "--metrics-port", "0", "--host", "127.0.0.1", "--config", str(config)]
    if client_ca is not None:
        argv += ["--client-ca", str(client_ca)]
    out = (tmp / "out").open("wb")
    proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = re.search(r"serving (https://\S+) .* on (http://\S+);", (tmp / "out").read_text())
        if found:
            return proc, found[1], found[2]
        time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"pf-webhook serve did not start:\n{(tmp / 'out').read_text()}")


async def run(idle: int, silent: int, with_client_ca: bool) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="pf-webhook-hostile-"))
    pki.generate(
        service="pf-webhook",
        namespace="pf-webhook",
        out_dir=tmp / "certs",
        hosts=("localhost",),
        ips=("127.0.0.1",),
    )
    client_ca = None
    if with_client_ca:  # the normal client has a certificate from this CA; the peers have none
        clients = trustme.CA()
        client_pair(tmp / "client", clients)  # client.crt, client.key
        client_ca = tmp / "client" / "ca.crt"
        clients.cert_pem.write_to_path(str(client_ca))
    proc, https, _http = start(tmp, client_ca)
    try:
        host, port = re.fullmatch(r"https://([^:]+):(\d+)", https).groups()  # type: ignore[union-attr]
        await asyncio.sleep(1)
        before = rss_mib(proc.pid)
        stop, samples = asyncio.Event(), [before]
        sampler = asyncio.create_task(sample_rss(proc.pid, stop, samples))
        # the normal client runs in its own process, as the API server does: this process is
        # busy with 2,000 TLS handshakes of its own
        normal = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--normal-client",
            f"{https}/mutate",
            str(tmp / "certs" / "ca.crt"),
            *(
                (str(tmp / "client" / "client.crt"), str(tmp / "client" / "client.key"))
                if client_ca
                else ()
            ),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        await asyncio.sleep(2)
        hostile_tls = ssl.create_default_context(cafile=str(tmp / "certs" / "ca.crt"))
        opening = time.monotonic()
        tls_peers, tls_failed = await open_peers(host, int(port), idle, tls=hostile_tls)
        silent_peers, silent_failed = await open_peers(host, int(port), silent, tls=None)
        opened = time.monotonic() - opening
        held = rss_mib(proc.pid)
        peers = tls_peers + silent_peers
        await asyncio.wait_for(
            asyncio.gather(*(p.wait_closed_by_server() for p in peers)), TIMEOUT + 60
        )
        deadline = time.monotonic() + 10
        after = rss_mib(proc.pid)
        while time.monotonic() < deadline:  # freed memory goes back about 1 s after a close
            await asyncio.sleep(0.5)
            after = rss_mib(proc.pid)
        stop.set()
        await sampler
        assert normal.stdin is not None
        normal.stdin.close()
        result = json.loads((await normal.communicate())[0])
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    lifetimes = [p.closed - p.opened for p in peers if p.closed is not None]
    lat, failures = result["latencies"] or [float("nan")], result["failures"]
    print(f"hostile load: {idle} idle TLS + {silent} silent TCP connections", end="")
    print(" (--client-ca; peers without a certificate)" if with_client_ca else "")
    print(f"  opened in {opened:.1f} s; could not open: {tls_failed + silent_failed}")
    print(f"  RSS MiB: before {before:.1f}, all held {held:.1f}, peak {max(samples):.1f}, ", end="")
    print(f"after close {after:.1f} (limit in manifests: 256)")
    print(
        f"  normal client: {len(lat)} reviews, "
        f"{len(failures)} failures; p50 {percentile(lat, 50) * 1000:.1f} ms, "
        f"p99 {percentile(lat, 99) * 1000:.1f} ms, max {max(lat) * 1000:.1f} ms"
    )
    if lifetimes:
        print(
            f"  server closed all {len(lifetimes)} hostile connections; lifetime min "
            f"{min(lifetimes):.1f} s, max {max(lifetimes):.1f} s (timeouts: {TIMEOUT:g} s)"
        )


async def normal_client(url: str, ca: str, cert: list[str]) -> None:
    """Post reviews until stdin closes; print the latencies as JSON."""
    tls = ssl.create_default_context(cafile=ca)
    if cert:
        tls.load_cert_chain(*cert)
    client = NormalClient(url, tls, review())
    stop = asyncio.Event()
    task = asyncio.create_task(client.run(stop))
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    stop.set()
    await task
    print(json.dumps({"latencies": client.latencies, "failures": client.failures}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--idle", type=int, default=2000)
    parser.add_argument("--silent", type=int, default=300)
    parser.add_argument("--client-ca", action="store_true")
    parser.add_argument("--normal-client", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.normal_client:
        url, ca, *cert = args.normal_client
        asyncio.run(normal_client(url, ca, cert))
    else:
        asyncio.run(run(args.idle, args.silent, args.client_ca))


if __name__ == "__main__":
    main()
