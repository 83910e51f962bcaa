"""Test certificates made with trustme, written as `serve --cert-dir` reads them (ca.crt,
tls.crt, tls.key). The session-wide set is the `pki` fixture (tests/conftest.py); a test that
needs a particular validity writes its own pair with `serving_pair`.

Our own certificate issuing (webhook.certs) is tested with our own code, not with these.
"""

from __future__ import annotations

import datetime
import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme

SERVING_HOSTS = ("localhost", "127.0.0.1")


def write_pair(directory: Path, ca: trustme.CA, leaf: trustme.LeafCert) -> Path:
    """ca.crt, tls.crt (the leaf alone) and tls.key in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    ca.cert_pem.write_to_path(str(directory / "ca.crt"))
    leaf.cert_chain_pems[0].write_to_path(str(directory / "tls.crt"))
    leaf.private_key_pem.write_to_path(str(directory / "tls.key"))
    return directory


def serving_pair(
    directory: Path,
    ca: trustme.CA | None = None,
    *,
    hosts: tuple[str, ...] = SERVING_HOSTS,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
) -> Path:
    """A serving pair for `hosts` from `ca` (a new CA if none), valid as given."""
    ca = ca or trustme.CA()
    leaf = ca.issue_cert(*hosts, not_before=not_before, not_after=not_after)
    return write_pair(directory, ca, leaf)


@dataclass(frozen=True)
class Pki:
    ca: trustme.CA
    serving: Path  # ca.crt, tls.crt, tls.key for localhost and 127.0.0.1
    rotated: Path  # another pair for the same names from the same CA
    other: Path  # a pair from an unrelated CA
    client_ca: Path  # ca.crt of the CA that signed client.crt (for --client-ca)
    client_cert: Path
    client_key: Path

    def client_context(self, *, with_client_cert: bool = False) -> ssl.SSLContext:
        """Trusts only the serving CA (not the system roots)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(cafile=str(self.serving / "ca.crt"))
        if with_client_cert:
            ctx.load_cert_chain(self.client_cert, self.client_key)
        return ctx


def client_pair(directory: Path, ca: trustme.CA, name: str = "kube-apiserver") -> tuple[Path, Path]:
    """client.crt and client.key (trustme's leaves are for client and server auth alike)."""
    leaf = ca.issue_cert(name)
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "client.crt", directory / "client.key"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    return cert, key


def build(root: Path) -> Pki:
    ca = trustme.CA()
    serving = serving_pair(root / "serving", ca)
    rotated = serving_pair(root / "rotated", ca)
    other = serving_pair(root / "other")
    clients = trustme.CA()
    client_dir = root / "client"
    cert, key = client_pair(client_dir, clients)
    clients.cert_pem.write_to_path(str(client_dir / "ca.crt"))
    return Pki(
        ca=ca,
        serving=serving,
        rotated=rotated,
        other=other,
        client_ca=client_dir / "ca.crt",
        client_cert=cert,
        client_key=key,
    )
