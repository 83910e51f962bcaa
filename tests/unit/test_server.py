"""The server in-process: routes, bad input, metrics, readiness, facts, reloads, logs.

Plain HTTP through pytest-aiohttp against `create_app`/`create_ops_app`; TLS behaviour of
`ServingCerts` with in-memory handshakes (no sockets). The real process is in
tests/integration.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import io
import json
import logging
import shutil
import socket
import ssl
import sys
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import jsonpatch
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from cryptography import x509

from tests.metrics import metric_value
from tests.pki import Pki
from tests.polling import until
from tests.reviews import admission_review, patch_of
from tests.worker import statefulset
from webhook import cli, configfile
from webhook.core import mutation
from webhook.core.cluster import ClusterFacts, Lookups
from webhook.core.config import Config, default_config, loads
from webhook.server import app, facts, handlers, logs, tls
from webhook.server.metrics import Metrics
from webhook.server.state import ServerState

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[..., Awaitable[Client]]


@pytest.fixture(autouse=True)
def no_cluster_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`serve` finds a cluster through $KUBECONFIG, ~/.kube/config or a pod's environment: none
    of the machine's may reach these tests; a test that wants one sets it."""
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


SECRET_VALUE = "s3cr3t-v4lue"
TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0ZXN0In0.c2lnbmF0dXJl"


def worker_statefulset() -> dict[str, Any]:
    return statefulset(
        secrets={"DB_PASSWORD": {"path": "db-creds", "key": "password"}},
        auth="sa-token",
        ca_secret="broker-ca",
        audience="pulsar",
    )


def long_named_statefulset() -> dict[str, Any]:
    obj = statefulset(name="a-function-with-a-rather-long-names")
    assert len(obj["metadata"]["name"]) == 53
    return obj


class FakeProvider:
    """A facts provider with scripted answers: a real small implementation of the Protocol."""

    def __init__(
        self, *, facts: ClusterFacts | None = None, delay: float = 0.0, ready: bool = True
    ) -> None:
        self.answer, self.delay, self.is_ready = facts, delay, ready
        self.namespaces: list[str] = []
        self.asked: list[Lookups] = []
        self.closed = False
        self.abandoned = 0  # lookups the server stopped waiting for

    async def facts(
        self, lookups: Lookups, *, namespace: str, timeout: float
    ) -> ClusterFacts | None:
        self.namespaces.append(namespace)
        self.asked.append(lookups)
        try:
            await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.abandoned += 1
            raise
        return self.answer

    def ready(self) -> bool:
        return self.is_ready

    async def close(self) -> None:
        self.closed = True


def state_with(provider: facts.FactsProvider | None = None, **kwargs: Any) -> ServerState:
    async def factory(config: Config) -> facts.FactsProvider:
        return provider if provider is not None else facts.NoClusterFacts()

    kwargs.setdefault("config", default_config())
    return ServerState(facts_factory=factory, **kwargs)


@pytest.fixture
def state() -> ServerState:
    return state_with()


@pytest.fixture
async def client(aiohttp_client: ClientFactory, state: ServerState) -> Client:
    return await aiohttp_client(handlers.create_app(state))


@pytest.fixture
async def ops(aiohttp_client: ClientFactory, state: ServerState, client: Client) -> Client:
    return await aiohttp_client(handlers.create_ops_app(state))


async def post_review(client: Client, path: str, doc: Any, *, status: int = 200) -> dict[str, Any]:
    resp = await client.post(path, json=doc)
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    answer: dict[str, Any] = await resp.json()
    assert answer["apiVersion"] == "admission.k8s.io/v1"
    assert answer["kind"] == "AdmissionReview"
    return answer


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


# --------------------------------------------------------------------------- reviews


async def test_mutate_returns_a_patch_that_turns_the_object_into_the_core_output(
    client: Client,
) -> None:
    obj = worker_statefulset()
    answer = await post_review(client, "/mutate", admission_review(obj, uid="uid-mutate"))
    response = answer["response"]
    assert response["uid"] == "uid-mutate"
    assert response["allowed"] is True
    assert response["patchType"] == "JSONPatch"
    ops = patch_of(response)
    patched = jsonpatch.apply_patch(copy.deepcopy(obj), ops)
    expected = mutation.mutate(obj, default_config(), namespace="pulsar-functions").obj
    assert patched == expected
    assert patched != obj


