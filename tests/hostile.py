"""Hostile peers against a real `pf-webhook serve` process: idle TLS connections, silent TCP
connections (no ClientHello), and a normal keep-alive client measuring its latency meanwhile.

Used by tests/integration/test_hostile_load.py (bounded) and benchmarks/bench_hostile.py (the
full 2,000 + 300).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp


def rss_mib(pid: int) -> float:
    """The resident set size of process `pid`, in MiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


@dataclass
class Peer:
    """One hostile connection: when it was opened and when the server closed it."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    opened: float
    closed: float | None = None

    async def wait_closed_by_server(self) -> None:
        """Returns once the server closed the connection (EOF or reset); sends nothing."""
        with contextlib.suppress(OSError, ssl.SSLError, asyncio.IncompleteReadError):
            while await self.reader.read(1024):
                pass
        self.closed = time.monotonic()
        await self.close()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
            async with asyncio.timeout(5):
                await self.writer.wait_closed()


async def open_peers(
    host: str,
    port: int,
    count: int,
    *,
    tls: ssl.SSLContext | None,
    concurrency: int = 64,
) -> tuple[list[Peer], int]:
    """Open `count` connections (TLS handshake done when `tls` is given, else bare TCP) that
    then send nothing. Returns the peers and how many could not be opened."""
    peers: list[Peer] = []
    failed = 0
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        nonlocal failed
        async with gate:
            try:
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=tls, server_hostname="localhost" if tls else None
                )
            except (OSError, ssl.SSLError):
                failed += 1
                return
            peers.append(Peer(reader, writer, time.monotonic()))

    await asyncio.gather(*(one() for _ in range(count)))
    return peers, failed


@dataclass
class NormalClient:
    """A keep-alive client (as the API server is) posting one review after another."""

    url: str
    tls: ssl.SSLContext
    review: Mapping[str, Any]
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        body = json.dumps(self.review).encode()
        headers = {"Content-Type": "application/json"}
        connector = aiohttp.TCPConnector(ssl=self.tls, limit=1)
        async with aiohttp.ClientSession(connector=connector) as session:
            while not stop.is_set():
                started = time.perf_counter()
                try:
                    async with session.post(self.url, data=body, headers=headers) as response:
                        answer = await response.json()
                except (aiohttp.ClientError, TimeoutError) as exc:
                    self.failures.append(type(exc).__name__)
                    continue
                self.latencies.append(time.perf_counter() - started)
                if (
                    response.status != 200
                    or answer["response"]["uid"] != self.review["request"]["uid"]
                ):
                    self.failures.append(f"HTTP {response.status}")
                await asyncio.sleep(0.01)


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def sample_rss(pid: int, stop: asyncio.Event, samples: list[float]) -> None:
    """RSS of `pid` every 50 ms until `stop`."""
    while not stop.is_set():
        samples.append(rss_mib(pid))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.05)
