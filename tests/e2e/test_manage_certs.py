"""`pf-webhook serve --manage-certs` against the real API server, as the webhook's own
ServiceAccount (a TokenRequest token) with exactly the chart's RBAC:

- two replicas: one creates the certificate Secret, both serve the same certificate, and the API
  server (the chart's webhook configurations, pointed at the two through a TCP balancer) admits
  function StatefulSets through them;
- a forced rotation of the leaf, then of the CA, while StatefulSets are created in a loop, fails
  none of them; the caBundle holds the old and the new CA during the CA change;
- killing the Lease holder hands renewal to the other replica;
- SubjectAccessReview: the identity is refused one step beyond what it needs.

Short Lease durations (3 s) and CA propagation (1 s) keep it quick; waits poll with deadlines.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from controlplane import ControlPlane, free_ports, write_kubeconfig
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from kubernetes_asyncio import watch

from tests import worker
from tests.polling import wait_for
from webhook.kube.caches import secret_metadata_lister
from webhook.kube.client import api_client

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "pf-webhook"
KUBECTL = "/usr/bin/kubectl"
SYSTEM, FUNCTIONS, OTHER = "mc-system", "mc-fn", "mc-other"
NAME = "mc-pf-webhook"  # the chart's fullname for release "mc"
SA_USER = f"system:serviceaccount:{SYSTEM}:{NAME}"
CONFIG = """\
secretsProviderConfiguratorClassName: org.apache.pulsar.functions.secretsproviderconfigurator.KubernetesSecretsProviderConfigurator
webhook:
  secrets: {verify: deny}
  policy: {enforcement: deny}
