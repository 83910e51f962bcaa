"""Shell: the JSON documents ``pf-webhook audit`` reads (from the API server or a URL).

The client and the failures of a call (forbidden, unreachable, timed out) are
`webhook.kube.client`'s: one `KubeError` line naming what was being done and the host. A
document that is not a JSON object is an ``AuditError`` naming it. Never a traceback.
"""

from __future__ import annotations

import json
from typing import Any

from webhook.audit.errors import AuditError
from webhook.kube.client import call

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
