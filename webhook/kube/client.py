"""Shell: one way to reach the cluster (kubeconfig or in-cluster) and to read API errors, for
every command that talks to the API server (serve's caches, `certs inject`, `audit`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from kubernetes_asyncio import client
from kubernetes_asyncio import config as kube_config
from kubernetes_asyncio.client.exceptions import ApiException


class KubeClientError(RuntimeError):
    """The client cannot be configured; one line naming the source."""


async def api_client(kubeconfig: str | None) -> client.ApiClient | None:
    """A client for `kubeconfig` (a path, or several joined like $KUBECONFIG), else for the pod's
    own service account when running in a pod, else None (no cluster configured)."""
    configuration = client.Configuration()
    if kubeconfig and not any(
        Path(p).expanduser().is_file() for p in kubeconfig.split(os.pathsep) if p
    ):
        raise KubeClientError(f"kubeconfig {kubeconfig} not found")
    try:
        if kubeconfig:
            await kube_config.load_kube_config(
                config_file=kubeconfig, client_configuration=configuration
            )
        elif os.environ.get("KUBERNETES_SERVICE_HOST"):
            kube_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            return None
    except (kube_config.ConfigException, OSError, ValueError, TypeError, KeyError) as exc:
        where = f"kubeconfig {kubeconfig}" if kubeconfig else "the in-cluster config"
        raise KubeClientError(
            f"cannot load Kubernetes client configuration from {where}: {exc}"
        ) from None
    return client.ApiClient(configuration=configuration)


def api_message(exc: Exception) -> str:
    """The API server's own one-line message from an ApiException (its Status `message`)."""
    body = getattr(exc, "body", None)
    if isinstance(body, bytes | bytearray):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str) and body:
        try:
            parsed = json.loads(body)
        except ValueError:
            return " ".join(body.split())[:300]
        if isinstance(parsed, dict) and parsed.get("message"):
            return " ".join(str(parsed["message"]).split())
    return " ".join(str(getattr(exc, "reason", None) or type(exc).__name__).split())


def error_text(exc: BaseException) -> str:
    """One line for a log record: an API error's status and the server's message, else the error."""
    if isinstance(exc, ApiException):
        return f"HTTP {exc.status}: {api_message(exc)}"
    return str(exc) or type(exc).__name__
