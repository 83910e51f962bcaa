"""Shell: the server's long-lived resources, each an aiohttp `cleanup_ctx`.

The review thread, the facts provider (the cluster client and its caches), the watchers that
reload the serving certificate and the config file when they change, and the certificate
manager of ``--manage-certs``. Shutdown releases exactly what
started; a config that does not load keeps the previous one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web

from webhook import configfile
from webhook.core.config import ConfigError
from webhook.kube.client import KubeError, api_client
from webhook.server import managed_certs, wire
from webhook.server.state import STATE, ServerState
from webhook.server.tls import file_stamp

# The server's records all carry logger "webhook.server", whichever module writes them.
log = logging.getLogger("webhook.server")


async def review_thread(app: web.Application) -> AsyncIterator[None]:
    """The one thread reviews are parsed and decided on (the core is pure: one at a time)."""
    state = app[STATE]
    state.review_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pf-webhook-review")
    try:
        yield
    finally:
        thread, state.review_thread = state.review_thread, None
        thread.shutdown(wait=True, cancel_futures=True)


async def facts_provider(app: web.Application) -> AsyncIterator[None]:
    """The cluster client and its caches, from `state.facts_factory`; closed on shutdown."""
    state = app[STATE]
    provider = await state.facts_factory(state.config)
    state.provider = provider
    try:
        yield
    finally:
        state.provider = None
        close = getattr(provider, "close", None)
        if close is not None:
            result = close()
            if isinstance(result, Awaitable):
                await result


@contextlib.asynccontextmanager
async def _background(coro: Awaitable[None]) -> AsyncIterator[None]:
    task = asyncio.ensure_future(coro)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def watch_certs(state: ServerState) -> None:
    assert state.tls is not None
    while True:
        await asyncio.sleep(state.poll_interval)
        state.tls.reload(state.metrics)


async def watch_config(state: ServerState) -> None:
    assert state.config_path is not None
    path = state.config_path
    seen = file_stamp(path)
    while True:
        await asyncio.sleep(state.poll_interval)
        now = file_stamp(path)
        if now == seen:
            continue
        seen = now
        reload_config(state)


def reload_config(state: ServerState) -> bool:
    """Replace the config from its file; on error keep the current one."""
    assert state.config_path is not None
    try:
        new = state.overrides(configfile.read(state.config_path))
    except ConfigError as exc:
        state.metrics.config_reloads.labels("error").inc()
        log.warning(
            "config not reloaded; keeping the previous config",
            extra={"fields": {"error": wire.one_line(str(exc))}},
        )
        return False
    old, state.config = state.config, new
    state.metrics.config_reloads.labels("ok").inc()
    fields: dict[str, Any] = {"path": str(state.config_path)}
    if new.server != old.server:
        fields["restart_needed_for"] = "webhook.server"
    log.info("config reloaded", extra={"fields": fields})
    return True


async def watchers(app: web.Application) -> AsyncIterator[None]:
    """The certificate and config watchers, each only when there is something to watch."""
    state = app[STATE]
    async with contextlib.AsyncExitStack() as stack:
        if state.tls is not None:
            await stack.enter_async_context(_background(watch_certs(state)))
        if state.config_path is not None:
            await stack.enter_async_context(_background(watch_config(state)))
        yield


async def certificate_manager(app: web.Application) -> AsyncIterator[None]:
    """--manage-certs: the certificate Secret's watch, the Lease and the writer; on shutdown
    the Lease is released so another replica takes over at once."""
    state = app[STATE]
    if state.managed is None or state.tls is None:
        yield
        return
    api = await api_client(state.config.kube.kubeconfig)
    if api is None:
        raise KubeError("--manage-certs needs a cluster")
    manager = managed_certs.ManagedCerts(api, state.managed, state.tls, state.metrics)
    manager.start()
    try:
        yield
    finally:
        await manager.close()
        await api.close()
