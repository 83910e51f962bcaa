"""Benchmark: our webhooks as the real API server sees them (tests/controlplane).

Starts etcd + kube-apiserver, a real `pf-webhook serve` (cluster lookups on), installs our two
webhook configurations from manifests/ exactly as the e2e tests do, creates N distinct function
StatefulSets (a few clients in parallel, like a redeploy), then reads the API server's own
`apiserver_admission_webhook_admission_duration_seconds` for our two webhooks (and its
end-to-end POST latency for statefulsets) from its /metrics.

    PF_WEBHOOK_CONTROLPLANE="$(tests/controlplane/build.sh)" \
        .venv/bin/python benchmarks/bench_apiserver.py [--functions 300] [--clients 8]
Nothing here is asserted by the test suite.
"""

from __future__ import annotations

import argparse
import http.client
import json
import ssl
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

sys.path.insert(0, str(common.ROOT / "tests" / "controlplane"))

from controlplane import ControlPlane, binaries_dir

from tests.e2e import test_admission as e2e

ADMISSION = "apiserver_admission_webhook_admission_duration_seconds"
REQUEST = "apiserver_request_duration_seconds"
SERVE = "pf_webhook_request_duration_seconds"
WEBHOOKS = (("mutate.pf-webhook.io", "admit"), ("validate.pf-webhook.io", "validating"))
NAMESPACE = "bench-functions"


def _post(cp: ControlPlane, context: ssl.SSLContext, path: str, body: bytes) -> tuple[int, bytes]:
    host, port = cp.server.removeprefix("https://").split(":")
    conn = http.client.HTTPSConnection(host, int(port), context=context, timeout=30)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _summary(
    section: str, case: str, hist: tuple[dict[float, float], float, float], note: str
) -> dict[str, str]:
    buckets, total, count = hist
    mean = total / count if count else None
    return {
        "section": section,
        "case": case,
        "conns": "",
        "rate": "",
        "p50": common.fmt_seconds(common.quantile(0.5, buckets)),
        "p99": common.fmt_seconds(common.quantile(0.99, buckets)),
        "notes": f"count {count:.0f}, mean {common.fmt_seconds(mean)}; {note}",
    }


def rows(functions: int, clients_list: list[int]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    with ExitStack() as stack:
        cp = stack.enter_context(ControlPlane(binaries_dir()))
        cluster = e2e.Cluster(cp)
        hook = e2e.Webhook(Path(stack.enter_context(tempfile.TemporaryDirectory())), cp.kubeconfig)
        stack.callback(hook.stop)
        hook.start()
        ca = (hook.cert_dir / "ca.crt").read_bytes()
        for doc in e2e.webhook_configurations(hook.port, ca):
            result = cluster.create(doc)
            if result.code != 0:
                raise SystemExit(f"the API server refused our {doc['kind']}: {result.err}")
        cluster.namespace(
            NAMESPACE,
            secrets={
                **e2e.SECRETS,
                "api": {"token": "not-a-real-token"},
            },
        )
        context = cp.ssl_context()
        path = f"/apis/apps/v1/namespaces/{NAMESPACE}/statefulsets"

        def create(index: int) -> int:
            obj = common.typical_worker(index, k8s_namespace=NAMESPACE)
            status, body = _post(cp, context, path, json.dumps(obj).encode())
            if status != 201:
                common.info(f"  create {index}: HTTP {status}: {body[:300]!r}")
            return status

        # the configurations take effect within a second or so: poll with a deadline
        deadline = time.monotonic() + 30
        while create(10**6 + int(time.monotonic() * 1000) % 10**5) != 201 or not _seen(cp):
            if time.monotonic() > deadline:
                raise SystemExit(f"our webhooks never answered; see {hook.log}")
            time.sleep(0.2)
        for round_, clients in enumerate(clients_list):
            first = (round_ + 1) * functions
            out.extend(_burst(cp, hook, create, range(first, first + functions), clients))
    return out


def _burst(
    cp: ControlPlane,
    hook: e2e.Webhook,
    create: Callable[[int], int],
    indexes: range,
    clients: int,
) -> list[dict[str, str]]:
    """Create one StatefulSet per index with `clients` in parallel; the table rows for it."""
    before = _scrape_all(cp)
    serve_before = common.scrape(hook.metrics_port)
    common.info(f"apiserver: creating {len(indexes)} StatefulSets with {clients} clients ...")
    started = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        statuses = list(pool.map(create, indexes))
    elapsed = time.monotonic() - started
    after = _scrape_all(cp)
    serve_after = common.scrape(hook.metrics_port)
    failed = sum(1 for s in statuses if s != 201)
    section = f"API server, {clients} client{'s' if clients > 1 else ''}"
    out = [
        {
            "section": section,
            "case": f"create {len(indexes)} function StatefulSets",
            "conns": str(clients),
            "rate": f"{len(indexes) / elapsed:.0f}",
            "p50": "",
            "p99": "",
            "notes": f"{elapsed:.1f}s in all; {failed} not created",
        }
    ]
    for name, kind in WEBHOOKS:
        hist = common.minus(
            common.histogram(after, ADMISSION, name=name, type=kind, operation="CREATE"),
            common.histogram(before, ADMISSION, name=name, type=kind, operation="CREATE"),
        )
        note = "the API server's buckets (5, 25, 100, 500 ms...) bound this estimate"
        out.append(_summary(section, f"{ADMISSION} {name}", hist, note))
    for endpoint in ("mutate", "validate"):
        hist = common.minus(
            common.histogram(serve_after, SERVE, endpoint=endpoint),
            common.histogram(serve_before, SERVE, endpoint=endpoint),
        )
        out.append(_summary(section, f"serve's own {SERVE} /{endpoint}", hist, "as serve sees it"))
    hist = common.minus(
        common.histogram(after, REQUEST, verb="POST", resource="statefulsets"),
        common.histogram(before, REQUEST, verb="POST", resource="statefulsets"),
    )
    out.append(_summary(section, f"{REQUEST} POST statefulsets", hist, "the whole create"))
    return out


def _scrape_all(cp: ControlPlane) -> str:
    status, body = cp.get("/metrics", timeout=30)
    if status != 200:
        raise SystemExit(f"GET /metrics on the API server: HTTP {status}")
    return body.decode()


def _seen(cp: ControlPlane) -> bool:
    """Both our webhooks have been called (the configurations are in effect)."""
    text = _scrape_all(cp)
    return all(
        common.histogram(text, ADMISSION, name=name, type=kind)[2] > 0 for name, kind in WEBHOOKS
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--functions", type=int, default=300, help="StatefulSets to create")
    parser.add_argument("--clients", default="1,8", help="parallel clients, one burst each")
    args = parser.parse_args()
    print(common.table(rows(args.functions, [int(c) for c in args.clients.split(",")])))


if __name__ == "__main__":
    main()
