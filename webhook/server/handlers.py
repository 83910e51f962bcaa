"""Shell: the admission and ops applications and how each request is answered.

Contract: every request gets an answer the API server can act on. A body we cannot read is a
4xx with `{"error": "<one line>"}`; a review is read once and answered by the pure core (`webhook.core.review`),
and a failure inside it becomes a denial naming only the exception type. Each review is logged
as one JSON line of metadata; object contents, env values and tokens are never logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, TypeVar

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CONTENT_TYPE_LATEST

from webhook.core import review
from webhook.core.cluster import ClusterFacts, Lookups
from webhook.core.config import Config
from webhook.server import lifecycle, wire
from webhook.server.state import STATE, ServerState

FACTS_BACKSTOP_SECONDS: Final = 1.0
T = TypeVar("T")

# The server's records all carry logger "webhook.server", whichever module writes them.
log = logging.getLogger("webhook.server")


def _reject(state: ServerState, status: int, kind: str, message: str) -> web.Response:
    state.metrics.errors.labels(kind).inc()
    # the message may quote values from the body (apiVersion, kind, operation): not logged
    log.info("rejected", extra={"fields": {"status": status, "kind": kind}})
    return wire.error(status, message)


async def _facts(
    state: ServerState, lookups: Lookups, *, namespace: str, timeout: float
) -> ClusterFacts | None:
    provider = state.provider
    if provider is None:
        return None
    try:
        # The provider keeps to the budget itself and answers with what it knows; this is the
        # backstop for one that does not (later, so the two never race).
        async with asyncio.timeout(timeout + FACTS_BACKSTOP_SECONDS):
            return await provider.facts(lookups, namespace=namespace, timeout=timeout)
    except TimeoutError:
        state.metrics.errors.labels("facts_timeout").inc()
        return ClusterFacts(unavailable=f"API server did not answer within {timeout:g}s")
    except Exception as exc:
        state.metrics.errors.labels("facts").inc()
        log.warning("cluster lookup failed", extra={"fields": {"error": type(exc).__name__}})
        return ClusterFacts(unavailable=f"cluster lookup failed ({type(exc).__name__})")


# A body up to this size is reviewed on the event loop itself: a worker's review is 4-10 KB
# and costs under a millisecond, and two hand-offs to the review thread (and the interpreter
# lock the two threads then contend for) cost more than that: serve's CPU per review was
# 2.0-2.7 ms with the hand-offs and 1.3-1.9 ms without (wrk, 1 and 16 connections). Bigger
# bodies go to the review thread. So do all bodies for a second after one review on the loop
# took longer than INLINE_SLOW_SECONDS: the slowest 16 KB review we could build (a command line
# of backquotes) takes about 26 ms, and a peer sending many at once must not hold the loop that
# answers `/healthz` for their sum.
INLINE_BODY_BYTES: Final = 16 * 1024
INLINE_SLOW_SECONDS: Final = 0.005
INLINE_PAUSE_SECONDS: Final = 1.0


async def _off_loop(state: ServerState, size: int, work: Callable[..., T], *args: Any) -> T:
    """`work(*args)` for a body of `size` bytes: on the loop when small and reviews on the loop
    have been quick, else on the review thread, so a big or slow review (parsing 3 MB,
    mutating 60,000 env entries takes seconds) never stops the loop that answers `/healthz`
    and other reviews."""
    loop = asyncio.get_running_loop()
    if state.review_thread is None:
        return work(*args)
    if size <= INLINE_BODY_BYTES and loop.time() >= state.inline_paused_until:
        started = loop.time()
        try:
            return work(*args)
        finally:
            if loop.time() - started > INLINE_SLOW_SECONDS:
                state.inline_paused_until = loop.time() + INLINE_PAUSE_SECONDS
    return await loop.run_in_executor(state.review_thread, work, *args)


def parse_body(body: bytes, config: Config) -> review.Review:
    """A request body as the server reads it: strict JSON (`wire.BadJson`), then the review
    read once (`review.ReviewError`). The benchmarks measure this same path."""
    doc = wire.load_json(body)
    if not isinstance(doc, Mapping):
        raise review.ReviewError(
            f"body must be a JSON object (an AdmissionReview), got {type(doc).__name__}"
        )
    return review.parse(doc, config)


def answer(
    parsed: review.Review, mode: review.Mode, facts: ClusterFacts | None
) -> tuple[str, review.Outcome]:
    """The answer's JSON text and what was decided."""
    reply, outcome = review.respond(parsed, mode=mode, facts=facts)
    return wire.dumps(reply), outcome


