"""Shell: the keys a service-account token is verified with, and where they came from.

Three sources: a JWKS file or URL (``--jwks``), the issuer's OIDC discovery document
(``--issuer``: ``<issuer>/.well-known/openid-configuration`` → ``jwks_uri``), or the cluster of a
kubeconfig (``/.well-known/openid-configuration`` and ``/openid/v1/jwks`` with its credentials).
Anything odd about a source that does not stop verification (plain HTTP, a different issuer)
is kept as a note for the report; anything that does is an ``AuditError``.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from webhook.audit import documents
from webhook.audit.errors import AuditError
from webhook.core.errors import printable


@dataclass(frozen=True)
class KeySource:
    """A JWKS document, where it came from, and the issuer it belongs to (when known)."""

    jwks: Mapping[str, Any]
    origin: str
    issuer: str | None = None
    notes: tuple[str, ...] = ()
    document_issuer: str | None = None  # the `issuer` of the discovery document read, if any
    api_host: str | None = None  # the API server the keys came from (--kubeconfig)


def is_url(value: str) -> bool:
    """An http(s) URL, not a file name."""
    return value.startswith(("https://", "http://"))


def _ssl_context(ca_file: str | None) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise AuditError(f"--ca-file {ca_file}: cannot load: {reason}") from None


async def _get_json(session: Any, url: str, what: str) -> dict[str, Any]:
    import aiohttp

    try:
        async with session.get(url, headers={"Accept": "application/json"}) as resp:
            if resp.status != 200:
                raise AuditError(f"{what} {url}: HTTP {resp.status} {resp.reason or ''}")
            body = await resp.content.read(documents.MAX_DOCUMENT_BYTES + 1)
    except AuditError:
        raise
    except TimeoutError:
        raise AuditError(f"cannot fetch {what} {url}: timed out") from None
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        raise AuditError(f"cannot fetch {what} {url}: {exc or type(exc).__name__}") from None
    if len(body) > documents.MAX_DOCUMENT_BYTES:
        raise AuditError(f"{what} {url}: larger than {documents.MAX_DOCUMENT_BYTES} bytes")
    return documents.json_object(body, f"{what} {url}")


def _discovery_url(issuer: str) -> str:
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


async def keys_from_urls(*, issuer: str | None, jwks: str | None, ca_file: str | None) -> KeySource:
    """Keys from a JWKS file or URL, or from the issuer's OIDC discovery document."""
    import aiohttp

    if jwks is not None and not is_url(jwks):
        try:
            with Path(jwks).open("rb") as handle:
                data = handle.read(documents.MAX_DOCUMENT_BYTES + 1)
        except OSError as exc:
            raise AuditError(f"--jwks {jwks}: cannot read: {exc.strerror}") from None
        if len(data) > documents.MAX_DOCUMENT_BYTES:
            raise AuditError(f"--jwks {jwks}: larger than {documents.MAX_DOCUMENT_BYTES} bytes")
        return KeySource(
            jwks=documents.json_object(data, f"--jwks {jwks}"), origin=jwks, issuer=issuer
        )
    context = _ssl_context(ca_file)
    notes: list[str] = []
    document_issuer: str | None = None
    timeout = aiohttp.ClientTimeout(total=documents.HTTP_TIMEOUT)
    async with aiohttp.ClientSession(
        timeout=timeout, connector=aiohttp.TCPConnector(ssl=context)
    ) as session:
        if jwks is not None:
            url = jwks
        elif issuer is None:
            raise AuditError("no key source: give --jwks, --issuer or --kubeconfig")
        else:
            doc = await _get_json(session, _discovery_url(issuer), "OIDC discovery document")
            found = doc.get("jwks_uri")
            if not isinstance(found, str) or not is_url(found):
                raise AuditError(
                    f"OIDC discovery document {_discovery_url(issuer)}: no usable jwks_uri"
                )
            url = found
            if isinstance(doc.get("issuer"), str):
                document_issuer = doc["issuer"]
            if doc.get("issuer") != issuer:
                notes.append(
                    f"the discovery document names issuer {printable(doc.get('issuer'))}, not {issuer}"
                )
        if url.startswith("http://"):
            notes.append(f"keys fetched over plain HTTP from {url}")
        keyset = await _get_json(session, url, "JWKS")
    return KeySource(
        jwks=keyset,
        origin=url,
        issuer=issuer,
        notes=tuple(notes),
        document_issuer=document_issuer,
    )


async def keys_from_cluster(kubeconfig: str | None, *, issuer: str | None = None) -> KeySource:
    """The cluster's issuer and keys, with the kubeconfig's credentials."""
    from webhook.kube.client import connect, host_of

    api = await connect(kubeconfig)
    async with api:
        host = host_of(api)
        doc, keyset = await documents.issuer_documents(api, host)
    cluster_issuer = doc.get("issuer")
    if not isinstance(cluster_issuer, str) or not cluster_issuer:
        raise AuditError(f"service account issuer discovery ({host}): no issuer")
    notes: list[str] = []
    if issuer is not None and issuer != cluster_issuer:
        notes.append(f"the cluster's issuer is {cluster_issuer}, expected {issuer}")
    return KeySource(
        jwks=keyset,
        origin=f"{host}/openid/v1/jwks",
        issuer=issuer or cluster_issuer,
        notes=tuple(notes),
        document_issuer=cluster_issuer,
        api_host=host,
    )
