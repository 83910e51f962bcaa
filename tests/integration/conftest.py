"""Fixtures for tests against a real `pf-webhook serve` process.

`serve(...)` starts `python -m webhook serve` on free ports (`--port 0 --metrics-port 0`; the
startup line says which ones), with its stdout and stderr captured to files, and stops it at
teardown. `pki` is built once per session: a serving CA with a localhost pair, and a client CA
with a client certificate (for `--client-ca`).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from webhook.certs.pki import generate

STARTUP = re.compile(
    r"pf-webhook serving (?P<https>https://\S+) \(/mutate, /validate\), "
    r"health and metrics on (?P<http>http://\S+);"
)
START_TIMEOUT = 20.0
STOP_TIMEOUT = 20.0


@dataclass(frozen=True)
class Pki:
    serving: Path  # ca.crt, ca.key, tls.crt, tls.key for localhost / 127.0.0.1
    client_ca: Path  # ca.crt of the CA that signed client.crt
    client_cert: Path
    client_key: Path

    def client_context(self, *, with_client_cert: bool = False) -> ssl.SSLContext:
        """Trusts only our serving CA (not the system roots)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(cafile=str(self.serving / "ca.crt"))
        if with_client_cert:
            ctx.load_cert_chain(self.client_cert, self.client_key)
        return ctx


def _client_certificate(ca_dir: Path, out: Path) -> tuple[Path, Path]:
    ca_cert = x509.load_pem_x509_certificate((ca_dir / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((ca_dir / "ca.key").read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = out / "client.crt", out / "client.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    serving = tmp_path_factory.mktemp("serving")
    generate(
        service="pf-webhook",
        namespace="pf-webhook",
        out_dir=serving,
        hosts=("localhost",),
        ips=("127.0.0.1",),
    )
    client_dir = tmp_path_factory.mktemp("client")
    generate(service="client-ca", namespace="test", out_dir=client_dir)
    cert, key = _client_certificate(client_dir, client_dir)
    return Pki(serving=serving, client_ca=client_dir / "ca.crt", client_cert=cert, client_key=key)


class Served:
    """A running `pf-webhook serve` process."""

    def __init__(self, proc: subprocess.Popen[bytes], workdir: Path, cert_dir: Path) -> None:
        self.proc = proc
        self.workdir = workdir
        self.cert_dir = cert_dir
        self.https = ""
        self.http = ""

    @property
    def stdout(self) -> str:
        return (self.workdir / "stdout.txt").read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return (self.workdir / "stderr.txt").read_text(errors="replace")

    def logs(self) -> str:
        return self.stdout + self.stderr

    def wait_started(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            found = STARTUP.search(self.stdout)
            if found:
                self.https, self.http = found["https"], found["http"]
                return
            if self.proc.poll() is not None:
                pytest.fail(f"pf-webhook serve exited {self.proc.returncode}:\n{self.logs()}")
            time.sleep(0.02)
        pytest.fail(f"pf-webhook serve did not start within {START_TIMEOUT}s:\n{self.logs()}")

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.proc.send_signal(signum)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise


class ServeFactory(Protocol):
    def __call__(
        self,
        *args: str,
        config: str | None = None,
        env: dict[str, str] | None = None,
        cert_source: Path | None = None,
    ) -> Served: ...


@pytest.fixture
def serve(tmp_path: Path, pki: Pki) -> Iterator[ServeFactory]:
    """Start `pf-webhook serve` with a copy of the session's serving certificates (or none)."""
    started: list[Served] = []

    def start(
        *args: str,
        config: str | None = None,
        env: dict[str, str] | None = None,
        cert_source: Path | None = pki.serving,
    ) -> Served:
        workdir = tmp_path / f"serve-{len(started)}"
        workdir.mkdir()
        cert_dir = workdir / "certs"
        if cert_source is not None:
            shutil.copytree(cert_source, cert_dir)
        argv: list[str] = [sys.executable, "-m", "webhook", "serve"]
        argv += ["--cert-dir", str(cert_dir), "--host", "127.0.0.1"]
        argv += ["--port", "0", "--metrics-port", "0"]
        if config is not None:
            config_path = workdir / "functions_worker.yml"
            config_path.write_text(config)
            argv += ["--config", str(config_path)]
        argv += list(args)
        # no cluster from the machine ($KUBECONFIG, ~/.kube/config, a pod's) unless `env` names one
        environ = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "HOME")}
        environ.pop("KUBERNETES_SERVICE_HOST", None)
        environ |= {"HOME": str(workdir), "PF_WEBHOOK_SHUTDOWN_DELAY": "0.2", **(env or {})}
        with (workdir / "stdout.txt").open("wb") as out, (workdir / "stderr.txt").open("wb") as err:
            proc = subprocess.Popen(argv, stdout=out, stderr=err, env=environ, cwd=workdir)
        served = Served(proc, workdir, cert_dir)
        started.append(served)
        served.wait_started()
        return served

    yield start
    for served in started:
        with contextlib.suppress(subprocess.TimeoutExpired):
            served.stop()
