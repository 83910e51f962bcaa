"""Shell: `pf-webhook serve`: HTTPS admission endpoints, health and metrics, live reloads of the
serving certificate and the config, and a graceful SIGTERM drain.

Contract: every request gets an answer the API server can act on. A body we cannot read is a
4xx with `{"error": "<one line>"}`; a review is answered by the pure core (`webhook.review`),
and a failure inside it becomes a denial naming only the exception type. Each review is logged
as one JSON line of metadata; object contents, env values and tokens are never logged.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import importlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol, cast

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CONTENT_TYPE_LATEST

from webhook import certs, configfile, review, workload
from webhook.config import Config, ConfigError
from webhook.metrics import Metrics
from webhook.policy import ClusterFacts
from webhook.tls import CertLoadError, ServingCerts, file_stamp, reason

MAX_BODY: Final = 3 * 1024 * 1024
SHUTDOWN_TIMEOUT: Final = 10.0
DEFAULT_DRAIN_SECONDS: Final = 2.0
DRAIN_ENV: Final = "PF_WEBHOOK_SHUTDOWN_DELAY"
MAX_ERROR_TEXT: Final = 300

log = logging.getLogger("webhook.server")


class StartupError(Exception):
    """The server cannot start; the message is one line for the operator."""


# --------------------------------------------------------------------------- cluster facts


class FactsProvider(Protocol):
    """What the cluster knows about an object (Secrets, other StatefulSets), for /validate."""

    async def facts(
        self, obj: Mapping[str, Any], *, namespace: str, config: Config
    ) -> ClusterFacts | None: ...

    def ready(self) -> bool: ...


FactsFactory = Callable[[Config], Awaitable[FactsProvider]]


class NoClusterFacts:
    """No cluster: the cluster-backed rules are not checked, and we are always ready."""

    async def facts(
        self, obj: Mapping[str, Any], *, namespace: str, config: Config
    ) -> ClusterFacts | None:
        return None

    def ready(self) -> bool:
        return True


async def no_cluster(config: Config) -> FactsProvider:
    return NoClusterFacts()


def cluster_facts_factory(config: Config) -> FactsFactory:
    """`webhook.kube.create_provider` when a cluster is configured (kubeconfig, or running in a
    pod) and that module is installed; otherwise no cluster checks."""
    if not (config.kube.kubeconfig or os.environ.get("KUBERNETES_SERVICE_HOST")):
        return no_cluster
    try:
        kube = importlib.import_module("webhook.kube")
    except ModuleNotFoundError as exc:
        if exc.name != "webhook.kube":
            raise
        kube = None
    create = getattr(kube, "create_provider", None)
    if create is None:
        log.warning("cluster checks are off: webhook.kube.create_provider is not available")
        return no_cluster
    return cast(FactsFactory, create)


# --------------------------------------------------------------------------- state


def read_config(path: Path) -> Config:
    return configfile.read(path)


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
    shutting_down: bool = False
    in_flight: int = 0

    def not_ready(self) -> list[str]:
        reasons = []
        if self.shutting_down:
            reasons.append("shutting down")
        if self.tls is not None and not self.tls.loaded:
            reasons.append("serving certificate not loaded")
        if self.provider is None:
            reasons.append("cluster client not started")
        elif not self.provider.ready():
            reasons.append("cluster caches not synced")
        return reasons


STATE: Final = web.AppKey("state", ServerState)


# --------------------------------------------------------------------------- responses


def _one_line(text: str, limit: int = MAX_ERROR_TEXT) -> str:
    return review.short(" ".join(text.split()), limit)


def _dumps(doc: object) -> str:
    return json.dumps(doc, separators=(",", ":"))


def _error(status: int, message: str, *, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response(
        {"error": _one_line(message)}, status=status, headers=headers, dumps=_dumps
    )


def _reject(state: ServerState, status: int, kind: str, message: str) -> web.Response:
    state.metrics.errors.labels(kind).inc()
    # the message may quote values from the body (apiVersion, kind, operation): not logged
    log.info("rejected", extra={"fields": {"status": status, "kind": kind}})
    return _error(status, message)


class BadJson(ValueError):
    pass


def _no_constant(name: str) -> Any:
    raise BadJson(f"body is not valid JSON: {name} is not a JSON number")


def _load_json(body: bytes) -> Any:
    try:
        return json.loads(body, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise BadJson(
            f"body is not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except UnicodeDecodeError:
        raise BadJson("body is not UTF-8 JSON") from None
    except RecursionError:
        raise BadJson("body is not valid JSON: nested too deeply") from None


def internal_error_review(uid: str, exc: BaseException) -> review.AdmissionReview:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {
            "uid": uid,
            "allowed": False,
            "status": {
                "code": 500,
                "reason": "InternalError",
                "message": f"internal error in pf-webhook: {type(exc).__name__}",
            },
        },
    }


# --------------------------------------------------------------------------- handlers


async def _facts(
    state: ServerState, obj: Mapping[str, Any], *, namespace: str, config: Config
) -> ClusterFacts | None:
    provider = state.provider
    if provider is None:
        return None
    timeout = config.kube.timeout_seconds
    try:
        async with asyncio.timeout(timeout):
            return await provider.facts(obj, namespace=namespace, config=config)
    except TimeoutError:
        state.metrics.errors.labels("facts_timeout").inc()
        return ClusterFacts(unavailable=f"API server did not answer within {timeout:g}s")
    except Exception as exc:
        state.metrics.errors.labels("facts").inc()
        log.warning("cluster lookup failed", extra={"fields": {"error": type(exc).__name__}})
        return ClusterFacts(unavailable=f"cluster lookup failed ({type(exc).__name__})")


async def _decide(
    state: ServerState, parsed: review.AdmissionReview, mode: review.Mode
) -> tuple[review.AdmissionReview, review.Outcome]:
    config = state.config
    request = parsed["request"]
    facts = None
    if mode == "validate" and request["operation"] in ("CREATE", "UPDATE"):
        obj = _typed(request)
        if workload.is_function_workload(obj):  # other objects need no cluster lookups
            metadata = obj.get("metadata")
            namespace = request.get("namespace") or (
                metadata.get("namespace") if isinstance(metadata, Mapping) else None
            )
            facts = await _facts(state, obj, namespace=str(namespace or ""), config=config)
    return review.respond(parsed, config, mode=mode, facts=facts)


def _typed(request: review.AdmissionRequest) -> dict[str, Any]:
    """request.object with apiVersion/kind from request.kind when the object omits them."""
    kind: Mapping[str, Any] = request.get("kind") or {}
    group, version = kind.get("group") or "", kind.get("version") or ""
    defaults = {
        "apiVersion": f"{group}/{version}" if group else version,
        "kind": kind.get("kind") or "",
    }
    return {**{k: v for k, v in defaults.items() if v}, **request["object"]}


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
        state.metrics.latency.labels(mode).observe(time.perf_counter() - started)


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
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _reject(
            state, 413, "too_large", f"body is larger than the limit of {MAX_BODY} bytes"
        )
    except ConnectionError:  # the client went away mid-body; nobody reads this answer
        return _reject(state, 400, "disconnected", "connection lost while reading the body")
    try:
        doc = _load_json(body)
        if not isinstance(doc, Mapping):
            raise review.ReviewError(
                f"body must be a JSON object (an AdmissionReview), got {type(doc).__name__}"
            )
        parsed = review.parse(doc)
    except BadJson as exc:
        return _reject(state, 400, "bad_json", str(exc))
    except review.ReviewError as exc:
        return _reject(state, 400, "bad_review", str(exc))
    uid = parsed["request"]["uid"]
    try:
        answer, outcome = await _decide(state, parsed, mode)
        text = _dumps(answer)
    except Exception as exc:
        state.metrics.errors.labels("internal").inc()
        state.metrics.decisions.labels(mode, "error").inc()
        log.error(
            "internal error",
            extra={"fields": {"endpoint": mode, "uid": uid, "error": type(exc).__name__}},
        )
        text = _dumps(internal_error_review(uid, exc))
        # HTTP 500 (with the review as body, so the message is readable) makes the API server
        # apply the webhook's failurePolicy, as for any webhook failure.
        return web.Response(status=500, text=text, content_type="application/json")
    m = state.metrics
    m.decisions.labels(mode, outcome.decision).inc()
    for rule, action in outcome.rules:
        m.findings.labels(rule, action).inc()
    log.info("review", extra={"fields": _review_fields(mode, outcome, started)})
    return web.Response(text=text, content_type="application/json")


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
    return web.json_response({"status": "ok"}, dumps=_dumps)


async def readyz(request: web.Request) -> web.Response:
    reasons = request.app[STATE].not_ready()
    if reasons:
        return web.json_response({"ready": False, "reasons": reasons}, status=503, dumps=_dumps)
    return web.json_response({"ready": True}, dumps=_dumps)


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
            return _error(exc.status, message, headers=headers)
        except Exception as exc:
            state.metrics.errors.labels("internal").inc()
            log.error(
                "internal error",
                extra={"fields": {"path": request.path, "error": type(exc).__name__}},
            )
            return _error(500, f"internal error in pf-webhook: {type(exc).__name__}")

    return errors


# --------------------------------------------------------------------------- long-lived resources


async def _facts_provider(app: web.Application) -> AsyncIterator[None]:
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
        new = state.overrides(read_config(state.config_path))
    except ConfigError as exc:
        state.metrics.config_reloads.labels("error").inc()
        log.warning(
            "config not reloaded; keeping the previous config",
            extra={"fields": {"error": _one_line(str(exc))}},
        )
        return False
    old, state.config = state.config, new
    state.metrics.config_reloads.labels("ok").inc()
    fields: dict[str, Any] = {"path": str(state.config_path)}
    if new.server != old.server:
        fields["restart_needed_for"] = "webhook.server"
    log.info("config reloaded", extra={"fields": fields})
    return True


async def _watchers(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE]
    async with contextlib.AsyncExitStack() as stack:
        if state.tls is not None:
            await stack.enter_async_context(_background(watch_certs(state)))
        if state.config_path is not None:
            await stack.enter_async_context(_background(watch_config(state)))
        yield


# --------------------------------------------------------------------------- applications


def create_app(state: ServerState) -> web.Application:
    """The admission application (`POST /mutate`, `POST /validate`), served over HTTPS. It owns
    the long-lived resources: the facts provider and the certificate and config watchers."""
    app = web.Application(
        client_max_size=MAX_BODY,
        middlewares=[_errors_middleware("POST /mutate, POST /validate")],
    )
    app[STATE] = state
    app.router.add_post("/mutate", mutate)
    app.router.add_post("/validate", validate)
    app.cleanup_ctx.append(_facts_provider)
    app.cleanup_ctx.append(_watchers)
    return app


def create_ops_app(state: ServerState) -> web.Application:
    """Health, readiness and metrics, served over plain HTTP on the metrics port."""
    app = web.Application(middlewares=[_errors_middleware("GET /healthz, /readyz, /metrics")])
    app[STATE] = state
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


# --------------------------------------------------------------------------- logging


class JsonFormatter(logging.Formatter):
    """One JSON object per line. Exceptions appear as their type only: a traceback or an
    exception message may quote object contents."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            entry.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            entry.setdefault("error", record.exc_info[0].__name__)
        return json.dumps(entry, default=str)


def setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler])


# --------------------------------------------------------------------------- main


@dataclass(frozen=True)
class ServeOptions:
    host: str
    config_path: Path | None
    overrides: Callable[[Config], Config]
    drain_seconds: float


def _overrides(args: argparse.Namespace) -> Callable[[Config], Config]:
    """CLI flags over the config file's `webhook.server`/`webhook.kube`, re-applied on reload."""
    port, metrics_port = getattr(args, "port", None), getattr(args, "metrics_port", None)
    for flag, value in (("--port", port), ("--metrics-port", metrics_port)):
        if value is not None and not 0 <= value <= 65535:
            raise StartupError(f"{flag}: {value} is not a port number")
    server: dict[str, Any] = {
        "port": port,
        "metrics_port": metrics_port,
        "cert_dir": getattr(args, "cert_dir", None),
        "client_ca": getattr(args, "client_ca", None),
    }
    server = {k: v for k, v in server.items() if v is not None}
    kubeconfig = getattr(args, "kubeconfig", None)

    def apply(config: Config) -> Config:
        changes: dict[str, Any] = {}
        if server:
            changes["server"] = dataclasses.replace(config.server, **server)
        if kubeconfig is not None:
            changes["kube"] = dataclasses.replace(config.kube, kubeconfig=kubeconfig)
        return dataclasses.replace(config, **changes) if changes else config

    return apply


