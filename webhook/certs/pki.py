"""Shell: CA and serving certificates: issued, written to a directory, read back.

Everything here is done with the ``cryptography`` library (no ``openssl`` subprocess):

* :func:`generate` writes ``ca.crt``/``ca.key`` (a self-signed ECDSA P-256 CA, reused on later
  runs so rotating the serving certificate never changes the caBundle) and ``tls.crt``/``tls.key``
  (an ECDSA P-256 serving certificate for the in-cluster Service names) into a directory. Every
  file is written atomically (temp file in the same directory, then ``os.replace``), so a server
  watching the files never reads a half-written one.
* :func:`ensure_serving_certs` is what ``pf-webhook serve`` calls so ``make run`` works on a fresh
  clone.
* :func:`issue_ca` and :func:`issue_leaf` make the pairs the self-managed certificate Secret
  holds (``webhook.certs.cert_secret``); :func:`read_ca_bundle` and :func:`pair_summary` read them.

The caBundle injection is ``webhook.certs.inject``; the ``certs`` command line
``webhook.certs.cli``.

Private keys are never printed or logged, and errors surface as :class:`CertError` with a
one-line message.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import secrets
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from webhook.core.errors import UserError

__all__ = [
    "CA_COMMON_NAME",
    "CertError",
    "CertPaths",
    "ensure_serving_certs",
    "generate",
    "issue_ca",
    "issue_leaf",
    "load_pair_summary",
    "pair_summary",
    "read_ca_bundle",
]

CA_COMMON_NAME = "pf-webhook CA"
CA_MIN_DAYS = 3650
"""A CA created by :func:`generate` lives at least this long, so it outlives many rotations."""

DEV_SERVICE = "pf-webhook"
DEV_NAMESPACE = "pf-webhook"
DEV_HOSTS: tuple[str, ...] = ("localhost",)
DEV_IPS: tuple[str, ...] = ("127.0.0.1", "::1")

_CLOCK_SKEW = datetime.timedelta(minutes=5)
_CERT_MODE = 0o644
_KEY_MODE = 0o600


class CertError(UserError, ValueError):
    """A certificate could not be created, read or installed; the message is one line."""


@dataclass(frozen=True)
class CertPaths:
    """Where :func:`generate` wrote the CA and the serving pair."""

    ca_cert: Path
    ca_key: Path
    tls_cert: Path
    tls_key: Path

    @classmethod
    def in_dir(cls, directory: Path) -> CertPaths:
        return cls(
            ca_cert=directory / "ca.crt",
            ca_key=directory / "ca.key",
            tls_cert=directory / "tls.crt",
            tls_key=directory / "tls.key",
        )


# --------------------------------------------------------------------------- generation


def generate(
    *,
    service: str,
    namespace: str,
    out_dir: Path,
    days: int = 365,
    hosts: Sequence[str] = (),
    ips: Sequence[str] = (),
    new_ca: bool = False,
) -> CertPaths:
    """Write a CA (reused if already present and valid) and a serving certificate to ``out_dir``.

    The serving certificate carries the SANs ``S``, ``S.N``, ``S.N.svc``,
    ``S.N.svc.cluster.local`` (S = service, N = namespace), then each of ``hosts`` as a DNS name
    and each of ``ips`` as an IP address. It is valid for ``days`` days, but never beyond the
    CA's own expiry. An existing ``ca.crt``/``ca.key`` pair is reused unless ``new_ca`` is true
    or it is unusable (unreadable, mismatched, not a CA, expired).

    Files are written key first, then certificate (``ca.key``, ``ca.crt``, ``tls.key``,
    ``tls.crt``), each atomically; so once ``tls.crt`` changes, the matching ``tls.key`` is
    already in place.
    """
    if days < 1:
        raise CertError(f"days must be at least 1, got {days}")
    if not service or not namespace:
        raise CertError("service and namespace must not be empty")
    dns_names = _dns_names(service, namespace, hosts)
    ip_addresses = _ip_addresses(ips)

    paths = CertPaths.in_dir(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CertError(f"{out_dir}: cannot create directory: {os_reason(exc)}") from exc

    now = datetime.datetime.now(datetime.UTC)
    existing = None if new_ca else _load_ca(paths, now)
    if existing is None:
        ca_key: CertificateIssuerPrivateKeyTypes = ec.generate_private_key(ec.SECP256R1())
        ca_cert = _make_ca(ca_key, now=now, days=max(days, CA_MIN_DAYS))
        _write_atomic(paths.ca_key, _key_pem(ca_key), mode=_KEY_MODE)
        _write_atomic(paths.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM))
    else:
        ca_cert, ca_key = existing

    tls_cert, tls_key = _serving_pem(
        ca_cert=ca_cert,
        ca_key=ca_key,
        now=now,
        days=days,
        common_name=f"{service}.{namespace}.svc",
        dns_names=dns_names,
        ip_addresses=ip_addresses,
    )
    _write_atomic(paths.tls_key, tls_key, mode=_KEY_MODE)
    _write_atomic(paths.tls_cert, tls_cert)
    return paths


def issue_ca(*, now: datetime.datetime, validity: datetime.timedelta) -> tuple[bytes, bytes]:
    """A new self-signed ECDSA P-256 CA: (certificate PEM, private key PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _make_ca(key, now=now, days=max(1, validity.days))
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def issue_leaf(
    *,
    ca_cert_pem: bytes,
    ca_key_pem: bytes,
    now: datetime.datetime,
    validity: datetime.timedelta,
    service: str,
    namespace: str,
    hosts: Sequence[str] = (),
    ips: Sequence[str] = (),
) -> tuple[bytes, bytes]:
    """A serving certificate signed by the given CA: (certificate PEM, private key PEM)."""
    try:
        ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
        ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    except (ValueError, TypeError):
        raise CertError("the CA certificate or key is not usable PEM") from None
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise CertError("the CA key is neither ECDSA nor RSA")
    return _serving_pem(
        ca_cert=ca_cert,
        ca_key=ca_key,
        now=now,
        days=max(1, validity.days),
        common_name=f"{service}.{namespace}.svc",
        dns_names=_dns_names(service, namespace, hosts),
        ip_addresses=_ip_addresses(ips),
    )


def ensure_serving_certs(cert_dir: Path) -> bool:
    """Create a development CA and serving pair in ``cert_dir`` unless one is already there.

    Returns True when certificates were generated, False when ``tls.crt`` and ``tls.key`` both
    already existed (they are then left untouched).
    """
    paths = CertPaths.in_dir(cert_dir)
    if paths.tls_cert.is_file() and paths.tls_key.is_file():
        return False
    generate(
        service=DEV_SERVICE,
        namespace=DEV_NAMESPACE,
        out_dir=cert_dir,
        hosts=DEV_HOSTS,
        ips=DEV_IPS,
    )
    return True


def _dns_names(service: str, namespace: str, hosts: Sequence[str]) -> list[str]:
    names = [
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
    ]
    for host in hosts:
        if not host or any(c.isspace() for c in host):
            raise CertError(f"invalid host name {host!r}")
        if host not in names:
            names.append(host)
    return names


def _ip_addresses(ips: Sequence[str]) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    out: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for raw in ips:
        try:
            addr = ipaddress.ip_address(raw)
        except ValueError:
            raise CertError(f"invalid IP address {raw!r}") from None
        if addr not in out:
            out.append(addr)
    return out


def _make_ca(
    key: CertificateIssuerPrivateKeyTypes, *, now: datetime.datetime, days: int
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_COMMON_NAME)])
    public_key = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(_serial())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .sign(key, _hash_for(key))
    )


