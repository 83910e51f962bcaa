"""Shell: the HTTPS listener, with what one network peer can hold bounded before any
authentication.

Per connection: a TLS handshake timeout (a peer that never sends a ClientHello is closed), a
header timeout from the handshake to the first request's headers, a 16 KiB TLS read buffer
(asyncio allocates 256 KiB per connection at accept), and a cap on open connections. At the
cap, a new connection takes the place of one that is doing nothing: first the oldest that has
never sent a request (a peer still in its handshake or holding back its headers), else the one
idle the longest since its last request (a kept-alive connection the API server has not used
for a while); a connection with a request in progress is never closed for it. Only when every
connection is busy is the new one closed at accept, before any TLS work. So a peer filling the
cap with idle connections cannot lock out the API server, whose connections carry requests.
The body and idle timeouts, header and body sizes are aiohttp's and `webhook.server.handlers`'
(see `runner_options`).

The TLS protocol is asyncio's own `sslproto.SSLProtocol`, subclassed: asyncio has no public way
to set its read buffer (a class attribute, 256 KiB per connection), nor to see a connection
between accept and the end of its handshake, which the cap and the handshake and header timers
need. `loop.start_tls` is public but builds the same class with the 256 KiB buffer; running TLS
ourselves over `ssl.MemoryBIO` would replace asyncio's TLS state machine with our own.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import ssl
from asyncio import sslproto
from collections.abc import Callable
from typing import Any, Final, cast

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from webhook.core.config import ConnectionLimits
from webhook.server.metrics import Metrics

# A TLS record is at most 16 KiB of plaintext; reading in such chunks costs one more call per
# record for large bodies, and saves 240 KiB per open connection.
TLS_READ_BUFFER: Final = 16 * 1024
# Seconds after a connection closes before freed memory is handed back (at most once per).
TRIM_DELAY: Final = 1.0


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's `malloc_trim`: glibc keeps memory freed by closed connections (TLS buffers) for
    reuse; this hands it back to the system. None on other C libraries."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):  # pragma: no cover - not glibc
        return None
    return cast(Callable[[int], int], trim)


def _trim() -> None:
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def runner_options(limits: ConnectionLimits) -> dict[str, Any]:
    """aiohttp's own per-connection knobs: keep-alive (idle) timeout, header sizes, and
    cancelling a review whose client went away."""
    return {
        "keepalive_timeout": limits.idle_timeout_seconds,
        "max_line_size": limits.max_header_bytes,
        "max_field_size": limits.max_header_bytes,
        "handler_cancellation": True,
    }


class Connections:
    """The open connections of one listener: their number, the cap, the header timers."""

    def __init__(self, limits: ConnectionLimits, metrics: Metrics) -> None:
        self.limits = limits
        self.metrics = metrics
        self.open = 0
        self._trim: asyncio.TimerHandle | None = None
        self._header_timers: dict[RequestHandler, asyncio.TimerHandle] = {}
        # eviction candidates, oldest first: never sent a request / by their last request
        self._fresh: dict[RequestHandler, _TLSConnection] = {}
        self._served: dict[RequestHandler, _TLSConnection] = {}

    def request_started(self, handler: object) -> None:
        """A request's headers arrived on this connection: its header timer is done, and it is
        now the most recently used."""
        timer = self._header_timers.pop(handler, None)  # type: ignore[call-overload]
        if timer is not None:
            timer.cancel()
        connection = self._fresh.pop(handler, None) or self._served.pop(handler, None)  # type: ignore[call-overload]
        if connection is not None:
            self._served[cast(RequestHandler, handler)] = connection

    def accepted(self, connection: _TLSConnection) -> None:
        self.open += 1
        self.metrics.open_connections.set(self.open)
        self._fresh[connection._pf_handler] = connection

    def forget(self, handler: RequestHandler) -> None:
        self._fresh.pop(handler, None)
        self._served.pop(handler, None)

    def make_room(self) -> bool:
        """At the cap: close the connection the peer least needs (see the module's docstring).
        False when every connection has a request in progress."""
        for candidates in (self._fresh, self._served):
            for handler, connection in candidates.items():
                if handler._request_in_progress or handler._messages:  # aiohttp's own state
                    continue
                del candidates[handler]
                self._closed("evicted")
                connection._pf_evict()
                return True
        return False

    def lost(self) -> None:
        """A counted connection closed; its memory goes back to the system soon after."""
        self.open -= 1
        self.metrics.open_connections.set(self.open)
        if self._trim is None:
            self._trim = asyncio.get_running_loop().call_later(TRIM_DELAY, self._trimmed)

    def _trimmed(self) -> None:
        self._trim = None
        _trim()

    def _closed(self, reason: str) -> None:
        self.metrics.connections.labels(reason).inc()


class _Refused(asyncio.Protocol):
    """Over the cap: closed at accept, before any TLS work."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        cast(asyncio.Transport, transport).abort()


class _TLSConnection(sslproto.SSLProtocol):
    """asyncio's TLS protocol with a small read buffer, counted, with a header timer."""

    max_size = TLS_READ_BUFFER

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        handler: RequestHandler,
        context: ssl.SSLContext,
        connections: Connections,
    ) -> None:
        waiter = loop.create_future()
        super().__init__(
            loop,
            handler,
            context,
            waiter,
            server_side=True,
            ssl_handshake_timeout=connections.limits.handshake_timeout_seconds,  # type: ignore[arg-type]  # a float works
        )
        self._pf_loop = loop
        self._pf_handler = handler
        self._pf_connections = connections
        self._pf_raw: asyncio.Transport | None = None
        self._pf_lost = False
        waiter.add_done_callback(self._pf_handshake_done)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._pf_raw = cast(asyncio.Transport, transport)
        super().connection_made(transport)
        if self._pf_lost:  # evicted between accept and here
            self._pf_raw.abort()

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self._pf_lost:
            self._pf_lost = True
            self._pf_connections.lost()
            self._pf_connections.request_started(self._pf_handler)
            self._pf_connections.forget(self._pf_handler)
        super().connection_lost(exc)

    def _pf_evict(self) -> None:
        """Closed to make room for a new connection: counted as closed at once, so the cap
        holds while the transport's own close is still under way."""
        if not self._pf_lost:
            self._pf_lost = True
            self._pf_connections.lost()
            self._pf_connections.request_started(self._pf_handler)
            self._pf_connections.forget(self._pf_handler)
        if self._pf_raw is not None:
            self._pf_raw.abort()

    def _pf_handshake_done(self, waiter: asyncio.Future[None]) -> None:
        connections = self._pf_connections
        if waiter.cancelled():
            return
        exc = waiter.exception()
        if isinstance(exc, ConnectionAbortedError):  # asyncio's handshake timeout
            connections._closed("handshake_timeout")
        elif isinstance(exc, ssl.SSLError):
            connections._closed("handshake_failed")
        elif exc is None and not self._pf_lost:
            connections.metrics.connections.labels("handshake_ok").inc()
            connections._header_timers[self._pf_handler] = self._pf_loop.call_later(
                connections.limits.header_timeout_seconds, self._pf_header_timeout
            )
        # else: the peer closed during the handshake

    def _pf_header_timeout(self) -> None:
        self._pf_connections._header_timers.pop(self._pf_handler, None)
        self._pf_connections._closed("header_timeout")
        if self._pf_raw is not None:
            self._pf_raw.abort()


class BoundedTLSSite(web.TCPSite):
    """`web.TCPSite` over HTTPS with `Connections`' bounds."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext,
        connections: Connections,
    ) -> None:
        super().__init__(runner, host, port, ssl_context=ssl_context)
        self._pf_context = ssl_context
        self._pf_connections = connections

    async def start(self) -> None:
        await web.BaseSite.start(self)
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        connections, context = self._pf_connections, self._pf_context
        cap = connections.limits.max_connections

        def accept() -> asyncio.BaseProtocol:
            if connections.open >= cap and not connections.make_room():
                connections._closed("refused")
                return _Refused()
            connection = _TLSConnection(loop, server(), context, connections)
            connections.accepted(connection)
            return connection

        self._server = await loop.create_server(accept, self._host, self._port, backlog=128)
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port
