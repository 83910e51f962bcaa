"""Shell: the self-managed certificate Secret's contents, read into a `rotation.State` and
rewritten for each `rotation` step.

Keys: `ca.crt` (the signing CA), `ca.key`, `ca-bundle.crt` (every CA the webhook
configurations must trust: the signing CA first, then older ones until they expire),
`tls.crt`, `tls.key`. Annotations: `pf-webhook/published-bundle` (sha256 of the bundle that
both webhook configurations hold) with `pf-webhook/published-at`, and `pf-webhook/rotate`
(`leaf` or `ca`: an operator's request, cleared once done).
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from webhook.certs import pki, rotation

PUBLISHED_BUNDLE: Final = "pf-webhook/published-bundle"
PUBLISHED_AT: Final = "pf-webhook/published-at"
ROTATE: Final = "pf-webhook/rotate"
KEYS: Final = ("ca.crt", "ca.key", "ca-bundle.crt", "tls.crt", "tls.key")


@dataclass(frozen=True)
class Identity:
    """The names the serving certificate must carry."""

    service: str
    namespace: str
    hosts: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()

    def names(self) -> frozenset[str]:
        dns = [
            self.service,
            f"{self.service}.{self.namespace}",
            f"{self.service}.{self.namespace}.svc",
            f"{self.service}.{self.namespace}.svc.cluster.local",
            *self.hosts,
        ]
        return frozenset(dns) | frozenset(str(ipaddress.ip_address(i)) for i in self.ips)


def split_sans(values: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """`--cert-san` values as (DNS names, IP addresses)."""
    hosts, ips = [], []
    for value in values:
        try:
            ips.append(str(ipaddress.ip_address(value)))
        except ValueError:
            hosts.append(value)
    return tuple(hosts), tuple(ips)


def bundle_digest(bundle: bytes) -> str:
    return hashlib.sha256(bundle).hexdigest()


def _ski(cert: x509.Certificate) -> bytes:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return b""


def _aki(cert: x509.Certificate) -> bytes:
    try:
        value = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except x509.ExtensionNotFound:
        return b""
    return value.key_identifier or b""


def _names(cert: x509.Certificate) -> frozenset[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return frozenset()
    return frozenset(san.get_values_for_type(x509.DNSName)) | frozenset(
        str(a) for a in san.get_values_for_type(x509.IPAddress)
    )


def _spki(public_key: object) -> bytes:
    der: bytes = public_key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der


def _matches(cert_pem: bytes, key_pem: bytes) -> x509.Certificate | None:
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        return None
    return cert if _spki(cert.public_key()) == _spki(key.public_key()) else None


def info(cert: x509.Certificate, key_id: bytes) -> rotation.Cert:
    return rotation.Cert(
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        key_id=key_id,
        names=_names(cert),
    )


def bundle_certs(pem: bytes) -> list[x509.Certificate]:
    try:
        return list(x509.load_pem_x509_certificates(pem)) if pem.strip() else []
    except ValueError:
        return []


def _time(value: str | None) -> datetime.datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def read_state(
    data: Mapping[str, bytes] | None,
    annotations: Mapping[str, str] | None,
    identity: Identity,
) -> rotation.State:
    """What `rotation.plan` needs, from the Secret's decoded data (None: no Secret)."""
    if data is None:
        return rotation.State(exists=False, wanted_names=identity.names())
    annotations = annotations or {}
    ca_cert = _matches(data.get("ca.crt", b""), data.get("ca.key", b""))
    leaf_cert = _matches(data.get("tls.crt", b""), data.get("tls.key", b""))
    bundle_pem = data.get("ca-bundle.crt", b"")
    bundle = tuple(info(c, _ski(c)) for c in bundle_certs(bundle_pem))
    published = None
    if bundle_pem and annotations.get(PUBLISHED_BUNDLE) == bundle_digest(bundle_pem):
        published = _time(annotations.get(PUBLISHED_AT))
    requested = annotations.get(ROTATE)
    return rotation.State(
        exists=True,
        ca=info(ca_cert, _ski(ca_cert)) if ca_cert is not None else None,
        bundle=bundle,
        leaf=info(leaf_cert, _aki(leaf_cert)) if leaf_cert is not None else None,
        published_at=published,
        requested=requested if requested in ("leaf", "ca") else None,  # type: ignore[arg-type]
        wanted_names=identity.names(),
    )


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def apply(
    action: rotation.Action,
    data: Mapping[str, bytes] | None,
    *,
    identity: Identity,
    schedule: rotation.Schedule,
    now: datetime.datetime,
) -> dict[str, bytes]:
    """The Secret's new data after `action` (create, rotate-ca, renew-leaf, prune-bundle)."""
    out = {k: v for k, v in (data or {}).items() if k in KEYS}

    def leaf() -> None:
        out["tls.crt"], out["tls.key"] = pki.issue_leaf(
            ca_cert_pem=out["ca.crt"],
            ca_key_pem=out["ca.key"],
            now=now,
            validity=schedule.leaf_validity,
            service=identity.service,
            namespace=identity.namespace,
            hosts=identity.hosts,
            ips=identity.ips,
        )

    def unexpired(pem: bytes) -> list[x509.Certificate]:
        return [c for c in bundle_certs(pem) if c.not_valid_after_utc > now]

    if action == "create":
        out["ca.crt"], out["ca.key"] = pki.issue_ca(now=now, validity=schedule.ca_validity)
        out["ca-bundle.crt"] = out["ca.crt"]
        leaf()
    elif action == "rotate-ca":
        old = unexpired(out.get("ca-bundle.crt", b""))
        out["ca.crt"], out["ca.key"] = pki.issue_ca(now=now, validity=schedule.ca_validity)
        out["ca-bundle.crt"] = out["ca.crt"] + b"".join(_pem(c) for c in old)
    elif action == "renew-leaf":
        leaf()
    elif action == "prune-bundle":
        out["ca-bundle.crt"] = b"".join(_pem(c) for c in unexpired(out["ca-bundle.crt"]))
    return out