async def _decide(
    state: ServerState, parsed: review.Review, mode: review.Mode, size: int
) -> tuple[str, review.Outcome]:
    """The answer's JSON text and what was decided; `/validate` asks the cluster first for
    what the review's rules need (most objects need nothing)."""
    facts = None
    if mode == "validate":
        lookups = review.lookups(parsed)
        if lookups:
            timeout = parsed.config.kube.timeout_seconds
            facts = await _facts(state, lookups, namespace=parsed.namespace, timeout=timeout)
    return await _off_loop(state, size, answer, parsed, mode, facts)


async def _admit(request: web.Request, mode: review.Mode) -> web.Response:
    state = request.app[STATE]
    started = time.perf_counter()
    state.in_flight += 1
    try:
        response = await _answer(request, state, mode, started)
        if state.shutting_down:
            response.force_close()  # draining: the client's next request opens a new connection
        return response
    finally:
        state.in_flight -= 1


async def _answer(
    request: web.Request, state: ServerState, mode: review.Mode, started: float
) -> web.Response:
    if request.content_type != "application/json":
        return _reject(
            state,
            415,
            "content_type",
            f"Content-Type must be application/json, not {request.content_type}",
        )
    limits = state.limits
    # Every body in memory at once is bounded: reserve what this one may take before reading.
    reserve = limits.max_body_bytes
    if request.content_length is not None and "Content-Encoding" not in request.headers:
        reserve = min(reserve, request.content_length)
    if state.body_bytes + reserve > limits.max_body_bytes_in_flight:
        response = _reject(state, 503, "busy", "too many request bodies in progress; retry")
        response.headers["Retry-After"] = "1"
        return response
    state.body_bytes += reserve
    try:
        return await _read_and_answer(request, state, mode, started)
    finally:
        state.body_bytes -= reserve


async def _read_and_answer(
    request: web.Request, state: ServerState, mode: review.Mode, started: float
) -> web.Response:
    limits = state.limits
    try:
        async with asyncio.timeout(limits.body_timeout_seconds):
            body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _reject(
            state,
            413,
            "too_large",
            f"body is larger than the limit of {limits.max_body_bytes} bytes",
        )
    except TimeoutError:
        return _give_up(
            request,
            _reject(
                state,
                408,
                "body_timeout",
                f"the body did not arrive within {limits.body_timeout_seconds:g}s "
                f"(Content-Length {request.content_length})",
            ),
        )
    except web.RequestPayloadError as exc:  # bad gzip, a framing error inside the body
        detail = getattr(exc.__cause__, "message", None) or str(exc)
        return _give_up(
            request, _reject(state, 400, "bad_encoding", f"cannot read the body: {detail}")
        )
    except ConnectionError:  # the client went away mid-body; nobody reads this answer
        return _reject(state, 400, "disconnected", "connection lost while reading the body")
    try:
        parsed = await _off_loop(state, len(body), parse_body, body, state.config)
    except wire.BadJson as exc:
        return _reject(state, 400, "bad_json", str(exc))
    except review.ReviewError as exc:
        return _reject(state, 400, "bad_review", str(exc))
    except Exception as exc:  # a bug of ours; the uid is not known yet
        return _internal_error(state, mode, "", exc)
    uid = parsed.uid
    try:
        text, outcome = await _decide(state, parsed, mode, len(body))
    except Exception as exc:
        return _internal_error(state, mode, uid, exc)
    m = state.metrics
    m.decisions.labels(mode, outcome.decision).inc()
    for rule, action in outcome.rules:
        m.findings.labels(rule, action).inc()
    log.info("review", extra={"fields": _review_fields(mode, outcome, started)})
    return web.Response(text=text, content_type="application/json")


