"""A throwaway Kubernetes control plane (etcd + kube-apiserver) for end-to-end tests.

This is what controller-runtime's envtest does, redone in Python, because the webhook has to be
tested against the real admission machinery of a real kube-apiserver. The binaries are built from
Go modules by ``build.sh`` in this directory; nothing is downloaded at test time.

There is no kube-controller-manager, scheduler or kubelet. So no ServiceAccount token controller
runs, namespaces are never finalised after deletion, and StatefulSets never create Pods.

This module is plain Python (no pytest import) so it can also be used from a REPL or a script::

    with ControlPlane(binaries_dir()) as cp:
        print(cp.kubeconfig)
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import datetime
import http.client
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HERE = Path(__file__).resolve().parent
BUILD_SCRIPT = HERE / "build.sh"
ENV_BINARIES = "PF_WEBHOOK_CONTROLPLANE"
FIX_HINT = "run: tests/controlplane/build.sh (or: make controlplane)"
KUBECTL = os.environ.get("KUBECTL") or shutil.which("kubectl") or "/usr/bin/kubectl"

ETCD_TIMEOUT = 30.0
APISERVER_TIMEOUT = 90.0
NAMESPACE_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
POLL_INTERVAL = 0.2
LOG_TAIL_LINES = 40
CERT_VALIDITY = datetime.timedelta(days=7)
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [{"level": "Metadata"}],
}


def write_kubeconfig(
    path: Path, *, server: str, ca_file: Path, user: str, credentials: dict[str, str]
) -> Path:
    """A kubeconfig (mode 0600) with one cluster, one user with `credentials` (client
    certificate and key paths, or a token) and a current context joining them. JSON is valid
    YAML, so kubectl and kubernetes-asyncio both read it."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "e2e", "cluster": {"server": server, "certificate-authority": str(ca_file)}}
        ],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": user}}],
        "current-context": "e2e",
        "preferences": {},
    }
    path.write_text(json.dumps(config, indent=2) + "\n")
    path.chmod(0o600)
    return path