def _serving_pem(
    *,
    ca_cert: x509.Certificate,
    ca_key: CertificateIssuerPrivateKeyTypes,
    now: datetime.datetime,
    days: int,
    common_name: str,
    dns_names: Sequence[str],
    ip_addresses: Sequence[ipaddress.IPv4Address | ipaddress.IPv6Address],
) -> tuple[bytes, bytes]:
    """A new ECDSA P-256 key and its serving certificate signed by the CA: (cert PEM, key PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    not_after = min(now + datetime.timedelta(days=days), ca_cert.not_valid_after_utc)
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    sans += [x509.IPAddress(a) for a in ip_addresses]
    public_key = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])]))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(_serial())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(_authority_key_id(ca_cert, ca_key), critical=False)
        .sign(ca_key, _hash_for(ca_key))
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def _authority_key_id(
    ca_cert: x509.Certificate, ca_key: CertificateIssuerPrivateKeyTypes
) -> x509.AuthorityKeyIdentifier:
    try:
        ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _load_ca(
    paths: CertPaths, now: datetime.datetime
) -> tuple[x509.Certificate, CertificateIssuerPrivateKeyTypes] | None:
    """The CA in ``paths`` if both files exist and form a usable, unexpired CA; else None."""
    try:
        cert = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
        key = serialization.load_pem_private_key(paths.ca_key.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    if not isinstance(
        key,
        ec.EllipticCurvePrivateKey
        | rsa.RSAPrivateKey
        | ed25519.Ed25519PrivateKey
        | ed448.Ed448PrivateKey,
    ):
        return None
    if _spki(cert.public_key()) != _spki(key.public_key()):
        return None
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except (x509.ExtensionNotFound, ValueError):
        return None
    if not constraints.ca:
        return None
    # Require a day of remaining life: a CA about to expire is not worth keeping.
    if cert.not_valid_after_utc <= now + datetime.timedelta(days=1):
        return None
    if cert.not_valid_before_utc > now + _CLOCK_SKEW:
        return None
    return cert, key


def _spki(public_key: Any) -> bytes:
    der: bytes = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der


def _hash_for(key: CertificateIssuerPrivateKeyTypes) -> hashes.SHA256 | None:
    if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return None
    return hashes.SHA256()


def _serial() -> int:
    # Positive, at most 20 octets (RFC 5280 4.1.2.2), 159 random bits.
    return secrets.randbits(159) | 1


def _key_pem(key: CertificateIssuerPrivateKeyTypes) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_atomic(path: Path, data: bytes, *, mode: int = _CERT_MODE) -> None:
    """Write ``data`` to ``path`` via a temp file in the same directory and ``os.replace``.

    The temp file is created 0600 by ``mkstemp`` and only widened (for certificates) after the
    content is written, so key material is never readable by others, not even transiently.
    """
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
            os.fchmod(fh.fileno(), mode)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise CertError(f"{path}: cannot write: {os_reason(exc)}") from exc
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


# --------------------------------------------------------------------------- reading


def _read_pem(path: str | os.PathLike[str], what: str) -> list[x509.Certificate]:
    """The PEM certificates in ``path``; CertError naming the file when there are none."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CertError(f"{path}: cannot read {what}: {os_reason(exc)}") from exc
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise CertError(f"{path}: not a PEM certificate") from None
    if not certs:
        raise CertError(f"{path}: not a PEM certificate")
    return certs