"""


class Kube:
    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        proc = subprocess.run(
            [
                KUBECTL,
                f"--kubeconfig={self.cp.kubeconfig}",
                f"--cache-dir={self.cp.tmpdir}/kc-cache",
                *args,
            ],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check:
            assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr.strip()}"
        return proc.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json"))

    def secret(self) -> dict[str, bytes]:
        data = self.json("-n", SYSTEM, "get", "secret", f"{NAME}-certs")["data"]
        return {k: base64.b64decode(v) for k, v in data.items()}

    def has_secret(self) -> bool:
        out = self.kubectl("-n", SYSTEM, "get", "secret", "--ignore-not-found", "-o", "name")
        return f"secret/{NAME}-certs" in out.split()

    def ca_bundles(self) -> list[bytes]:
        return [
            base64.b64decode(h["clientConfig"].get("caBundle", ""))
            for kind in ("mutatingwebhookconfiguration", "validatingwebhookconfiguration")
            for h in self.json("get", kind, NAME)["webhooks"]
        ]

    def lease_holder(self) -> str:
        spec = self.json("-n", SYSTEM, "get", "lease", f"{NAME}-certs").get("spec", {})
        return str(spec.get("holderIdentity") or "")

    def post(self, path: str, body: Any) -> tuple[int, str]:
        """POST as admin, straight to the API server (faster than kubectl in a loop)."""
        request = urllib.request.Request(
            self.cp.server + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}),
            urllib.request.HTTPSHandler(context=self.cp.ssl_context()),
        )
        try:
            with opener.open(request, timeout=30) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()


class Balancer:
    """A TCP round-robin in front of the replicas, as a Service would be: the API server calls
    one URL; each connection goes to the next replica that accepts it."""

    def __init__(self, backends: list[int]) -> None:
        self.backends = backends
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._next = itertools.count()
        self.connections = 0  # accepted so far: each is a new TLS handshake with a replica
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        self.connections += 1
        with client:
            start = next(self._next)
            upstream = None
            for i in range(len(self.backends)):
                port = self.backends[(start + i) % len(self.backends)]
                try:
                    upstream = socket.create_connection(("127.0.0.1", port), timeout=2)
                    break
                except OSError:
                    continue
            if upstream is None:
                return
            with upstream:
                upstream.settimeout(None)
                with self._lock:
                    self._open.add(client)
                back = threading.Thread(target=self._pipe, args=(upstream, client), daemon=True)
                back.start()
                self._pipe(client, upstream)
                back.join(60)
                with self._lock:
                    self._open.discard(client)

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := a.recv(65536):
                b.sendall(data)
        with contextlib.suppress(OSError):
            b.shutdown(socket.SHUT_WR)

    def drop_idle(self, deadline: float = 10.0) -> None:
        """End every connection, as a server closing idle keep-alive connections does; call
        only when no request is in flight. The API server's client then opens a new one (a new
        TLS handshake) for its next call.

        Only our sending side is shut, and this returns once the API server has closed each of
        them in turn (its reader saw the end and took the connection out of its pool). Closing
        both ways and returning at once raced the API server's next request on a connection it
        had not yet seen closed: a `write: broken pipe` that no real rotation causes."""
        with self._lock:
            dropped = set(self._open)
        for sock in dropped:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
        wait_for(lambda: not (dropped & self.open()), deadline, "the API server to drop them")

    def open(self) -> set[socket.socket]:
        with self._lock:
            return set(self._open)

    def close(self) -> None:
        self._stop = True
        self.sock.close()


class Replica:
    def __init__(self, workdir: Path, kubeconfig: Path, config: Path, index: int) -> None:
        self.port, self.metrics_port = free_ports(2)
        self.log = workdir / f"replica-{index}.log"
        argv = [
            sys.executable,
            "-m",
            "webhook",
            "serve",
            "--config",
            str(config),
            "--kubeconfig",
            str(kubeconfig),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--metrics-port",
            str(self.metrics_port),
            "--function-namespace",
            FUNCTIONS,
            "--manage-certs",
            "--namespace",
            SYSTEM,
            "--cert-secret",
            f"{NAME}-certs",
            "--lease",
            f"{NAME}-certs",
            "--lease-duration",
            "3",
            "--ca-propagation",
            "1",
            "--service",
            NAME,
            "--mutating",
            NAME,
            "--validating",
            NAME,
            "--cert-san",
            "127.0.0.1",
        ]
        env = {**os.environ, "PF_WEBHOOK_SHUTDOWN_DELAY": "0", "POD_NAME": f"replica-{index}"}
        env.pop("KUBERNETES_SERVICE_HOST", None)
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=workdir
            )

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.metrics_port}{path}", timeout=2
            ) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()
        except OSError:
            return 0, ""

    def ready(self) -> bool:
        return self.get("/readyz")[0] == 200

    def holds_lease(self) -> bool:
        status, body = self.get("/metrics")
        return status == 200 and "\npf_webhook_cert_lease_holder 1.0" in body

    def served_certificate(self) -> bytes:
        """The DER certificate this replica presents right now."""
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with (
            socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock,
            context.wrap_socket(sock) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
        assert der is not None
        return der

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def expiry_gauges(replica: Replica) -> dict[str, float]:
    prefix = 'pf_webhook_certificate_expiry_timestamp_seconds{certificate="'
    out = {}
    for line in replica.get("/metrics")[1].splitlines():
        if line.startswith(prefix):
            label, value = line[len(prefix) :].split('"} ')
            out[label] = float(value)
    return out


def der_of(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


def der(pem: bytes) -> bytes:
    return der_of(x509.load_pem_x509_certificate(pem))


def render(helm: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        [
            str(helm),
            "template",
            "mc",
            str(CHART),
            "--namespace",
            SYSTEM,
            "--set",
            f"functionNamespaces={{{FUNCTIONS}}}",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def service_account_kubeconfig(kube: Kube, path: Path) -> Path:
    """A kubeconfig that authenticates as the webhook's ServiceAccount (TokenRequest)."""
    token = kube.kubectl("-n", SYSTEM, "create", "token", NAME, "--duration=1h").strip()
    return write_kubeconfig(
        path,
        server=kube.cp.server,
        ca_file=kube.cp.ca_file,
        user="webhook",
        credentials={"token": token},
    )


def can(
    kube: Kube, verb: str, resource: str, *, namespace: str = "", name: str = "", group: str = ""
) -> bool:
    """A SubjectAccessReview for the webhook's ServiceAccount."""
    attributes = {"verb": verb, "resource": resource, "group": group}
    if namespace:
        attributes["namespace"] = namespace
    if name:
        attributes["name"] = name
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": SA_USER,
            "groups": [
                "system:serviceaccounts",
                f"system:serviceaccounts:{SYSTEM}",
                "system:authenticated",
            ],
            "resourceAttributes": attributes,
        },
    }
    result = json.loads(kube.kubectl("create", "-o", "json", "-f", "-", stdin=json.dumps(review)))
    return bool(result["status"].get("allowed"))


