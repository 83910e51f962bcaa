"""Shared pieces of the benchmarks: distinct worker reviews, servers as processes, statistics.

Every review a benchmark sends is distinct (its own tenant, function name and uid), so no
cache can answer it; the bodies are worker-shaped StatefulSets from `tests/worker.py`.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "benchmarks"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests import worker  # noqa: E402 - needs the sys.path entry above
from tests.reviews import admission_review as admission_review  # noqa: E402
from webhook.certs import pki  # noqa: E402
from webhook.core.config import Config  # noqa: E402
from webhook.server import handlers  # noqa: E402

EXAMPLE_CONFIG = ROOT / "examples" / "functions_worker.yml"


def review_body(body: bytes, config: Config, mode: str) -> str:
    """One request body to its answer's JSON text by the path `serve` takes on its review
    thread (`handlers.parse_body`: strict JSON, the review read once; `handlers.answer`: the
    answer written); no cluster lookups, as `serve` without a cluster."""
    text, _ = handlers.answer(handlers.parse_body(body, config), mode, None)  # type: ignore[arg-type]
    return text


def info(message: str) -> None:
    """Progress goes to stderr; the table goes to stdout."""
    print(message, file=sys.stderr, flush=True)


# --- statistics ---------------------------------------------------------------------------------


def percentile(samples: list[float], p: float) -> float:
    """Nearest-rank percentile of `samples` (sorted or not)."""
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def fmt_seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1e-3:
        return f"{value * 1e6:.0f} µs"
    if value < 1:
        return f"{value * 1e3:.2f} ms"
    return f"{value:.2f} s"


# --- Prometheus histograms ----------------------------------------------------------------------

_SAMPLE = re.compile(
    r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)"
)
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def histogram(text: str, metric: str, /, **match: str) -> tuple[dict[float, float], float, float]:
    """Cumulative buckets {le: count}, sum and count of histogram `metric`, summed over every
    series whose labels include `match`."""
    buckets: dict[float, float] = {}
    total_sum = total_count = 0.0
    for line in text.splitlines():
        found = _SAMPLE.match(line)
        if not found or not found["name"].startswith(metric):
            continue
        labels = dict(_LABEL.findall(found["labels"] or ""))
        if any(labels.get(k) != v for k, v in match.items()):
            continue
        suffix, value = found["name"][len(metric) :], float(found["value"])
        if suffix == "_bucket":
            le = float(labels["le"])  # "+Inf" parses
            buckets[le] = buckets.get(le, 0.0) + value
        elif suffix == "_sum":
            total_sum += value
        elif suffix == "_count":
            total_count += value
    return buckets, total_sum, total_count


def minus(
    after: tuple[dict[float, float], float, float], before: tuple[dict[float, float], float, float]
) -> tuple[dict[float, float], float, float]:
    """The observations made between two scrapes of the same histogram."""
    return (
        {le: n - before[0].get(le, 0.0) for le, n in after[0].items()},
        after[1] - before[1],
        after[2] - before[2],
    )


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """histogram_quantile(): linear interpolation inside the bucket holding rank q (an estimate:
    it can be no finer than the bucket bounds)."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for le in bounds:
        count = buckets[le]
        if count >= rank:
            if le == float("inf"):
                return lower
            inside = count - below
            return lower + (le - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = le, count
    return None


# --- distinct reviews ---------------------------------------------------------------------------


def tag(base: str, index: int) -> str:
    """`base` of the same length with its tail replaced by `index` in base 36: distinct per
    index, the same length (name-length rules decide the same way), still a DNS label."""
    digits = ""
    n = index
    while True:
        n, r = divmod(n, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[r] + digits
        if n == 0:
            break
    if len(digits) >= len(base):
        return digits
    return base[: len(base) - len(digits)] + digits


def typical_worker(index: int, *, k8s_namespace: str = "pulsar-functions") -> dict[str, Any]:
    """The typical worker StatefulSet (Java, two secrets, SA-token auth with a CA, customizer
    options), with its own tenant and function name."""
    return worker.statefulset(
        tenant=tag("tenant", index),
        namespace="default",
        name=f"fn-{index:06d}",
        k8s_namespace=k8s_namespace,
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


def write_bodies(path: Path, count: int) -> int:
    """`count` distinct /mutate reviews of typical worker StatefulSets, one JSON document a
    line (the wrk script cycles through them). Returns the mean body size in bytes."""
    size = 0
    with path.open("w", encoding="utf-8") as out:
        for index in range(count):
            obj = typical_worker(index)
            body = json.dumps(
                admission_review(obj, uid=f"bench-{index:08d}", namespace="pulsar-functions"),
                separators=(",", ":"),
            )
            size += len(body)
            out.write(body + "\n")
    return size // max(1, count)


# --- servers as processes -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_certs(directory: Path) -> Path:
    pki.generate(
        service="pf-webhook",
        namespace="pf-webhook",
        out_dir=directory,
        hosts=("localhost",),
        ips=("127.0.0.1",),
    )
    return directory


class Server:
    """A server process on 127.0.0.1 (its output to a log file), stopped with SIGTERM."""

    def __init__(self, label: str, argv: list[str], port: int, log: Path, env: dict[str, str]):
        self.label, self.port, self.log = label, port, log
        self._out = log.open("ab")
        self.proc = subprocess.Popen(
            argv, stdout=self._out, stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ, **env}
        )

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def wait_listening(self, seconds: float = 30.0) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.label} exited with {self.proc.returncode}; see {self.log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise SystemExit(
            f"{self.label} did not listen on {self.port} in {seconds:g}s; see {self.log}"
        )

    def rss_bytes(self) -> int:
        """Resident set size now (Linux /proc)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()


# `pf-webhook serve` on uvloop, without changing the code: the policy is set before serve's
# asyncio.run() creates its loop (Python 3.11).
UVLOOP_SERVE = (
    "import sys, uvloop; uvloop.install(); from webhook.cli import main; "
    "raise SystemExit(main(sys.argv[1:]))"
)


def start_serve(
    stack: ExitStack, workdir: Path, cert_dir: Path, *, uvloop: bool = False, label: str = ""
) -> tuple[Server, int]:
    """`pf-webhook serve` with the example config; returns it and its metrics port."""
    port, metrics_port = free_port(), free_port()
    launcher = ["-c", UVLOOP_SERVE] if uvloop else ["-m", "webhook"]
    server = Server(
        label or "pf-webhook serve",
        [
            sys.executable,
            *launcher,
            "serve",
            "--config",
            str(EXAMPLE_CONFIG),
            "--cert-dir",
            str(cert_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--metrics-port",
            str(metrics_port),
        ],
        port,
        workdir / f"serve-{port}.log",
        {"PF_WEBHOOK_SHUTDOWN_DELAY": "0"},
    )
    stack.callback(server.stop)
    server.wait_listening()
    return server, metrics_port


def start_noop(
    stack: ExitStack, workdir: Path, cert_dir: Path, *, extra: Iterable[str] = (), label: str = ""
) -> Server:
    """The no-op aiohttp TLS webhook (benchmarks/noop_webhook.py)."""
    port = free_port()
    server = Server(
        label or "no-op webhook",
        [
            sys.executable,
            str(HERE / "noop_webhook.py"),
            "--cert-dir",
            str(cert_dir),
            "--port",
            str(port),
            *extra,
        ],
        port,
        workdir / f"noop-{port}.log",
        {},
    )
    stack.callback(server.stop)
    server.wait_listening()
    return server


def scrape(metrics_port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as resp:
        return str(resp.read().decode())


COLUMNS = (
    ("section", "section"),
    ("case", "case"),
    ("conns", "conns"),
    ("rate", "req/s"),
    ("p50", "p50 / median"),
    ("p99", "p99"),
    ("notes", "notes"),
)


def table(rows: list[dict[str, str]]) -> str:
    """The one Markdown table every part of `make bench` adds rows to."""
    lines = [
        "| " + " | ".join(title for _, title in COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for row in rows:
        lines.append("| " + " | ".join(row.get(key, "") for key, _ in COLUMNS) + " |")
    return "\n".join(lines)
