"""Shell: `pf-webhook serve`'s lifecycle: start both listeners, run until SIGTERM, drain, stop.

Contract: `main(args)` returns 0 after a clean drain and 2, with one line on stderr, when the
server cannot start (bad config or flags, no certificate, a busy port, a failing cluster
client). On SIGTERM the server turns not-ready, keeps answering for the drain delay
(`PF_WEBHOOK_SHUTDOWN_DELAY`), then stops listening and finishes the reviews in progress.
What each request gets is `webhook.server.handlers`' business; the long-lived resources are
`webhook.server.lifecycle`'s.

The cluster (for the cluster-backed rules and ``--manage-certs``) is the one every command
uses (`webhook.kube.client`): ``--kubeconfig`` or the config's ``webhook.kube.kubeconfig``,
else ``$KUBECONFIG``, else ``~/.kube/config``, else the pod's service account, else none.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime
import logging
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from aiohttp import web

from webhook import configfile
from webhook.certs import cert_secret, pki, rotation
from webhook.core import naming
from webhook.core.config import Config
from webhook.core.errors import UserError
from webhook.kube.client import has_cluster, kubeconfig_path
from webhook.server import facts, handlers, listener, logs, managed_certs, wire
from webhook.server.metrics import Metrics
from webhook.server.state import ServerState
from webhook.server.tls import CertLoadError, ServingCerts, reason

SHUTDOWN_TIMEOUT: Final = 10.0
DEFAULT_DRAIN_SECONDS: Final = 2.0
DRAIN_ENV: Final = "PF_WEBHOOK_SHUTDOWN_DELAY"

log = logging.getLogger("webhook.server")


class StartupError(UserError):
    """The server cannot start; the message is one line for the operator."""


@dataclass(frozen=True)
class ServeOptions:
    host: str
    config_path: Path | None
    overrides: Callable[[Config], Config]
    drain_seconds: float
    managed: managed_certs.Settings | None = None


SA_NAMESPACE_FILE: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def _managed(args: argparse.Namespace, config: Config) -> managed_certs.Settings | None:
    """--manage-certs and its flags, checked; None without --manage-certs."""
    if not getattr(args, "manage_certs", False):
        return None
    if not has_cluster(config.kube.kubeconfig):
        raise StartupError(
            "--manage-certs needs a cluster: pass --kubeconfig, set $KUBECONFIG, or run in a pod"
        )
    namespace = getattr(args, "namespace", None) or os.environ.get("POD_NAMESPACE")
    if not namespace:
        try:
            namespace = SA_NAMESPACE_FILE.read_text().strip()
        except OSError:
            raise StartupError(
                "--manage-certs: pass --namespace (or set $POD_NAMESPACE): the webhook's namespace"
            ) from None
    duration = args.lease_duration
    if not 1 <= duration <= 3600:
        raise StartupError(f"--lease-duration: {duration:g} is not between 1 and 3600 seconds")
    if not 0 <= args.ca_propagation <= 86400:
        raise StartupError(f"--ca-propagation: {args.ca_propagation:g} is not between 0 and 86400")
    hosts, ips = cert_secret.split_sans(args.cert_san)
    identity = os.environ.get("POD_NAME") or socket.gethostname()
    return managed_certs.Settings(
        namespace=namespace,
        secret=args.cert_secret,
        lease=args.lease,
        identity=f"{identity}_{secrets.token_hex(4)}",
        cert=cert_secret.Identity(service=args.service, namespace=namespace, hosts=hosts, ips=ips),
        mutating=args.mutating,
        validating=args.validating,
        lease_duration=duration,
        schedule=rotation.Schedule(propagation=datetime.timedelta(seconds=args.ca_propagation)),
        timeout=max(config.kube.timeout_seconds, 5.0),
    )


def _overrides(args: argparse.Namespace) -> Callable[[Config], Config]:
    """CLI flags over the config file's `webhook.server`/`webhook.kube`, and the kubeconfig the
    policy picks (`webhook.kube.client.kubeconfig_path`); re-applied on every reload."""
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
    kube: dict[str, Any] = {}
    if getattr(args, "kubeconfig", None) is not None:
        kube["kubeconfig"] = args.kubeconfig
    namespaces = [
        ns.strip()
        for arg in getattr(args, "function_namespace", None) or ()
        for ns in arg.split(",")
    ]
    for ns in namespaces:
        if not naming.is_dns1123_label(ns):
            raise StartupError(f"--function-namespace: {ns!r} is not a namespace name")
    if namespaces:
        kube["function_namespaces"] = tuple(namespaces)

    def apply(config: Config) -> Config:
        changes: dict[str, Any] = {}
        if server:
            changes["server"] = dataclasses.replace(config.server, **server)
        kubeconfig = kubeconfig_path(kube.get("kubeconfig") or config.kube.kubeconfig)
        if kube or kubeconfig != config.kube.kubeconfig:
            changes["kube"] = dataclasses.replace(config.kube, **{**kube, "kubeconfig": kubeconfig})
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


def main(
    args: argparse.Namespace, *, facts_provider_factory: facts.FactsFactory | None = None
) -> int:
    """Run the server until SIGTERM/SIGINT; 0 after a clean drain, 2 if it cannot start."""
    logs.setup_logging()
    try:
        config_arg = getattr(args, "config", None)
        config_path = Path(config_arg) if config_arg else None
        overrides = _overrides(args)
        config = overrides(configfile.read(config_path) if config_path else Config())
        options = ServeOptions(
            host=getattr(args, "host", None) or "0.0.0.0",
            config_path=config_path,
            overrides=overrides,
            drain_seconds=_drain_seconds(),
            managed=_managed(args, config),
        )
        return asyncio.run(
            serve(
                config,
                options,
                facts_factory=facts_provider_factory or facts.cluster_facts_factory(config),
            )
        )
    except UserError as exc:  # a config, a flag, a certificate, the cluster: one line, exit 2
        print(f"error: {wire.one_line(str(exc), 1000)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a signal before our handlers were installed
        return 130


def _prepare_certs(config: Config, metrics: Metrics, *, managed: bool) -> ServingCerts:
    client_ca = Path(config.server.client_ca) if config.server.client_ca else None
    if managed:  # the pair arrives from the certificate Secret once the watch has it
        try:
            return ServingCerts(
                None,
                min_version=config.server.tls_min_version,
                client_ca=client_ca,
                metrics=metrics,
            )
        except CertLoadError as exc:
            raise StartupError(str(exc)) from None
    cert_dir = Path(config.server.cert_dir)
    try:
        created = pki.ensure_serving_certs(cert_dir)
    except pki.CertError as exc:
        raise StartupError(f"--cert-dir {cert_dir}: {exc}") from None
    if created:
        print(
            f"pf-webhook: created a CA and serving certificate in {cert_dir}/; CA: {cert_dir / 'ca.crt'}",
            flush=True,
        )
    try:
        tls = ServingCerts(
            cert_dir,
            min_version=config.server.tls_min_version,
            client_ca=client_ca,
            metrics=metrics,
        )
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


async def serve(config: Config, options: ServeOptions, *, facts_factory: facts.FactsFactory) -> int:
    metrics = Metrics()
    tls = _prepare_certs(config, metrics, managed=options.managed is not None)
    limits = config.server.limits
    state = ServerState(
        metrics=metrics,
        managed=options.managed,
        config=config,
        config_path=options.config_path,
        overrides=options.overrides,
        tls=tls,
        facts_factory=facts_factory,
        limits=limits,
    )
    state.connections = listener.Connections(limits, state.metrics)
    logs.throttle_http_errors(state.metrics.http_errors)
    http_options = listener.runner_options(limits)
    admission = web.AppRunner(
        handlers.create_app(state), access_log=None, shutdown_timeout=2.0, **http_options
    )
    ops = web.AppRunner(
        handlers.create_ops_app(state), access_log=None, shutdown_timeout=1.0, **http_options
    )
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
            listener.BoundedTLSSite(
                admission,
                options.host,
                config.server.port,
                ssl_context=tls.context,
                connections=state.connections,
            ),
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
        m = options.managed
        where = (
            f"Secret {m.namespace}/{m.secret} (ca-bundle.crt)"
            if m is not None
            else ca
            if ca.is_file()
            else "not in " + str(ca.parent)
        )
        print(
            f"pf-webhook serving {https} (/mutate, /validate), health and metrics on {http}; "
            f"CA: {where}",
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
