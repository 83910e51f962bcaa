"""Shell: how ``pf-webhook audit`` reaches the Kubernetes API server and reads JSON documents.

The client comes from a kubeconfig (the flag, ``$KUBECONFIG``, ``~/.kube/config``) or the pod's
service account; every failure of a call (forbidden, unreachable, timed out, not JSON) becomes
one ``AuditError`` line naming what was being done and the host, never a traceback.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from webhook.audit.text import AuditError

HTTP_TIMEOUT = 10.0
MAX_DOCUMENT_BYTES = 1 << 20


def json_object(body: bytes | str, what: str) -> dict[str, Any]:
    """``body`` as a JSON object; AuditError naming ``what`` when it is not one."""
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise AuditError(f"{what}: not JSON") from None
    if not isinstance(value, dict):
        raise AuditError(f"{what}: a JSON {type(value).__name__}, not an object")
    return value


def kubeconfig_source(kubeconfig: str | None) -> str | None:
    """The kubeconfig to use: the flag, else $KUBECONFIG, else ~/.kube/config unless in a pod."""
    if kubeconfig:
        return kubeconfig
    if os.environ.get("KUBECONFIG"):
        return os.environ["KUBECONFIG"]
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return None
    default = Path.home() / ".kube" / "config"
    return str(default) if default.is_file() else None


async def client(kubeconfig: str | None) -> Any:
    """An API client (use it with ``async with``); AuditError when there is no usable cluster."""
    from webhook.kube import client as kube_client

    source = kubeconfig_source(kubeconfig)
    try:
        api = await kube_client.api_client(source)
    except kube_client.KubeClientError as exc:
        raise AuditError(str(exc)) from None
    except Exception as exc:  # the loader raises a variety of types for broken files
        raise AuditError(
            f"cannot load Kubernetes client configuration from {source}: {type(exc).__name__}: {exc}"
        ) from None
    if api is None:
        raise AuditError("no cluster: pass --kubeconfig, set $KUBECONFIG, or run in a pod")
    return api


async def call(awaitable: Any, *, what: str, host: str) -> Any:
    """The result of one API call; a failure is an AuditError saying ``what`` failed on ``host``."""
    import aiohttp
    from kubernetes_asyncio.client.exceptions import ApiException

    from webhook.kube.client import api_message

    try:
        return await awaitable
    except ApiException as exc:
        status = getattr(exc, "status", None)
        message = api_message(exc)
        if status in (401, 403):
            raise AuditError(f"{what}: forbidden ({status}): {message}") from None
        raise AuditError(f"{what}: HTTP {status}: {message}") from None
    except TimeoutError:
        raise AuditError(f"{what}: timed out talking to {host}") from None
    except (aiohttp.ClientError, OSError) as exc:
        raise AuditError(
            f"{what}: cannot reach API server {host}: {exc or type(exc).__name__}"
        ) from None


async def get_json(api: Any, path: str, *, what: str, host: str) -> dict[str, Any]:
    """The JSON object at ``path`` of the API server (a non-resource URL such as a JWKS)."""
    # call_api with "object" returns the decoded JSON as is (the generated methods declare "str"
    # and would turn the decoded document into its Python repr).
    value = await call(
        api.call_api(
            path,
            "GET",
            header_params={"Accept": "application/json, application/jwk-set+json"},
            response_types_map={200: "object"},
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
            _request_timeout=HTTP_TIMEOUT,
        ),
        what=what,
        host=host,
    )
    if isinstance(value, str | bytes):
        return json_object(value, f"{what} ({host})")
    if not isinstance(value, dict):
        raise AuditError(f"{what} ({host}): a JSON {type(value).__name__}, not an object")
    return value


async def issuer_documents(api: Any, host: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The cluster's service-account issuer discovery document and its key set."""
    doc = await get_json(
        api, "/.well-known/openid-configuration", what="service account issuer discovery", host=host
    )
    keyset = await get_json(api, "/openid/v1/jwks", what="service account issuer keys", host=host)
    return doc, keyset
