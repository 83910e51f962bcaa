"""Shell: the Prometheus metrics of one server, in their own registry."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from webhook.core import rules

# up to the API server's longest webhook timeout (our manifests use 5 s)
LATENCY_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)  # fmt: skip
TIMED_PATHS: Final = {"/mutate": "mutate", "/validate": "validate"}


def _request_timer(latency: Histogram) -> Middleware:
    """The outermost middleware: times each admission request from the moment aiohttp hands it
    over (headers in) until the answer is written, so the review (and any wait for the review
    thread), the middlewares, reading the body and writing the answer are all in it. (What no server
    can see is the time a request spends in the kernel's socket buffer before it is read.)"""

    @web.middleware
    async def timer(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        endpoint = TIMED_PATHS.get(request.path) if request.method == "POST" else None
        if endpoint is None:
            return await handler(request)
        started = time.perf_counter()
        try:
            response = await handler(request)
            try:  # written here (aiohttp does it after the middlewares), to be timed
                await response.prepare(request)
                await response.write_eof()
            except ConnectionError:  # the client went away; aiohttp's own finish sees it too
                pass
            return response
        finally:
            latency.labels(endpoint).observe(time.perf_counter() - started)

    return timer


class Metrics:
    """The Prometheus metrics of one server, in their own registry (tests run many servers)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.latency = Histogram(
            "pf_webhook_request_duration_seconds",
            "Time to answer an admission request, from its headers in to its answer written.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.request_timer = _request_timer(self.latency)
        self.decisions = Counter(
            "pf_webhook_decisions",
            "Reviews answered, by decision.",
            ["endpoint", "decision"],
            registry=r,
        )
        self.findings = Counter(
            "pf_webhook_findings",
            "Policy findings, by rule and action.",
            ["rule", "action"],
            registry=r,
        )
        for rule in rules.declared():  # every rule has its series from the start, at 0
            for action in ("deny", "warn", "audit"):
                self.findings.labels(rule.id, action)
        self.errors = Counter(
            "pf_webhook_errors",
            "Requests we could not answer normally, by kind.",
            ["kind"],
            registry=r,
        )
        self.cert_reloads = Counter(
            "pf_webhook_cert_reloads",
            "Serving certificate pairs loaded after a change.",
            registry=r,
        )
        self.cert_expiry = Gauge(
            "pf_webhook_certificate_expiry_timestamp_seconds",
            "When each certificate in use expires (Unix time): the serving certificate, and with "
            "--manage-certs each CA in the published bundle.",
            ["certificate"],
            registry=r,
        )
        self.leader = Gauge(
            "pf_webhook_cert_lease_holder",
            "1 while this replica holds the certificate Lease (--manage-certs), else 0.",
            registry=r,
        )
        self.config_reloads = Counter(
            "pf_webhook_config_reloads", "Config file reloads, by result.", ["result"], registry=r
        )
        self.open_connections = Gauge(
            "pf_webhook_open_connections",
            "Connections open on the HTTPS port (in handshake or established).",
            registry=r,
        )
        self.connections = Counter(
            "pf_webhook_connections",
            "HTTPS connection events: handshake_ok, and why a connection was closed by us "
            "(evicted: an idle one replaced at the cap; refused: over the cap with every connection "
            "busy; handshake_timeout, handshake_failed, header_timeout).",
            ["event"],
            registry=r,
        )
        self.http_errors = Counter(
            "pf_webhook_http_errors",
            "Malformed HTTP requests and connection errors reported by the HTTP layer "
            "(logged at most once per interval).",
            ["logger"],
            registry=r,
        )
        for event in (
            "handshake_ok",
            "evicted",
            "refused",
            "handshake_timeout",
            "handshake_failed",
            "header_timeout",
        ):
            self.connections.labels(event)
        for endpoint in ("mutate", "validate"):
            self.latency.labels(endpoint)
            for decision in ("allowed", "patched", "denied", "error"):
                self.decisions.labels(endpoint, decision)
        for kind in (
            "bad_json",
            "bad_review",
            "too_large",
            "content_type",
            "internal",
            "cert_reload",
            "body_timeout",
            "busy",
            "bad_encoding",
        ):
            self.errors.labels(kind)
        for result in ("ok", "error"):
            self.config_reloads.labels(result)

    def render(self) -> bytes:
        return generate_latest(self.registry)