class Setup:
    def __init__(self, kube: Kube, replicas: list[Replica], balancer: Balancer) -> None:
        self.kube, self.replicas, self.balancer = kube, replicas, balancer

    def all_serve(self, pem: bytes) -> bool:
        want = der(pem)
        return all(r.served_certificate() == want for r in self.replicas if r.proc.poll() is None)

    def holder(self) -> Replica:
        live = [r for r in self.replicas if r.proc.poll() is None and r.holds_lease()]
        assert len(live) == 1, f"{len(live)} replicas hold the Lease"
        return live[0]


@pytest.fixture(scope="module")
def setup(
    control_plane: ControlPlane, helm: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Setup]:
    kube = Kube(control_plane)
    workdir = tmp_path_factory.mktemp("manage-certs")
    for ns in (SYSTEM, FUNCTIONS, OTHER):
        kube.kubectl("create", "namespace", ns)
    kube.kubectl(
        "-n",
        FUNCTIONS,
        "create",
        "secret",
        "generic",
        "db-creds",
        "--from-literal=password=not-logged",
    )
    objects = render(helm)
    identity = [
        o
        for o in objects
        if o["kind"]
        in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
    ]
    webhooks = [o for o in objects if o["kind"].endswith("WebhookConfiguration")]
    kube.kubectl(
        "create",
        "-f",
        "-",
        stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": identity}),
    )
    kubeconfig = service_account_kubeconfig(kube, workdir / "sa-kubeconfig")
    config = workdir / "functions_worker.yml"
    config.write_text(CONFIG)
    replicas: list[Replica] = []
    balancer = Balancer([])
    try:
        replicas = [Replica(workdir, kubeconfig, config, i) for i in range(2)]
        balancer.backends[:] = [r.port for r in replicas]
        # the chart's configurations, pointed at the balancer (no Service outside a cluster)
        for doc in webhooks:
            for hook in doc["webhooks"]:
                path = hook["clientConfig"]["service"]["path"]
                hook["clientConfig"] = {"url": f"https://127.0.0.1:{balancer.port}{path}"}
            kube.kubectl("create", "-f", "-", stdin=json.dumps(doc))
        logs = ", ".join(str(r.log) for r in replicas)
        wait_for(lambda: all(r.ready() for r in replicas), 60, f"both replicas ready ({logs})")
        yield Setup(kube, replicas, balancer)
    finally:
        for kind in ("mutatingwebhookconfiguration", "validatingwebhookconfiguration"):
            kube.kubectl("delete", kind, NAME, "--ignore-not-found", check=False)
        for replica in replicas:
            replica.stop()
        balancer.close()


def function(index: int, prefix: str = "fn") -> dict[str, Any]:
    return worker.statefulset(
        k8s_namespace=FUNCTIONS,
        name=f"{prefix}{index}",
        secrets={"DB_PASSWORD": {"path": "db-creds", "key": "password"}},
    )


def admitted_mutated(kube: Kube, obj: dict[str, Any]) -> tuple[bool, str]:
    status, body = kube.post(f"/apis/apps/v1/namespaces/{FUNCTIONS}/statefulsets", obj)
    if status != 201:
        return False, f"HTTP {status}: {body[:300]}"
    env = json.loads(body)["spec"]["template"]["spec"]["containers"][0].get("env", [])
    injected = {
        "name": "DB_PASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "db-creds", "key": "password"}},
    }
    return (injected in env), "stored without our mutation"