def read_ca_bundle(path: str | os.PathLike[str]) -> bytes:
    """The PEM certificates in ``path``, re-encoded (anything else in the file is dropped).

    Raises :class:`CertError` naming the file when it is missing, unreadable or holds no PEM
    certificate. Only certificates are returned, so a combined cert+key file never leaks its
    private key into a caBundle.
    """
    certs = _read_pem(path, "CA bundle")
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def load_pair_summary(cert_path: str | os.PathLike[str]) -> str:
    """One line describing the (first) certificate at ``cert_path``: subject, SANs, notAfter."""
    return pair_summary(_read_pem(cert_path, "certificate")[0])


def pair_summary(cert: x509.Certificate) -> str:
    """One line describing a certificate: subject, SANs and notAfter."""
    try:
        san_ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = [f"DNS:{n}" for n in san_ext.get_values_for_type(x509.DNSName)]
        sans += [f"IP:{a}" for a in san_ext.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        sans = []
    except ValueError:
        sans = ["<unparsable>"]
    not_after = cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        f"subject={cert.subject.rfc4514_string() or '<empty>'} "
        f"sans={','.join(sans) or '<none>'} notAfter={not_after}"
    )


def os_reason(exc: OSError) -> str:
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"{reason}" if not exc.filename else f"{reason} ({exc.filename})"
