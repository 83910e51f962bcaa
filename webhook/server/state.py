"""Shell: what the server's handlers and long-lived resources share, under one `web.AppKey`.

One `ServerState` per server; both applications (admission and ops) hold the same one, so
readiness, metrics and reloads agree.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from aiohttp import web

from webhook.core.config import Config, ConnectionLimits
from webhook.server import managed_certs
from webhook.server.facts import FactsFactory, FactsProvider, no_cluster
from webhook.server.listener import Connections
from webhook.server.metrics import Metrics
from webhook.server.tls import ServingCerts


@dataclass
class ServerState:
    """Everything the handlers share. `config` is replaced whole on reload; a review reads it
    once, so it never sees half of one config and half of another."""

    config: Config
    config_path: Path | None = None
    overrides: Callable[[Config], Config] = lambda config: config  # re-applied on every reload
    tls: ServingCerts | None = None
    facts_factory: FactsFactory = no_cluster
    poll_interval: float = 1.0
    metrics: Metrics = field(default_factory=Metrics)
    provider: FactsProvider | None = None
    managed: managed_certs.Settings | None = None  # --manage-certs
    shutting_down: bool = False
    in_flight: int = 0
    # the limits the listener started with (changing them needs a restart)
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)
    connections: Connections | None = None
    body_bytes: int = 0  # reserved by the request bodies being read or reviewed
    review_thread: ThreadPoolExecutor | None = None
    inline_paused_until: float = 0.0  # loop time until which every review goes to the thread

    def not_ready(self) -> list[str]:
        reasons = []
        if self.shutting_down:
            reasons.append("shutting down")
        if self.tls is not None and not self.tls.loaded:
            reasons.append("serving certificate not loaded")
        elif self.tls is not None and self.tls.expiry() in ("expired", "not-yet-valid"):
            reasons.append(f"serving certificate {self.tls.expiry()}")
        if self.provider is None:
            reasons.append("cluster client not started")
        elif not self.provider.ready():
            reasons.append("cluster caches not synced")
        return reasons


STATE: Final = web.AppKey("state", ServerState)