def test_one_replica_creates_the_secret_both_serve_it_and_the_api_server_admits_through_them(
    setup: Setup,
) -> None:
    kube = setup.kube
    assert kube.has_secret()
    data = kube.secret()
    assert set(data) >= {"ca.crt", "ca.key", "ca-bundle.crt", "tls.crt", "tls.key"}
    wait_for(
        lambda: setup.all_serve(data["tls.crt"]), 20, "both replicas to serve the Secret's pair"
    )
    holder = setup.holder()
    assert kube.lease_holder().startswith(f"replica-{setup.replicas.index(holder)}_")
    wait_for(lambda: kube.ca_bundles() == [data["ca-bundle.crt"]] * 4, 20, "caBundle published")
    expiry = expiry_gauges(holder)
    leaf = x509.load_pem_x509_certificate(data["tls.crt"]).not_valid_after_utc.timestamp()
    ca = x509.load_pem_x509_certificate(data["ca.crt"]).not_valid_after_utc.timestamp()
    assert expiry == {"serving": leaf, "ca-0": ca}
    for i in range(4):  # the balancer alternates: both replicas answer some of these
        ok, why = admitted_mutated(kube, function(i, "first"))
        assert ok, why
    # a function naming a Secret that does not exist is denied: the metadata watch and the key
    # read work with the chart's RBAC
    missing = worker.statefulset(
        k8s_namespace=FUNCTIONS, name="missing", secrets={"X": {"path": "nope", "key": "k"}}
    )
    status, body = kube.post(f"/apis/apps/v1/namespaces/{FUNCTIONS}/statefulsets", missing)
    assert status >= 400 and "secrets/exists" in body, body[:500]


def test_forced_rotations_of_leaf_then_ca_fail_no_admission(setup: Setup) -> None:
    kube = setup.kube
    results: list[tuple[bool, str]] = []
    stop = threading.Event()

    def loop() -> None:
        for i in itertools.count():
            if stop.is_set():
                return
            results.append(admitted_mutated(kube, function(i, "rot")))
            # no admission is in flight now (this loop is the only source): the next one then
            # handshakes afresh, with whatever certificate the replica serves at that moment
            setup.balancer.drop_idle()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        before = kube.secret()
        kube.kubectl("-n", SYSTEM, "annotate", "secret", f"{NAME}-certs", "pf-webhook/rotate=leaf")
        wait_for(lambda: kube.secret()["tls.crt"] != before["tls.crt"], 20, "a new leaf")
        leaf = kube.secret()
        assert leaf["ca.crt"] == before["ca.crt"]
        wait_for(
            lambda: setup.all_serve(leaf["tls.crt"]), 20, "both replicas to serve the new leaf"
        )
        handshakes = [setup.balancer.connections]

        kube.kubectl("-n", SYSTEM, "annotate", "secret", f"{NAME}-certs", "pf-webhook/rotate=ca")
        wait_for(lambda: kube.secret()["ca.crt"] != before["ca.crt"], 20, "a new CA")
        rotated = kube.secret()
        bundle = x509.load_pem_x509_certificates(rotated["ca-bundle.crt"])
        assert [der_of(c) for c in bundle][1:] == [der(before["ca.crt"])]
        wait_for(
            lambda: kube.ca_bundles() == [rotated["ca-bundle.crt"]] * 4,
            20,
            "old+new CA published",
        )
        wait_for(lambda: kube.secret()["tls.crt"] != leaf["tls.crt"], 30, "a leaf from the new CA")
        final = kube.secret()
        issuer = x509.load_pem_x509_certificate(final["tls.crt"]).issuer
        assert issuer == x509.load_pem_x509_certificate(final["ca.crt"]).subject
        wait_for(lambda: setup.all_serve(final["tls.crt"]), 20, "both replicas to serve it")
        gauges = expiry_gauges(setup.replicas[0])
        assert set(gauges) == {"serving", "ca-0", "ca-1"}  # the new CA and the old one
        handshakes.append(setup.balancer.connections)
        served_final = len(results)
        wait_for(lambda: len(results) >= served_final + 5, 60, "creations with the final leaf")
        handshakes.append(setup.balancer.connections)
        assert handshakes[-1] >= handshakes[-2] + 4  # the new CA's leaf, handshaken for real
    finally:
        stop.set()
        thread.join(60)
    failures = [why for ok, why in results if not ok]
    print(
        f"rotation loop: {len(results)} StatefulSets created, {len(failures)} failed; "
        f"balancer connections at leaf served / new CA's leaf served / end: {handshakes}"
    )
    assert len(results) >= 10
    assert failures == []
    assert "pf-webhook/rotate" not in kube.json("-n", SYSTEM, "get", "secret", f"{NAME}-certs")[
        "metadata"
    ].get("annotations", {})