def _drain_seconds() -> float:
    raw = os.environ.get(DRAIN_ENV)
    if raw is None or raw.strip() == "":
        return DEFAULT_DRAIN_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 300:
        raise StartupError(f"{DRAIN_ENV}: expected seconds between 0 and 300, got {raw!r}")
    return value


def _url(scheme: str, host: str, port: int) -> str:
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def main(args: argparse.Namespace, *, facts_provider_factory: FactsFactory | None = None) -> int:
    """Run the server until SIGTERM/SIGINT; 0 after a clean drain, 2 if it cannot start."""
    setup_logging()
    try:
        config_arg = getattr(args, "config", None)
        config_path = Path(config_arg) if config_arg else None
        overrides = _overrides(args)
        config = overrides(read_config(config_path) if config_path else Config())
        options = ServeOptions(
            host=getattr(args, "host", None) or "0.0.0.0",
            config_path=config_path,
            overrides=overrides,
            drain_seconds=_drain_seconds(),
        )
        return asyncio.run(
            serve(
                config,
                options,
                facts_factory=facts_provider_factory or cluster_facts_factory(config),
            )
        )
    except (ConfigError, StartupError) as exc:
        print(f"error: {_one_line(str(exc), 1000)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a signal before our handlers were installed
        return 130


def _prepare_certs(config: Config) -> ServingCerts:
    cert_dir = Path(config.server.cert_dir)
    try:
        created = certs.ensure_serving_certs(cert_dir)
    except certs.CertError as exc:
        raise StartupError(f"--cert-dir {cert_dir}: {exc}") from None
    if created:
        print(
            f"pf-webhook: created a CA and serving certificate in {cert_dir}/; CA: {cert_dir / 'ca.crt'}",
            flush=True,
        )
    client_ca = Path(config.server.client_ca) if config.server.client_ca else None
    try:
        tls = ServingCerts(cert_dir, min_version=config.server.tls_min_version, client_ca=client_ca)
        summary = tls.load()
    except CertLoadError as exc:
        raise StartupError(str(exc)) from None
    log.info("serving certificate loaded", extra={"fields": {"certificate": summary}})
    return tls


async def _finish_in_flight(runner: web.AppRunner, state: ServerState) -> None:
    """Stop accepting connections, then wait for the reviews in progress.

    Waiting here rather than in `runner.cleanup()`: once that starts, aiohttp stops reading
    from open connections, so a review whose body is still arriving would never complete
    (aio-libs/aiohttp#2298).
    """
    for site in list(runner.sites):
        await site.stop()
    deadline = time.monotonic() + SHUTDOWN_TIMEOUT
    while state.in_flight and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    if state.in_flight:
        log.warning(
            "shutdown timeout: cancelling reviews in progress",
            extra={"fields": {"in_flight": state.in_flight}},
        )


async def serve(config: Config, options: ServeOptions, *, facts_factory: FactsFactory) -> int:
    tls = _prepare_certs(config)
    state = ServerState(
        config=config,
        config_path=options.config_path,
        overrides=options.overrides,
        tls=tls,
        facts_factory=facts_factory,
    )
    admission = web.AppRunner(create_app(state), access_log=None, shutdown_timeout=2.0)
    ops = web.AppRunner(create_ops_app(state), access_log=None, shutdown_timeout=1.0)
    loop = asyncio.get_running_loop()
    stop, hurry = asyncio.Event(), asyncio.Event()

    def on_signal() -> None:
        (hurry if stop.is_set() else stop).set()

    try:
        try:
            await admission.setup()
        except Exception as exc:
            raise StartupError(f"cluster client: {reason(exc)}") from None
        await ops.setup()
        sites = (
            web.TCPSite(admission, options.host, config.server.port, ssl_context=tls.context),
            web.TCPSite(ops, options.host, config.server.metrics_port),
        )
        for site, port in zip(sites, (config.server.port, config.server.metrics_port), strict=True):
            try:
                await site.start()
            except OSError as exc:
                raise StartupError(
                    f"cannot listen on {options.host}:{port}: {reason(exc)}"
                ) from None
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        https = _url("https", options.host, admission.addresses[0][1])
        http = _url("http", options.host, ops.addresses[0][1])
        ca = Path(config.server.cert_dir) / "ca.crt"
        print(
            f"pf-webhook serving {https} (/mutate, /validate), health and metrics on {http}; "
            f"CA: {ca if ca.is_file() else 'not in ' + str(ca.parent)}",
            flush=True,
        )
        log.info("serving", extra={"fields": {"https": https, "http": http}})
        await stop.wait()
        state.shutting_down = True
        log.info(
            "shutting down: not ready; draining",
            extra={"fields": {"seconds": options.drain_seconds}},
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(hurry.wait(), options.drain_seconds)
    finally:
        state.shutting_down = True
        await _finish_in_flight(admission, state)
        await admission.cleanup()  # close idle connections, release the long-lived resources
        await ops.cleanup()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    log.info("stopped")
    return 0