class ControlPlaneUnavailable(RuntimeError):
    """The binaries are missing and cannot be built here (no Go, or the build failed).

    Kept distinct from start-up failures so that callers can skip locally and fail in CI, while
    a control plane that was built but does not come up is always an error. ``str()`` ends with
    the command that fixes it; ``reason`` is the bare cause, for callers adding their own hint.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        super().__init__(f"{reason}; {FIX_HINT}" + (f"\n{detail}" if detail else ""))


class ControlPlaneError(RuntimeError):
    """etcd or kube-apiserver did not start, or did not become ready in time."""


def binaries_dir() -> Path:
    """Return the directory holding ``kube-apiserver`` and ``etcd``.

    ``$PF_WEBHOOK_CONTROLPLANE`` wins (the Makefile sets it, so pytest never builds). Otherwise
    run ``build.sh``, which returns at once when its cache is warm and builds otherwise.
    """
    env = os.environ.get(ENV_BINARIES)
    if env:
        path = Path(env)
        _check_binaries(path, f"${ENV_BINARIES}={env}")
        return path
    try:
        proc = subprocess.run(
            [str(BUILD_SCRIPT)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError as exc:
        raise ControlPlaneUnavailable(f"cannot run {BUILD_SCRIPT}: {exc}") from exc
    if proc.returncode != 0:
        why = ": Go is not installed (https://go.dev/dl)" if shutil.which("go") is None else ""
        raise ControlPlaneUnavailable(
            f"building the test control plane failed (exit {proc.returncode}){why}",
            "--- build.sh stderr (tail) ---\n" + _tail_text(proc.stderr, LOG_TAIL_LINES),
        )
    lines = proc.stdout.strip().splitlines()
    if not lines:
        raise ControlPlaneUnavailable(f"{BUILD_SCRIPT} printed no directory")
    path = Path(lines[-1].strip())
    _check_binaries(path, str(BUILD_SCRIPT))
    return path


def _check_binaries(path: Path, origin: str) -> None:
    """Fail early and clearly rather than with an ENOENT from Popen later."""
    missing = [b for b in ("kube-apiserver", "etcd") if not os.access(path / b, os.X_OK)]
    if missing:
        raise ControlPlaneUnavailable(
            f"{', '.join(missing)} not found or not executable in {path} (from {origin})"
        )


def free_ports(count: int) -> list[int]:
    """Pick ``count`` distinct free TCP ports on 127.0.0.1.

    All sockets stay open until every port is chosen, so the kernel cannot hand out the same
    port twice. There is an unavoidable window between closing and the server binding; with
    ephemeral ports that are picked fresh each run, collisions are very unlikely.
    """
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


# --- certificates -------------------------------------------------------------------------------


def _key() -> ec.EllipticCurvePrivateKey:
    """ECDSA P-256 everywhere, like envtest's TinyCA: quick to generate, fine for Go and OpenSSL."""
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _builder(subject: x509.Name, issuer: x509.Name, public_key: Any) -> x509.CertificateBuilder:
    # Back-date by an hour so a little clock skew between us and Go does not matter.
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + CERT_VALIDITY)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _make_ca(cn: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _key()
    name = _name(cn, "pf-webhook-e2e")
    cert = (
        _builder(name, name, key.public_key())
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
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _make_leaf(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    sans: list[x509.GeneralName] | None = None,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """Issue a leaf certificate; AKI/SKI and key usages are set so strict verifiers accept it."""
    key = _key()
    builder = (
        _builder(subject, ca_cert.subject, key.public_key())
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
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


# --- processes ----------------------------------------------------------------------------------


def _parent_death_signal() -> Callable[[], None] | None:
    """Have the kernel SIGKILL our children if this Python process dies without cleaning up.

    Covers what no ``finally`` can: pytest killed with SIGKILL, or pytest-timeout's thread method
    calling ``os._exit``. Linux only; elsewhere the context manager and atexit hook remain.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def _tail_text(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        return _tail_text(path.read_text(errors="replace"), lines)
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"


class ControlPlane:
    """etcd + kube-apiserver on loopback, with an admin kubeconfig; a context manager.

    After :meth:`start` (or ``__enter__``) these attributes are set:

    - ``tmpdir``: private directory with certificates, etcd data, logs and the kubeconfig;
    - ``kubeconfig``: path of a kubeconfig for user ``admin`` (group ``system:masters``);
    - ``server``: ``https://127.0.0.1:<port>``;
    - ``ca_file``: CA that signed the apiserver's serving certificate;
    - ``client_cert`` / ``client_key``: the admin client certificate and key;
    - ``sa_issuer``: the service-account token issuer (``iss`` of every token);
    - ``apiserver_log`` / ``etcd_log``: the processes' combined stdout/stderr;
    - ``audit_log``: the API server's audit log (JSON lines, level Metadata for every request:
      who did what to which object, with admission webhooks' audit annotations, never bodies),
      read with :meth:`audit_events`;
    - ``etcd_url``: etcd's client URL;
    - ``timings``: seconds taken by each start-up phase.
    """

    def __init__(self, bin_dir: Path | str, *, keep_tmpdir: bool = False) -> None:
        self.bin_dir = Path(bin_dir)
        self.keep_tmpdir = keep_tmpdir
        self.tmpdir: Path | None = None
        self._etcd: subprocess.Popen[bytes] | None = None
        self._apiserver: subprocess.Popen[bytes] | None = None
        self._ssl: ssl.SSLContext | None = None
        self.timings: dict[str, float] = {}

    # -- lifecycle --

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start etcd, then kube-apiserver, and wait until both are usable.

        Anything that goes wrong half-way (including KeyboardInterrupt) stops whatever was
        already started and removes the temporary directory before the error propagates.
        An instance is single-use: start it once, stop it once (stopping again is harmless).
        """
        if self.tmpdir is not None:
            raise RuntimeError("a ControlPlane can be started only once; make a new one")
        _check_binaries(self.bin_dir, "ControlPlane(bin_dir)")
        atexit.register(self.stop)
        try:
            self.tmpdir = Path(tempfile.mkdtemp(prefix="pf-webhook-controlplane-"))
            self._write_certs()
            etcd_client, etcd_peer, secure = free_ports(3)
            self.port = secure
            self.server = f"https://127.0.0.1:{secure}"
            self.sa_issuer = f"https://127.0.0.1:{secure}"
            self.etcd_url = f"http://127.0.0.1:{etcd_client}"
            self._write_kubeconfig()
            self.etcd_log = self.tmpdir / "etcd.log"
            self.apiserver_log = self.tmpdir / "kube-apiserver.log"
            self.audit_log = self.tmpdir / "audit.log"
            self.audit_policy = self.tmpdir / "audit-policy.json"
            self.audit_policy.write_text(json.dumps(AUDIT_POLICY, indent=2) + "\n")

            t0 = time.monotonic()
            self._start_etcd(etcd_client, etcd_peer)
            t1 = time.monotonic()
            self.timings["etcd_ready"] = t1 - t0
            self._start_apiserver()
            t2 = time.monotonic()
            self.timings["apiserver_ready"] = t2 - t1
            self._wait_default_namespace()
            self.timings["default_namespace"] = time.monotonic() - t2
            self.timings["total"] = time.monotonic() - t0
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Terminate kube-apiserver, then etcd, then delete the temporary directory.

        Idempotent. The apiserver goes first so it does not log a storm of etcd errors. Each gets
        SIGTERM and up to 10 s, then SIGKILL.
        """
        for attr in ("_apiserver", "_etcd"):
            proc: subprocess.Popen[bytes] | None = getattr(self, attr)
            if proc is None:
                continue
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
                try:
                    proc.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    proc.wait()
            setattr(self, attr, None)
        if self.tmpdir is not None and not self.keep_tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
        atexit.unregister(self.stop)

    # -- helpers for tests --

    def ssl_context(self) -> ssl.SSLContext:
        """Client TLS context: trusts the apiserver's CA and presents the admin certificate."""
        if self._ssl is None:
            self._ssl = ssl.create_default_context(cafile=str(self.ca_file))
            self._ssl.load_cert_chain(str(self.client_cert), str(self.client_key))
        return self._ssl

    def get(self, path: str, timeout: float = 10.0) -> tuple[int, bytes]:
        """GET ``path`` on the apiserver as admin; returns (status, body), never raises on 4xx/5xx.

        Proxies from the environment are ignored: every request goes to loopback.
        """
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}),
            urllib.request.HTTPSHandler(context=self.ssl_context()),
        )
        try:
            with opener.open(self.server + path, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            with err:
                return err.code, err.read()

    def get_json(self, path: str) -> Any:
        """GET ``path`` and decode JSON; raises if the status is not 200."""
        status, body = self.get(path)
        if status != 200:
            raise ControlPlaneError(f"GET {path}: HTTP {status}: {body[:500]!r}")
        return json.loads(body)

    def audit_events(self) -> list[dict[str, Any]]:
        """Every event in the audit log so far (a line being written is skipped)."""
        events = []
        try:
            text = self.audit_log.read_text(errors="replace")
        except FileNotFoundError:
            return []
        for line in text.splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                events.append(event)
        return events

    def kubectl(self, *args: str, check: bool = True, timeout: float = 60.0) -> str:
        """Run kubectl against this control plane and return its stdout.

        ``--cache-dir`` lives in the temporary directory so runs never share discovery caches
        through ``~/.kube``.
        """
        assert self.tmpdir is not None, "ControlPlane not started"
        cmd = [
            KUBECTL,
            f"--kubeconfig={self.kubeconfig}",
            f"--cache-dir={self.tmpdir / 'kubectl-cache'}",
            *args,
        ]
        proc = subprocess.run(
            cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
        )
        if check and proc.returncode != 0:
            raise ControlPlaneError(
                f"kubectl {' '.join(args)} failed (exit {proc.returncode}): {proc.stderr.strip()}"
            )
        return proc.stdout

    # -- internals --

    def _write_certs(self) -> None:
        assert self.tmpdir is not None
        d = self.tmpdir
        ca_key, ca_cert = _make_ca("pf-webhook-e2e serving CA")
        self.ca_file = d / "ca.crt"
        _write_cert(self.ca_file, ca_cert)
        key, cert = _make_leaf(
            ca_key,
            ca_cert,
            _name("localhost"),
            ExtendedKeyUsageOID.SERVER_AUTH,
            [
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            ],
        )
        self.serving_cert, self.serving_key = d / "apiserver.crt", d / "apiserver.key"
        _write_cert(self.serving_cert, cert)
        _write_key(self.serving_key, key)

        client_ca_key, client_ca_cert = _make_ca("pf-webhook-e2e client CA")
        self.client_ca_file = d / "client-ca.crt"
        _write_cert(self.client_ca_file, client_ca_cert)
        key, cert = _make_leaf(
            client_ca_key,
            client_ca_cert,
            _name("admin", "system:masters"),
            ExtendedKeyUsageOID.CLIENT_AUTH,
        )
        self.client_cert, self.client_key = d / "admin.crt", d / "admin.key"
        _write_cert(self.client_cert, cert)
        _write_key(self.client_key, key)

        sa_key = _key()
        self.sa_signing_key, self.sa_public_key = d / "sa-signer.key", d / "sa-signer.pub"
        _write_key(self.sa_signing_key, sa_key)
        self.sa_public_key.write_bytes(
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def _write_kubeconfig(self) -> None:
        assert self.tmpdir is not None
        self.kubeconfig = write_kubeconfig(
            self.tmpdir / "kubeconfig",
            server=self.server,
            ca_file=self.ca_file,
            user="admin",
            credentials={
                "client-certificate": str(self.client_cert),
                "client-key": str(self.client_key),
            },
        )

    def _spawn(self, args: list[str], log: Path) -> subprocess.Popen[bytes]:
        """Start a child in its own session, output to a log file (a pipe nobody drains blocks)."""
        with log.open("wb") as out:
            return subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.tmpdir,
                start_new_session=True,  # a terminal ^C reaches pytest only, which then stops us
                preexec_fn=_parent_death_signal(),  # only calls prctl(2)
            )

    def _start_etcd(self, client_port: int, peer_port: int) -> None:
        assert self.tmpdir is not None
        peer = f"http://127.0.0.1:{peer_port}"
        args = [
            str(self.bin_dir / "etcd"),
            "--name=default",
            f"--data-dir={self.tmpdir / 'etcd-data'}",
            f"--listen-client-urls={self.etcd_url}",
            f"--advertise-client-urls={self.etcd_url}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=default={peer}",
            "--unsafe-no-fsync=true",
        ]
        self._etcd = self._spawn(args, self.etcd_log)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

        def ready() -> bool:
            # 503 until a leader is elected; the body says so too, check both.
            try:
                with opener.open(self.etcd_url + "/health", timeout=2) as resp:
                    body: dict[str, Any] = json.loads(resp.read())
                    return resp.status == 200 and body.get("health") == "true"
            except (OSError, http.client.HTTPException, ValueError):  # URLError is an OSError
                return False

        self._wait(ready, self._etcd, "etcd", self.etcd_log, ETCD_TIMEOUT)

    def apiserver_args(self) -> list[str]:
        """The exact kube-apiserver command line (flags explained in k8s-facts.md §B3/B6)."""
        assert self.tmpdir is not None
        return [
            str(self.bin_dir / "kube-apiserver"),
            f"--etcd-servers={self.etcd_url}",
            f"--secure-port={self.port}",
            "--bind-address=127.0.0.1",
            # Without this a loopback bind address makes the apiserver pick a host interface IP:
            # start fails without a default route, and the JWKS URI points at that IP.
            "--advertise-address=127.0.0.1",
            f"--tls-cert-file={self.serving_cert}",
            f"--tls-private-key-file={self.serving_key}",
            f"--client-ca-file={self.client_ca_file}",
            "--authorization-mode=RBAC",
            "--service-cluster-ip-range=10.0.0.0/24",
            f"--service-account-issuer={self.sa_issuer}",
            f"--service-account-key-file={self.sa_public_key}",
            f"--service-account-signing-key-file={self.sa_signing_key}",
            f"--service-account-jwks-uri={self.server}/openid/v1/jwks",
            # No controller-manager creates default ServiceAccounts, so Pods must not need one.
            "--disable-admission-plugins=ServiceAccount",
            "--allow-privileged=true",
            f"--cert-dir={self.tmpdir / 'apiserver-certs'}",
            # Every request at level Metadata (no bodies, so no token or Secret value is ever
            # written), one JSON line each, written before the response is sent.
            f"--audit-policy-file={self.audit_policy}",
            f"--audit-log-path={self.audit_log}",
            "--audit-log-format=json",
            "--audit-log-mode=blocking",
        ]

    def _start_apiserver(self) -> None:
        self._apiserver = self._spawn(self.apiserver_args(), self.apiserver_log)
        self._wait(
            self._http_ok("/readyz"),
            self._apiserver,
            "kube-apiserver /readyz",
            self.apiserver_log,
            APISERVER_TIMEOUT,
        )

    def _wait_default_namespace(self) -> None:
        """envtest waits for this too: the bootstrap controller creates it after /readyz."""
        assert self._apiserver is not None
        self._wait(
            self._http_ok("/api/v1/namespaces/default"),
            self._apiserver,
            "namespace default",
            self.apiserver_log,
            NAMESPACE_TIMEOUT,
        )

    def _http_ok(self, path: str) -> Callable[[], bool]:
        def ready() -> bool:
            try:
                return self.get(path, timeout=2)[0] == 200
            except (OSError, http.client.HTTPException):  # URLError is an OSError
                return False

        return ready

    @staticmethod
    def _wait(
        ready: Callable[[], bool],
        proc: subprocess.Popen[bytes],
        what: str,
        log: Path,
        timeout: float,
    ) -> None:
        """Poll ``ready`` until true; fail fast if the process exits, with the log's tail."""
        deadline = time.monotonic() + timeout
        while True:
            if ready():
                return
            code = proc.poll()
            if code is not None:
                raise ControlPlaneError(
                    f"{what}: process exited with code {code} before becoming ready; "
                    f"last {LOG_TAIL_LINES} lines of {log.name}:\n{_tail(log)}"
                )
            if time.monotonic() >= deadline:
                raise ControlPlaneError(
                    f"{what}: not ready after {timeout:.0f} s; "
                    f"last {LOG_TAIL_LINES} lines of {log.name}:\n{_tail(log)}"
                )
            time.sleep(POLL_INTERVAL)