async def test_validate_refuses_a_53_character_statefulset_name(client: Client) -> None:
    answer = await post_review(client, "/validate", admission_review(long_named_statefulset()))
    response = answer["response"]
    assert response["allowed"] is False
    assert "[naming/statefulset-name]" in response["status"]["message"]
    assert "patch" not in response and "patchType" not in response


async def test_warnings_are_at_most_120_characters(aiohttp_client: ClientFactory) -> None:
    warn = loads("webhook: {policy: {enforcement: warn}}")
    client = await aiohttp_client(handlers.create_app(state_with(config=warn)))
    answer = await post_review(client, "/validate", admission_review(long_named_statefulset()))
    response = answer["response"]
    assert response["allowed"] is True
    assert response["warnings"], response
    assert all(len(w) <= 120 for w in response["warnings"])
    assert any(w.startswith("[naming/statefulset-name]") for w in response["warnings"])


@pytest.mark.parametrize("operation", ["DELETE", "CONNECT"])
async def test_operations_other_than_create_and_update_are_allowed(
    client: Client, operation: str
) -> None:
    doc = admission_review(None, operation=operation)
    for path in ("/mutate", "/validate"):
        answer = await post_review(client, path, doc)
        assert answer["response"] == {"uid": doc["request"]["uid"], "allowed": True}


async def test_dry_run_gets_the_same_answer(client: Client) -> None:
    obj = worker_statefulset()
    wet = await post_review(client, "/mutate", admission_review(obj))
    dry = await post_review(client, "/mutate", admission_review(obj, dry_run=True))
    assert wet == dry


# --------------------------------------------------------------------------- bad input


BAD_INPUT = [
    pytest.param(
        "POST",
        "/mutate",
        b'{"apiVersion": ',
        "application/json",
        400,
        "not valid JSON",
        id="malformed-json",
    ),
    pytest.param(
        "POST",
        "/validate",
        b"[1, 2]",
        "application/json",
        400,
        "must be a JSON object",
        id="not-an-object",
    ),
    pytest.param("POST", "/mutate", b'{"a": NaN}', "application/json", 400, "NaN", id="nan"),
    pytest.param("POST", "/mutate", b"\xff\xfe\xfa", "application/json", 400, "not", id="not-utf8"),
    pytest.param(
        "POST", "/mutate", b"[" * 100_000, "application/json", 400, "JSON", id="deeply-nested"
    ),
    pytest.param(
        "POST",
        "/mutate",
        json.dumps(
            {
                "apiVersion": "admission.k8s.io/v1beta1",
                "kind": "AdmissionReview",
                "request": {"uid": "x"},
            }
        ).encode(),
        "application/json",
        400,
        "expected apiVersion admission.k8s.io/v1",
        id="wrong-api-version",
    ),
    pytest.param(
        "POST",
        "/validate",
        json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "StatefulSet"}).encode(),
        "application/json",
        400,
        "kind AdmissionReview",
        id="wrong-kind",
    ),
    pytest.param(
        "POST",
        "/mutate",
        json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).encode(),
        "application/json",
        400,
        "request is missing",
        id="missing-request",
    ),
    pytest.param(
        "POST",
        "/mutate",
        json.dumps(
            {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "request": {"operation": "CREATE", "object": {}},
            }
        ).encode(),
        "application/json",
        400,
        "request.uid is missing",
        id="missing-uid",
    ),
    pytest.param("GET", "/mutate", b"", None, 405, "method GET is not allowed", id="wrong-method"),
    pytest.param("PUT", "/validate", b"{}", "application/json", 405, "use POST", id="put"),
    pytest.param(
        "POST", "/admit", b"{}", "application/json", 404, "no such path /admit", id="unknown-path"
    ),
    pytest.param(
        "POST", "/mutate", b"{}", "text/plain", 415, "application/json", id="content-type"
    ),
    pytest.param("POST", "/mutate", b"{}", None, 415, "application/json", id="no-content-type"),
    pytest.param(
        "POST",
        "/mutate",
        b" " * (3 * 1024 * 1024 + 1),
        "application/json",
        413,
        "limit",
        id="too-large",
    ),
]


