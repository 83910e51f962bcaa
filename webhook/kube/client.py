"""Shell: one way to reach the cluster, and one way to read its errors, for every command that
talks to the API server (serve's caches and certificate upkeep, `certs inject`, `audit`).

Which cluster, the same for every command: the ``--kubeconfig`` flag (for ``serve``, also the
config's ``webhook.kube.kubeconfig``), else ``$KUBECONFIG``, else ``~/.kube/config`` when it
exists, else the pod's own service account when running in a pod, else none.

A failed call is one `KubeError` line naming what was being done: the API server's status and
its own message, or that it timed out, or that the host cannot be reached.

kubernetes-asyncio (a second and more to import) is imported only when a client is made or an
error read, so a command that never reaches a cluster does not pay for it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from webhook.core.errors import UserError, one_line

if TYPE_CHECKING:
    from kubernetes_asyncio.client import ApiClient
    from kubernetes_asyncio.client.exceptions import ApiException

T = TypeVar("T")

NO_CLUSTER = "no cluster: pass --kubeconfig, set $KUBECONFIG, or run in a pod"


class KubeError(UserError, RuntimeError):
    """The cluster could not be configured or a call to its API server failed; one line.

    `status` is the HTTP status when the API server answered (None otherwise) and
    `server_message` its own one-line message, for a caller that decides on them."""

    def __init__(
        self, message: str, *, status: int | None = None, server_message: str = ""
    ) -> None:
        super().__init__(message)
        self.status = status
        self.server_message = server_message


# --------------------------------------------------------------------------- which cluster


def in_cluster() -> bool:
    """Running in a pod (the service account's in-cluster config applies)."""
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


def kubeconfig_path(flag: str | None) -> str | None:
    """The kubeconfig to use: `flag`, else $KUBECONFIG, else ~/.kube/config when it exists;
    None when there is none (then the in-cluster config, if in a pod)."""
    if flag:
        return flag
    if os.environ.get("KUBECONFIG"):
        return os.environ["KUBECONFIG"]
    default = Path.home() / ".kube" / "config"
    return str(default) if default.is_file() else None


def has_cluster(flag: str | None) -> bool:
    """Whether `api_client(flag)` would configure a cluster (it may still fail to load)."""
    return kubeconfig_path(flag) is not None or in_cluster()


async def api_client(flag: str | None) -> ApiClient | None:
    """A client for the cluster the policy above picks for `flag`; None when there is none.
    A kubeconfig (a path, or several joined like $KUBECONFIG) that is missing or does not
    load is a `KubeError` naming it."""
    from kubernetes_asyncio import client
    from kubernetes_asyncio import config as kube_config

    kubeconfig = kubeconfig_path(flag)
    configuration = client.Configuration()
    if kubeconfig and not any(
        Path(p).expanduser().is_file() for p in kubeconfig.split(os.pathsep) if p
    ):
        raise KubeError(f"kubeconfig {kubeconfig} not found")
    try:
        if kubeconfig:
            await kube_config.load_kube_config(
                config_file=kubeconfig, client_configuration=configuration
            )
        elif in_cluster():
            kube_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            return None
    except Exception as exc:  # the loader raises a variety of types for broken files
        where = f"kubeconfig {kubeconfig}" if kubeconfig else "the in-cluster config"
        raise KubeError(
            f"cannot load Kubernetes client configuration from {where}: {exc or type(exc).__name__}"
        ) from None
    return client.ApiClient(configuration=configuration)


async def connect(flag: str | None) -> ApiClient:
    """`api_client(flag)` for a command that needs a cluster: `KubeError` when there is none."""
    api = await api_client(flag)
    if api is None:
        raise KubeError(NO_CLUSTER)
    return api


def host_of(api: ApiClient) -> str:
    """The API server's address, for messages."""
    return str(getattr(api.configuration, "host", None) or "?")


# --------------------------------------------------------------------------- its errors


def api_message(exc: ApiException) -> str:
    """The API server's own one-line message from an ApiException (its Status `message`)."""
    body = getattr(exc, "body", None)
    if isinstance(body, bytes | bytearray):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str) and body:
        try:
            parsed = json.loads(body)
        except ValueError:
            return one_line(body)[:300]
        if isinstance(parsed, dict) and parsed.get("message"):
            return one_line(parsed["message"])
    return one_line(getattr(exc, "reason", None) or type(exc).__name__)


def api_error(exc: ApiException, what: str, *, quote_server: bool = True) -> KubeError:
    """The `KubeError` for an answer of the API server other than success.

    With `quote_server` the message carries the server's own words (forbidden, not found,
    the status); without, only the status and its reason phrase (for text shown to someone
    other than the operator, such as an admission warning)."""
    status = getattr(exc, "status", None)
    message = api_message(exc)
    if not quote_server:
        text = f"{what}: HTTP {status} {getattr(exc, 'reason', None) or ''}"
    elif status in (401, 403):
        text = f"{what}: forbidden ({status}): {message}"
    elif status == 404:
        text = f"{what}: not found"
    else:
        text = f"{what}: HTTP {status}: {message}"
    return KubeError(text, status=status, server_message=message)


async def call(
    awaitable: Awaitable[T], *, what: str, host: str | None = None, quote_server: bool = True
) -> T:
    """The result of one API call; any failure is a `KubeError` saying `what` failed: the API
    server's answer (see `api_error`), a timeout, or a host that cannot be reached."""
    import aiohttp
    from kubernetes_asyncio.client.exceptions import ApiException

    where = f"API server {host}" if host else "the API server"
    try:
        return await awaitable
    except ApiException as exc:
        raise api_error(exc, what, quote_server=quote_server) from None
    except TimeoutError:
        raise KubeError(f"{what}: timed out talking to {where}") from None
    except (aiohttp.ClientError, OSError) as exc:
        detail = (str(exc) or type(exc).__name__) if quote_server else type(exc).__name__
        raise KubeError(f"{what}: cannot reach {where}: {detail}") from None


def error_text(exc: BaseException) -> str:
    """One line for a log record: an API error's status and the server's message, else the error."""
    from kubernetes_asyncio.client.exceptions import ApiException

    if isinstance(exc, ApiException):
        return f"HTTP {exc.status}: {api_message(exc)}"
    return one_line(exc) or type(exc).__name__