def test_killing_the_lease_holder_hands_renewal_to_the_other(setup: Setup) -> None:
    kube = setup.kube
    holder = setup.holder()
    other = next(r for r in setup.replicas if r is not holder)
    holder.stop(signal.SIGKILL)  # no release: the Lease must expire
    wait_for(other.holds_lease, 30, "the other replica to take the Lease")
    index = setup.replicas.index(other)
    assert kube.lease_holder().startswith(f"replica-{index}_")
    before = kube.secret()
    kube.kubectl(
        "-n", SYSTEM, "annotate", "secret", f"{NAME}-certs", "pf-webhook/rotate=leaf", "--overwrite"
    )
    wait_for(lambda: kube.secret()["tls.crt"] != before["tls.crt"], 20, "the new holder to renew")
    renewed = kube.secret()["tls.crt"]
    wait_for(lambda: other.served_certificate() == der(renewed), 20, "the survivor to serve it")
    ok, why = admitted_mutated(kube, function(0, "after"))
    assert ok, why


def test_the_identity_is_refused_one_step_beyond_what_it_needs(setup: Setup) -> None:
    kube = setup.kube
    # what it needs
    assert can(kube, "watch", "secrets", namespace=FUNCTIONS)
    assert can(kube, "get", "secrets", namespace=FUNCTIONS, name="db-creds")
    assert can(kube, "update", "secrets", namespace=SYSTEM, name=f"{NAME}-certs")
    assert can(
        kube,
        "update",
        "leases",
        namespace=SYSTEM,
        name=f"{NAME}-certs",
        group="coordination.k8s.io",
    )
    assert can(
        kube,
        "patch",
        "mutatingwebhookconfigurations",
        name=NAME,
        group="admissionregistration.k8s.io",
    )
    assert can(kube, "list", "statefulsets", group="apps")
    # one step beyond
    assert not can(kube, "get", "secrets", namespace=OTHER, name="db-creds")
    assert not can(kube, "list", "secrets", namespace=OTHER)
    assert not can(kube, "list", "secrets")  # cluster-wide
    assert not can(kube, "get", "secrets", namespace=SYSTEM, name="another")
    assert not can(kube, "update", "secrets", namespace=SYSTEM, name="another")
    assert not can(kube, "update", "secrets", namespace=FUNCTIONS, name="db-creds")
    assert not can(kube, "delete", "secrets", namespace=SYSTEM, name=f"{NAME}-certs")
    assert not can(kube, "create", "secrets", namespace=FUNCTIONS)
    # `create` cannot be limited by name (RBAC sees no name before the object exists): granted
    # in the webhook's own namespace only, where the process creates nothing but its Secret
    assert can(kube, "create", "secrets", namespace=SYSTEM)
    assert not can(
        kube, "update", "leases", namespace=SYSTEM, name="another", group="coordination.k8s.io"
    )
    assert not can(
        kube,
        "patch",
        "mutatingwebhookconfigurations",
        name="another",
        group="admissionregistration.k8s.io",
    )
    assert not can(
        kube,
        "patch",
        "validatingwebhookconfigurations",
        name="another",
        group="admissionregistration.k8s.io",
    )
    assert not can(kube, "create", "statefulsets", namespace=FUNCTIONS, group="apps")
    assert not can(kube, "list", "pods")  # the audit's reads are the auditor role's
    # the real requests agree with the reviews: a Secret outside the function namespaces
    replica = next(r for r in setup.replicas if r.proc.poll() is None)
    assert replica.ready()


def test_the_secret_watch_carries_no_values(setup: Setup) -> None:
    """The webhook's own Secret lister, as the webhook's identity: names and resourceVersions
    of the function namespace's Secrets arrive, their data does not (list and watch)."""
    kubeconfig = next(setup.replicas[0].log.parent.glob("sa-kubeconfig"))

    async def look() -> tuple[Any, list[Any]]:
        api = await api_client(str(kubeconfig))
        assert api is not None
        try:
            lister = secret_metadata_lister(api, FUNCTIONS)
            listed = await lister()
            events = []
            stream = watch.Watch(return_type="V1Secret")
            async with stream:
                async for event in stream.stream(lister, resource_version="0", timeout_seconds=1):
                    events.append(event["object"])
            return listed, events
        finally:
            await api.close()

    listed, events = asyncio.run(look())
    names = {s.metadata.name for s in listed.items}
    assert "db-creds" in names
    assert all(s.data is None and s.string_data is None for s in listed.items)
    assert events and all(s.data is None for s in events)
    assert all(s.metadata.resource_version for s in listed.items)