@pytest.mark.parametrize(("method", "path", "body", "content_type", "status", "text"), BAD_INPUT)
async def test_bad_input_gets_a_clear_4xx_with_a_json_error(
    client: Client,
    method: str,
    path: str,
    body: bytes,
    content_type: str | None,
    status: int,
    text: str,
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    resp = await client.request(method, path, data=io.BytesIO(body), headers=headers)
    assert resp.status == status
    assert resp.content_type == "application/json"
    doc = await resp.json()
    assert list(doc) == ["error"]
    assert text in doc["error"]
    assert "\n" not in doc["error"] and "Traceback" not in doc["error"]
    if status == 405:
        assert resp.headers["Allow"] == "POST"


async def test_a_well_formed_review_of_a_broken_object_is_a_denial(client: Client) -> None:
    obj = worker_statefulset()
    obj["spec"]["template"]["spec"]["containers"] = "not-a-list"
    for path in ("/mutate", "/validate"):
        answer = await post_review(client, path, admission_review(obj, uid="uid-broken"))
        assert answer["response"]["uid"] == "uid-broken"
        assert answer["response"]["allowed"] is False
        assert answer["response"]["status"]["message"]


async def test_charset_in_content_type_is_accepted(client: Client) -> None:
    body = json.dumps(admission_review(worker_statefulset())).encode()
    resp = await client.post(
        "/mutate", data=body, headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert resp.status == 200


async def test_ops_port_errors_are_json_too(ops: Client) -> None:
    resp = await ops.get("/mutate")
    assert resp.status == 404
    assert "GET /healthz, /readyz, /metrics" in (await resp.json())["error"]
    resp = await ops.post("/healthz")
    assert resp.status == 405


# --------------------------------------------------------------------------- internal errors


async def test_a_failure_inside_the_review_is_a_500_review_naming_the_exception_type(
    aiohttp_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # Facts the core cannot use (secrets=None) make it raise TypeError inside respond().
    bad = FakeProvider(facts=ClusterFacts(secrets=cast(Any, None)))
    state = state_with(bad)
    client = await aiohttp_client(handlers.create_app(state))
    ops = await aiohttp_client(handlers.create_ops_app(state))
    obj = statefulset(secrets={"DB_PASSWORD": {"path": "db-creds", "key": SECRET_VALUE}})
    with caplog.at_level(logging.INFO, logger="webhook.server"):
        answer = await post_review(
            client, "/validate", admission_review(obj, uid="uid-boom"), status=500
        )
    assert answer["response"] == {
        "uid": "uid-boom",
        "allowed": False,
        "status": {
            "code": 500,
            "reason": "InternalError",
            "message": "internal error in pf-webhook: TypeError",
        },
    }
    metrics = await (await ops.get("/metrics")).text()
    assert metric_value(metrics, "pf_webhook_errors_total", kind="internal") == 1
    assert (
        metric_value(metrics, "pf_webhook_decisions_total", endpoint="validate", decision="error")
        == 1
    )
    lines = [logs.JsonFormatter().format(r) for r in caplog.records]
    assert any('"internal error"' in line and "TypeError" in line for line in lines)
    assert not any(SECRET_VALUE in line or "Traceback" in line for line in lines)


async def test_an_unexpected_exception_before_the_uid_is_known_is_a_json_500(
    aiohttp_client: ClientFactory, state: ServerState
) -> None:
    admission = handlers.create_app(state)

    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("contents that must not leak")

    admission.router.add_post("/boom", boom)
    client = await aiohttp_client(admission)
    resp = await client.post("/boom", json={})
    assert resp.status == 500
    assert await resp.json() == {"error": "internal error in pf-webhook: RuntimeError"}
    assert sample(state.metrics, "pf_webhook_errors_total", kind="internal") == 1


# --------------------------------------------------------------------------- cluster facts


async def test_validate_asks_the_provider_with_the_request_namespace(
    aiohttp_client: ClientFactory,
) -> None:
    provider = FakeProvider(facts=ClusterFacts(secrets={"db-creds": None}, statefulsets=()))
    client = await aiohttp_client(handlers.create_app(state_with(provider)))
    obj = statefulset(secrets={"DB_PASSWORD": {"path": "db-creds", "key": "password"}})
    answer = await post_review(
        client, "/validate", admission_review(obj, namespace="functions-prod")
    )
    assert provider.namespaces == ["functions-prod"]
    # the plain lookups the core worked out from its one reading of the object
    assert provider.asked == [Lookups(secrets=("db-creds",), statefulsets=True)]
    assert any("Secret db-creds does not exist" in w for w in answer["response"]["warnings"])
    await post_review(client, "/mutate", admission_review(obj))
    assert provider.namespaces == ["functions-prod"], "mutate needs no cluster facts"
    other = copy.deepcopy(obj)
    # detection reads the selector (options can rewrite labels, never the selector)
    other["metadata"]["labels"] = {"app": "zookeeper"}
    other["spec"]["selector"]["matchLabels"] = {"app": "zookeeper"}
    other["spec"]["template"]["metadata"]["labels"] = {"app": "zookeeper"}
    del other["kind"]  # the API server sends it; request.kind fills it in when absent
    doc = admission_review(other)
    answer = await post_review(client, "/validate", doc)
    assert answer["response"] == {"uid": doc["request"]["uid"], "allowed": True}
    assert provider.namespaces == ["functions-prod"], "not a function: no cluster lookups"
    fn = copy.deepcopy(obj)
    del fn["kind"], fn["apiVersion"]
    await post_review(client, "/validate", admission_review(fn, namespace="functions-dev"))
    assert provider.namespaces == ["functions-prod", "functions-dev"]


async def test_a_slow_cluster_is_reported_as_unavailable_within_the_timeout(
    aiohttp_client: ClientFactory,
) -> None:
    config = loads("webhook: {kube: {timeoutSeconds: 0.05}}")
    provider = FakeProvider(facts=ClusterFacts(), delay=30)
    client = await aiohttp_client(handlers.create_app(state_with(provider, config=config)))
    obj = statefulset(secrets={"DB_PASSWORD": {"path": "db-creds", "key": "password"}})
    answer = await post_review(client, "/validate", admission_review(obj))
    assert provider.abandoned == 1, "the answer came from the timeout, not the provider"
    response = answer["response"]
    everything = json.dumps(response)
    assert "API server did not answer within 0.05s" in everything


async def test_an_api_server_that_never_answers_always_gives_the_same_decision(
    aiohttp_client: ClientFactory,
) -> None:
    """The real cluster client against a TCP peer that accepts and never answers: every
    review needing a live Secret read gets the same decision, within one budget."""
    from kubernetes_asyncio import client as k8s

    from webhook.kube.caches import ClusterCaches

    silent: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        silent.append(writer)

    peer = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = peer.sockets[0].getsockname()[1]
    api = k8s.ApiClient(k8s.Configuration(host=f"http://127.0.0.1:{port}"))
    provider = ClusterCaches(api, timeout=0.2)
    reflectors: list[Any] = [*provider.secret_meta.values(), provider.statefulsets]
    for reflector in reflectors:
        reflector.synced.set()  # as after the first list; the watches are not started
    config = loads("webhook: {kube: {timeoutSeconds: 0.2}, secrets: {verify: warn}}")
    try:
        client = await aiohttp_client(handlers.create_app(state_with(provider, config=config)))
        obj = statefulset(secrets={"DB_PASSWORD": {"path": "db-creds", "key": "password"}})
        answers = [
            (await post_review(client, "/validate", admission_review(obj)))["response"]
            for _ in range(5)
        ]
    finally:
        await api.close()
        for writer in silent:
            writer.close()
        peer.close()
    assert all(a == answers[0] for a in answers), answers
    assert answers[0]["allowed"] is True  # secrets.verify: warn
    assert any(
        "could not check Secret db-creds: API server did not answer within 0.2s" in w
        for w in answers[0]["warnings"]
    )


async def test_the_provider_is_closed_on_cleanup(aiohttp_client: ClientFactory) -> None:
    provider = FakeProvider()
    state = state_with(provider)
    client = await aiohttp_client(handlers.create_app(state))
    assert state.provider is provider
    await client.close()
    assert provider.closed and state.provider is None


# --------------------------------------------------------------------------- health, readiness, metrics


async def test_readyz_follows_the_provider_and_shutdown(aiohttp_client: ClientFactory) -> None:
    provider = FakeProvider(ready=False)
    state = state_with(provider)
    ops = await aiohttp_client(handlers.create_ops_app(state))
    resp = await ops.get("/readyz")
    assert resp.status == 503
    assert (await resp.json())["reasons"] == ["cluster client not started"]
    await aiohttp_client(handlers.create_app(state))
    resp = await ops.get("/readyz")
    assert resp.status == 503
    assert (await resp.json())["reasons"] == ["cluster caches not synced"]
    provider.is_ready = True
    resp = await ops.get("/readyz")
    assert resp.status == 200
    assert await resp.json() == {"ready": True}
    state.shutting_down = True
    assert (await ops.get("/readyz")).status == 503
    assert (await ops.get("/healthz")).status == 200


async def test_metrics_count_decisions_findings_and_errors(client: Client, ops: Client) -> None:
    await post_review(client, "/mutate", admission_review(worker_statefulset()))
    await post_review(client, "/validate", admission_review(long_named_statefulset()))
    await client.post("/mutate", data=b"{", headers={"Content-Type": "application/json"})
    await client.post("/mutate", data=b"{}", headers={"Content-Type": "text/yaml"})
    resp = await ops.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    text = await resp.text()
    assert (
        metric_value(text, "pf_webhook_decisions_total", endpoint="mutate", decision="patched") == 1
    )
    assert (
        metric_value(text, "pf_webhook_decisions_total", endpoint="validate", decision="denied")
        == 1
    )
    assert (
        metric_value(
            text, "pf_webhook_findings_total", rule="naming/statefulset-name", action="deny"
        )
        == 1
    )
    assert metric_value(text, "pf_webhook_errors_total", kind="bad_json") == 1
    assert metric_value(text, "pf_webhook_errors_total", kind="content_type") == 1
    assert metric_value(text, "pf_webhook_request_duration_seconds_count", endpoint="mutate") == 3
    assert 'pf_webhook_request_duration_seconds_bucket{endpoint="mutate",le="0.0005"}' in text
    assert 'le="10.0"' in text
    assert metric_value(text, "pf_webhook_cert_reloads_total") == 0
    assert metric_value(text, "pf_webhook_config_reloads_total", result="error") == 0


async def test_each_app_has_its_own_registry() -> None:
    one, two = Metrics(), Metrics()
    one.errors.labels("bad_json").inc()
    assert sample(two, "pf_webhook_errors_total", kind="bad_json") == 0


# --------------------------------------------------------------------------- logs


async def test_one_json_log_line_per_review_without_object_contents(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    obj = worker_statefulset()
    env = obj["spec"]["template"]["spec"]["containers"][0]["env"]
    env.append({"name": "DB_PASSWORD", "value": SECRET_VALUE})
    command = obj["spec"]["template"]["spec"]["containers"][0]["command"]
    command[-1] = command[-1].replace("file:///etc/auth/token", f"token:{TOKEN}")
    with caplog.at_level(logging.INFO, logger="webhook.server"):
        answer = await post_review(client, "/mutate", admission_review(obj, uid="uid-log"))
    assert answer["response"]["allowed"] is True
    reviews = [r for r in caplog.records if r.getMessage() == "review"]
    assert len(reviews) == 1
    line = logs.JsonFormatter().format(reviews[0])
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["uid"] == "uid-log"
    assert {
        "kind": entry["kind"],
        "namespace": entry["namespace"],
        "operation": entry["operation"],
        "decision": entry["decision"],
        "dry_run": entry["dry_run"],
    } == {
        "kind": "StatefulSet",
        "namespace": "pulsar-functions",
        "operation": "CREATE",
        "decision": "patched",
        "dry_run": False,
    }
    assert entry["name"] == obj["metadata"]["name"]
    assert isinstance(entry["latency_ms"], float) and isinstance(entry["warnings"], int)
    assert isinstance(entry["rules"], list)
    for record in caplog.records:
        text = logs.JsonFormatter().format(record)
        assert SECRET_VALUE not in text and TOKEN not in text


def test_the_json_formatter_writes_the_exception_type_not_the_traceback() -> None:
    try:
        raise ValueError(f"object contents {SECRET_VALUE}")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = logs.JsonFormatter().format(record)
    assert json.loads(line)["error"] == "ValueError"
    assert SECRET_VALUE not in line and "Traceback" not in line and "\n" not in line


# --------------------------------------------------------------------------- certificates


def serial_of(pem_or_der: bytes) -> int:
    if pem_or_der.startswith(b"-----"):
        return x509.load_pem_x509_certificate(pem_or_der).serial_number
    return x509.load_der_x509_certificate(pem_or_der).serial_number


def handshake(server_ctx: ssl.SSLContext, ca: Path, *, tls13_only: bool = False) -> bytes:
    """A TLS handshake through memory BIOs; returns the server certificate (DER)."""
    client_ctx = ssl.create_default_context(cafile=str(ca))
    if tls13_only:
        client_ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname="localhost")
    peer = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for side, out, other_in in ((client, c_out, s_in), (peer, s_out, c_in)):
            with contextlib.suppress(ssl.SSLWantReadError):
                side.do_handshake()
            data = out.read()
            if data:
                other_in.write(data)
    der = client.getpeercert(binary_form=True)
    assert der is not None
    return der


def test_a_half_replaced_pair_keeps_the_old_certificate_until_the_key_follows(
    tmp_path: Path, pki: Pki
) -> None:
    live = tmp_path / "certs"
    shutil.copytree(pki.serving, live)
    serving = tls.ServingCerts(live)
    serving.load()
    metrics = Metrics()
    first = serial_of((pki.serving / "tls.crt").read_bytes())
    second = serial_of((pki.rotated / "tls.crt").read_bytes())
    assert serial_of(handshake(serving.context, live / "ca.crt")) == first

    staged = tmp_path / "staged.crt"
    shutil.copy(pki.rotated / "tls.crt", staged)
    staged.replace(live / "tls.crt")  # the certificate first, the key not yet
    assert serving.reload(metrics) is False
    assert serving.reload(metrics) is False  # retried every poll, counted and logged once
    assert sample(metrics, "pf_webhook_errors_total", kind="cert_reload") == 1
    assert serial_of(handshake(serving.context, live / "ca.crt")) == first

    staged = tmp_path / "staged.key"
    shutil.copy(pki.rotated / "tls.key", staged)
    staged.replace(live / "tls.key")
    assert serving.reload(metrics) is True
    assert sample(metrics, "pf_webhook_cert_reloads_total") == 1
    assert serial_of(handshake(serving.context, live / "ca.crt")) == second
    assert serving.reload(metrics) is False  # nothing changed since


def test_tls_minimum_version_is_configurable(pki: Pki) -> None:
    assert tls.ServingCerts(pki.serving).context.minimum_version == ssl.TLSVersion.TLSv1_2
    tls13 = tls.ServingCerts(pki.serving, min_version="1.3")
    tls13.load()
    assert tls13.context.minimum_version == ssl.TLSVersion.TLSv1_3
    assert handshake(tls13.context, pki.serving / "ca.crt", tls13_only=True)


def test_client_ca_requires_client_certificates(pki: Pki) -> None:
    serving = tls.ServingCerts(pki.serving, client_ca=pki.other / "ca.crt")
    assert serving.context.verify_mode == ssl.CERT_REQUIRED
    with pytest.raises(tls.CertLoadError, match="--client-ca"):
        tls.ServingCerts(pki.serving, client_ca=pki.other / "missing.crt")


def test_unloadable_pair_is_a_one_line_startup_error(tmp_path: Path, pki: Pki) -> None:
    shutil.copy(pki.serving / "tls.crt", tmp_path / "tls.crt")
    shutil.copy(pki.rotated / "tls.key", tmp_path / "tls.key")
    with pytest.raises(tls.CertLoadError) as caught:
        tls.ServingCerts(tmp_path).load()
    assert "\n" not in str(caught.value) and "tls.key" in str(caught.value)


# --------------------------------------------------------------------------- config reload


async def test_config_file_changes_are_picked_up_and_bad_ones_ignored(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    path = tmp_path / "functions_worker.yml"
    path.write_text("webhook: {policy: {enforcement: deny}}\n")

    def override(config: Config) -> Config:
        return replace(config, server=replace(config.server, port=9443))

    state = state_with(
        config=override(configfile.read(path)),
        config_path=path,
        overrides=override,
        poll_interval=0.01,
    )
    client = await aiohttp_client(handlers.create_app(state))
    doc = admission_review(long_named_statefulset())
    assert (await post_review(client, "/validate", doc))["response"]["allowed"] is False

    staged = tmp_path / "staged.yml"
    staged.write_text("webhook: {policy: {enforcement: warn}}\n")
    staged.replace(path)
    await until(lambda: state.config.enforcement == "warn")
    assert state.config.server.port == 9443, "CLI flags still win after a reload"
    answer = await post_review(client, "/validate", doc)
    assert answer["response"]["allowed"] is True and answer["response"]["warnings"]

    staged.write_text("webhook: {policy: {enforcement: sometimes}}\n")
    staged.replace(path)
    await until(
        lambda: sample(state.metrics, "pf_webhook_config_reloads_total", result="error") == 1
    )
    assert state.config.enforcement == "warn"
    assert sample(state.metrics, "pf_webhook_config_reloads_total", result="ok") == 1


# --------------------------------------------------------------------------- main: startup errors


def serve_args(tmp_path: Path, **kwargs: Any) -> argparse.Namespace:
    values: dict[str, Any] = {
        "config": None,
        "cert_dir": str(tmp_path / "certs"),
        "port": 0,
        "metrics_port": 0,
        "client_ca": None,
        "host": "127.0.0.1",
        "kubeconfig": None,
    }
    values.update(kwargs)
    return argparse.Namespace(**values)


def test_startup_errors_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bad_config = tmp_path / "bad.yml"
    bad_config.write_text("webhook: {policy: {enforcement: sometimes}}\n")
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    cases = [
        serve_args(tmp_path, config=str(tmp_path / "missing.yml")),
        serve_args(tmp_path, config=str(bad_config)),
        serve_args(tmp_path, cert_dir=str(a_file)),
        serve_args(tmp_path, client_ca=str(tmp_path / "no-ca.crt")),
        serve_args(tmp_path, port=70000),
    ]
    for args in cases:
        assert app.main(args) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, err
        assert "Traceback" not in err
    monkeypatch.setenv(app.DRAIN_ENV, "soon")
    assert app.main(serve_args(tmp_path)) == 2
    assert app.DRAIN_ENV in capsys.readouterr().err


def test_a_busy_port_and_a_failing_cluster_client_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert app.main(serve_args(tmp_path, port=port)) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and err.count("\n") == 1

    async def failing(config: Config) -> facts.FactsProvider:
        raise OSError(2, "No such file or directory")

    assert app.main(serve_args(tmp_path), facts_provider_factory=failing) == 2
    err = capsys.readouterr().err
    assert err == "error: cluster client: No such file or directory\n"


def test_without_a_cluster_there_are_no_cluster_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert facts.cluster_facts_factory(default_config()) is facts.no_cluster


def test_manage_certs_and_function_namespace_flag_errors_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    parser = cli.build_parser()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("{}")
    cases = {
        "needs a cluster": ["serve", "--manage-certs"],
        "pass --namespace": ["serve", "--manage-certs", "--kubeconfig", str(kubeconfig)],
        "--lease-duration": [
            "serve",
            "--manage-certs",
            "--kubeconfig",
            str(kubeconfig),
            "--namespace",
            "pf",
            "--lease-duration",
            "0",
        ],
        "--ca-propagation": [
            "serve",
            "--manage-certs",
            "--kubeconfig",
            str(kubeconfig),
            "--namespace",
            "pf",
            "--ca-propagation",
            "-1",
        ],
        "not a namespace name": ["serve", "--function-namespace", "a,Not_One"],
    }
    for expected, argv in cases.items():
        args = parser.parse_args([*argv, "--cert-dir", str(tmp_path / "certs")])
        assert app.main(args) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and expected in err, err
