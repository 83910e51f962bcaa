"""Shell: the serving certificate pair in one live `SSLContext`, reloaded when the files change.

New handshakes get the new certificate without restarting the listener (aiohttp has no
built-in reload); a half-replaced pair is never loaded, so no request fails during rotation.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from cryptography import x509

from webhook.certs import pki, rotation
from webhook.core.errors import UserError, one_line
from webhook.server.metrics import Metrics

log = logging.getLogger("webhook.server")


class CertLoadError(UserError):
    """The pair (or the client CA) cannot be loaded; one line."""


Stamp = tuple[tuple[int, int, int], ...] | None


def file_stamp(*paths: Path) -> Stamp:
    """Identity of the files' current contents (follows symlinks, as Secret volumes use)."""
    try:
        return tuple((s.st_ino, s.st_size, s.st_mtime_ns) for s in (p.stat() for p in paths))
    except OSError:
        return None


@contextlib.contextmanager
def _private_file(data: bytes) -> Iterator[str]:
    """A path holding `data` that only we can read: a memfd on Linux (never on disk)."""
    memfd_create = getattr(os, "memfd_create", None)
    if memfd_create is not None and os.path.isdir("/proc/self/fd"):
        fd = memfd_create("pf-webhook-tls", os.MFD_CLOEXEC)
        try:
            _write_all(fd, data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="pf-webhook-") as tmp:  # pragma: no cover - not Linux
        path = os.path.join(tmp, "pair.pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)
        yield path


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class ServingCerts:
    """The serving pair, loaded into one live `SSLContext` that the TLS listener keeps.

    `reload()` loads a changed pair into the same context, so new handshakes get the new
    certificate without restarting the listener. The exact bytes are first loaded into a
    scratch context: `load_cert_chain` on the live context with a mismatched pair (cert
    replaced, key not yet) would leave it with no usable key and fail every later handshake.
    """

    def __init__(
        self,
        cert_dir: Path | None,
        *,
        min_version: Literal["1.2", "1.3"] = "1.2",
        client_ca: Path | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        """`cert_dir` holds tls.crt/tls.key; None when the pair comes from elsewhere (the
        self-managed certificate Secret, through `load_pem`)."""
        self.cert = cert_dir / "tls.crt" if cert_dir is not None else None
        self.key = cert_dir / "tls.key" if cert_dir is not None else None
        self.metrics = metrics
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = (
            ssl.TLSVersion.TLSv1_3 if min_version == "1.3" else ssl.TLSVersion.TLSv1_2
        )
        if client_ca is not None:
            self.context.verify_mode = ssl.CERT_REQUIRED
            try:
                self.context.load_verify_locations(cafile=str(client_ca))
            except (OSError, ssl.SSLError) as exc:
                raise CertLoadError(f"--client-ca {client_ca}: {reason(exc)}") from None
        self.loaded = False
        self.not_before: datetime.datetime | None = None
        self.not_after: datetime.datetime | None = None
        self._stamp: Stamp = None
        self._failed: Stamp = None

    def load(self) -> str:
        """Load the pair if valid; return a one-line summary; raise CertLoadError otherwise."""
        if self.cert is None or self.key is None:
            raise CertLoadError("no certificate directory")
        # stamped before reading: a change while we read is seen at the next poll
        stamp = file_stamp(self.cert, self.key)
        try:
            cert_pem, key_pem = self.cert.read_bytes(), self.key.read_bytes()
        except OSError as exc:
            raise CertLoadError(f"{self.cert}, {self.key}: {reason(exc)}") from None
        summary = self.load_pem(cert_pem, key_pem, source=f"{self.cert}, {self.key}")
        self._stamp = stamp
        return summary

    def load_pem(self, cert_pem: bytes, key_pem: bytes, *, source: str) -> str:
        """Load a pair given as PEM into the live context (checked on a scratch context first);
        return a one-line summary; raise CertLoadError naming `source` otherwise."""
        pem = cert_pem.rstrip(b"\n") + b"\n" + key_pem
        try:
            leaf = x509.load_pem_x509_certificate(cert_pem)
            with _private_file(pem) as path:
                ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(path)
                self.context.load_cert_chain(path)
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise CertLoadError(f"{source}: {reason(exc)}") from None
        self.loaded = True
        self.not_before, self.not_after = leaf.not_valid_before_utc, leaf.not_valid_after_utc
        if self.metrics is not None:
            self.metrics.cert_expiry.labels("serving").set(self.not_after.timestamp())
        self.warn_if_expiring()
        return pki.pair_summary(leaf)

    def expiry(self, now: datetime.datetime | None = None) -> rotation.Expiry | None:
        if self.not_before is None or self.not_after is None:
            return None
        return rotation.expiry(
            self.not_before, self.not_after, now or datetime.datetime.now(datetime.UTC)
        )

    def warn_if_expiring(self) -> None:
        state = self.expiry()
        if state in ("expiring", "expired", "not-yet-valid"):
            assert self.not_after is not None
            log.warning(
                "serving certificate expired"
                if state == "expired"
                else "serving certificate not yet valid"
                if state == "not-yet-valid"
                else "serving certificate expires within 30 days",
                extra={"fields": {"not_after": self.not_after.strftime("%Y-%m-%dT%H:%M:%SZ")}},
            )

    def changed(self) -> bool:
        if self.cert is None or self.key is None:
            return False
        return file_stamp(self.cert, self.key) != self._stamp

    def reload(self, metrics: Metrics) -> bool:
        """Load the pair again if the files changed; on failure keep the old pair (logged once
        per state of the files, retried every poll)."""
        if not self.changed() or self.cert is None or self.key is None:
            return False
        stamp = file_stamp(self.cert, self.key)
        try:
            summary = self.load()
        except CertLoadError as exc:
            if stamp != self._failed:
                self._failed = stamp
                metrics.errors.labels("cert_reload").inc()
                log.warning(
                    "serving certificate not reloaded; keeping the previous pair",
                    extra={"fields": {"error": str(exc)}},
                )
            return False
        self._failed = None
        metrics.cert_reloads.inc()
        log.info("serving certificate reloaded", extra={"fields": {"certificate": summary}})
        return True


def reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return one_line(exc)[:300] or type(exc).__name__