def _internal_error(state: ServerState, mode: str, uid: str, exc: Exception) -> web.Response:
    state.metrics.errors.labels("internal").inc()
    state.metrics.decisions.labels(mode, "error").inc()
    log.error(
        "internal error",
        extra={"fields": {"endpoint": mode, "uid": uid, "error": type(exc).__name__}},
    )
    text = wire.dumps(wire.internal_error_review(uid, exc))
    # HTTP 500 (with the review as body, so the message is readable) makes the API server
    # apply the webhook's failurePolicy, as for any webhook failure.
    return web.Response(status=500, text=text, content_type="application/json")


def _give_up(request: web.Request, response: web.Response) -> web.Response:
    """Answer, then close without reading the rest of the body: it is late or unreadable."""
    request.content.feed_eof()  # aiohttp would otherwise drain it (and fail again) before closing
    response.force_close()
    return response


def _review_fields(mode: str, outcome: review.Outcome, started: float) -> dict[str, Any]:
    """The log line's fields: identity and decision only, never object contents."""
    return {
        "endpoint": mode,
        "uid": outcome.uid,
        "kind": outcome.kind,
        "namespace": outcome.namespace,
        "name": outcome.name,
        "operation": outcome.operation,
        "decision": outcome.decision,
        "rules": [f"{rule}={action}" for rule, action in outcome.rules],
        "warnings": outcome.warnings,
        "dry_run": outcome.dry_run,
        "latency_ms": round((time.perf_counter() - started) * 1000, 3),
    }


async def mutate(request: web.Request) -> web.Response:
    return await _admit(request, "mutate")


async def validate(request: web.Request) -> web.Response:
    return await _admit(request, "validate")


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"}, dumps=wire.dumps)


async def readyz(request: web.Request) -> web.Response:
    reasons = request.app[STATE].not_ready()
    if reasons:
        return web.json_response({"ready": False, "reasons": reasons}, status=503, dumps=wire.dumps)
    return web.json_response({"ready": True}, dumps=wire.dumps)


async def metrics(request: web.Request) -> web.Response:
    body = request.app[STATE].metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


_ERROR_KINDS: Final = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}


def _errors_middleware(routes: str) -> Middleware:
    """HTTP errors as `{"error": ...}`; an unexpected exception as a 500, never a traceback."""

    @web.middleware
    async def errors(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        state = request.app[STATE]
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            headers = {}
            if isinstance(exc, web.HTTPMethodNotAllowed):
                message = f"method {exc.method} is not allowed on {request.path} (use {', '.join(sorted(exc.allowed_methods))})"
                headers["Allow"] = ", ".join(sorted(exc.allowed_methods))
            elif isinstance(exc, web.HTTPNotFound):
                message = f"no such path {request.path}; this port serves {routes}"
            else:
                message = exc.text or exc.reason
            state.metrics.errors.labels(_ERROR_KINDS.get(exc.status, f"http_{exc.status}")).inc()
            return wire.error(exc.status, message, headers=headers)
        except Exception as exc:
            state.metrics.errors.labels("internal").inc()
            log.error(
                "internal error",
                extra={"fields": {"path": request.path, "error": type(exc).__name__}},
            )
            return wire.error(500, f"internal error in pf-webhook: {type(exc).__name__}")

    return errors


@web.middleware
async def _started(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """A request's headers are in: the connection's header timer is done."""
    connections = request.app[STATE].connections
    if connections is not None:
        connections.request_started(request.protocol)
    return await handler(request)


def create_app(state: ServerState) -> web.Application:
    """The admission application (`POST /mutate`, `POST /validate`), served over HTTPS. It owns
    the long-lived resources: the facts provider and the certificate and config watchers."""
    app = web.Application(
        client_max_size=state.limits.max_body_bytes,
        middlewares=[
            state.metrics.request_timer,
            _started,
            _errors_middleware("POST /mutate, POST /validate"),
        ],
    )
    app[STATE] = state
    app.router.add_post("/mutate", mutate)
    app.router.add_post("/validate", validate)
    app.cleanup_ctx.append(lifecycle.review_thread)
    app.cleanup_ctx.append(lifecycle.facts_provider)
    app.cleanup_ctx.append(lifecycle.watchers)
    app.cleanup_ctx.append(lifecycle.certificate_manager)
    return app


def create_ops_app(state: ServerState) -> web.Application:
    """Health, readiness and metrics, served over plain HTTP on the metrics port."""
    app = web.Application(middlewares=[_errors_middleware("GET /healthz, /readyz, /metrics")])
    app[STATE] = state
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app
