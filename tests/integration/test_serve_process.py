"""A real `pf-webhook serve` process over HTTPS: answers, bad input, certificate rotation,
SIGTERM drain, config reload, what its logs never contain, and client certificates.

Clients trust only the test CA. Waits poll a condition with a deadline; none sleeps a fixed
time to hide a race.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import io
import json
import os
import shutil
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import jsonpatch
import pytest
from cryptography import x509

from tests.integration.conftest import Served, ServeFactory
from tests.metrics import read_metric
from tests.pki import Pki
from tests.polling import until
from tests.reviews import admission_review, patch_of
from tests.worker import statefulset

pytestmark = pytest.mark.slow

SECRET_VALUE = "s3cr3t-v4lue"
TOKEN = (
    "eyJhbGciOiJSUzI1NiIsImtpZCI6InRlc3QifQ.eyJzdWIiOiJwdWxzYXItZnVuY3Rpb24ifQ.c2lnbmF0dXJlLXRlc3Q"
)
JSON = {"Content-Type": "application/json"}


# --------------------------------------------------------------------------- helpers


def worker_statefulset(**kwargs: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "secrets": {"DB_PASSWORD": {"path": "db-creds", "key": "password"}},
        "auth": "sa-token",
        "ca_secret": "broker-ca",
        "audience": "pulsar",
    }
    params.update(kwargs)
    return statefulset(**params)


LONG_NAME = "a-function-with-a-rather-long-names"  # pf-public-default-<this> is 53 characters


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "webhook", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@contextlib.asynccontextmanager
async def https_session(
    pki: Pki, *, with_client_cert: bool = False
) -> AsyncIterator[aiohttp.ClientSession]:
    """A session trusting only the test CA. Keep-alive, as the API server does; and closing a
    session waits for its pooled TLS connections to shut down, which force_close would skip."""
    connector = aiohttp.TCPConnector(ssl=pki.client_context(with_client_cert=with_client_cert))
    async with aiohttp.ClientSession(connector=connector) as session:
        yield session


async def post_review(session: aiohttp.ClientSession, url: str, doc: Any) -> dict[str, Any]:
    async with session.post(url, data=json.dumps(doc).encode(), headers=JSON) as resp:
        text = await resp.text()
        assert resp.status == 200, text
        answer: dict[str, Any] = json.loads(text)
    assert answer["apiVersion"] == "admission.k8s.io/v1"
    assert answer["kind"] == "AdmissionReview"
    assert answer["response"]["uid"] == doc["request"]["uid"]
    return answer


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, await resp.text()


async def raw_exchange(
    served: Served, pki: Pki, body: bytes, *, path: str = "/mutate"
) -> tuple[int, bytes, bytes]:
    """One request on its own TLS connection; returns (status, body, server certificate DER)."""
    url = urlsplit(served.https)
    reader, writer = await asyncio.open_connection(url.hostname, url.port, ssl=pki.client_context())
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True)
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        response = await reader.read()
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()
    head, _, payload = response.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), payload, der


def serial(pem_or_der: bytes) -> int:
    if pem_or_der.startswith(b"-----"):
        return x509.load_pem_x509_certificate(pem_or_der).serial_number
    return x509.load_der_x509_certificate(pem_or_der).serial_number


# --------------------------------------------------------------------------- (1) answers


async def test_a_worker_statefulset_gets_the_patch_the_cli_computes(
    serve: ServeFactory, pki: Pki, tmp_path: Path
) -> None:
    served = serve()
    obj = worker_statefulset()
    source = tmp_path / "statefulset.json"
    source.write_text(json.dumps(obj))
    cli = run_cli("mutate", "-f", str(source), "-o", "json", cwd=tmp_path)
    assert cli.returncode == 0, cli.stderr
    expected = json.loads(cli.stdout)

    async with https_session(pki) as session:
        answer = await post_review(session, served.https + "/mutate", admission_review(obj))
    response = answer["response"]
    assert response["allowed"] is True and response["patchType"] == "JSONPatch"
    ops = patch_of(response)
    assert jsonpatch.apply_patch(copy.deepcopy(obj), ops) == expected
    assert expected != obj


async def test_a_denial_carries_every_finding(
    serve: ServeFactory, pki: Pki, tmp_path: Path
) -> None:
    served = serve()
    obj = worker_statefulset(name=LONG_NAME)
    source = tmp_path / "statefulset.json"
    source.write_text(json.dumps(obj))
    cli = run_cli("validate", "-f", str(source), "-o", "json", cwd=tmp_path)
    assert cli.returncode == 1, cli.stderr
    denials = [f for f in json.loads(cli.stdout)["findings"] if f["action"] == "deny"]
    assert {f["rule"] for f in denials} >= {"naming/statefulset-name", "tokens/mount-path"}

    async with https_session(pki) as session:
        answer = await post_review(session, served.https + "/validate", admission_review(obj))
    response = answer["response"]
    assert response["allowed"] is False
    for finding in denials:
        assert (
            f"[{finding['rule']}] {finding['path']}: {finding['message']}"
            in (response["status"]["message"])
        )


# --------------------------------------------------------------------------- (2) bad input


REVIEW = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}
BAD_INPUT: list[tuple[str, str, bytes, str | None, int]] = [
    ("POST", "/mutate", b'{"apiVersion": "admission', "application/json", 400),
    ("POST", "/validate", json.dumps({**REVIEW, "apiVersion": "v1"}).encode(), "application/json", 400),
    ("POST", "/mutate", json.dumps({**REVIEW, "kind": "Pod"}).encode(), "application/json", 400),
    ("POST", "/mutate", json.dumps(REVIEW).encode(), "application/json", 400),
    ("POST", "/validate", json.dumps({**REVIEW, "request": {"operation": "CREATE"}}).encode(), "application/json", 400),
    ("GET", "/validate", b"", None, 405),
    ("DELETE", "/mutate", b"", None, 405),
    ("POST", "/", b"{}", "application/json", 404),
    ("POST", "/mutate", b"{}", "application/x-www-form-urlencoded", 415),
    ("POST", "/validate", b" " * (3 * 1024 * 1024 + 1), "application/json", 413),
    ("POST", "/mutate", b"[" * 200_000 + b"]" * 200_000, "application/json", 400),
]  # fmt: skip


async def test_bad_input_gets_clear_errors_and_the_server_keeps_serving(
    serve: ServeFactory, pki: Pki
) -> None:
    served = serve()
    async with https_session(pki) as session:
        for method, path, body, content_type, status in BAD_INPUT:
            headers = {"Content-Type": content_type} if content_type else {}
            async with session.request(
                method, served.https + path, data=io.BytesIO(body), headers=headers
            ) as resp:
                assert resp.status == status, (method, path, status, await resp.text())
                assert resp.content_type == "application/json"
                doc = await resp.json()
                assert list(doc) == ["error"] and doc["error"], doc
                assert "Traceback" not in doc["error"]

        broken = worker_statefulset()
        broken["spec"]["template"]["spec"] = ["not", "a", "pod", "spec"]
        answer = await post_review(session, served.https + "/validate", admission_review(broken))
        assert answer["response"]["allowed"] is False
        assert answer["response"]["status"]["message"]

        assert await get(served.http + "/healthz") == (200, '{"status":"ok"}')
        answer = await post_review(
            session, served.https + "/mutate", admission_review(worker_statefulset())
        )
        assert answer["response"]["allowed"] is True and answer["response"]["patch"]
    assert served.proc.poll() is None
    assert "Traceback" not in served.logs()
    assert (
        await read_metric(served.http, "pf_webhook_errors_total", default=0, kind="too_large") == 1
    )


# --------------------------------------------------------------------------- (3) rotation


async def test_replaced_certificates_are_served_without_a_failed_request(
    serve: ServeFactory, pki: Pki, tmp_path: Path
) -> None:
    served = serve()
    live = served.cert_dir
    old_serial = serial((live / "tls.crt").read_bytes())
    staging = tmp_path / "staging"
    shutil.copytree(pki.rotated, staging)  # a new pair from the same CA
    new_serial = serial((staging / "tls.crt").read_bytes())
    assert (staging / "ca.crt").read_bytes() == (live / "ca.crt").read_bytes()

    body = json.dumps(admission_review(worker_statefulset())).encode()
    seen: list[int] = []
    failures: list[str] = []
    stop = asyncio.Event()

    async def client() -> None:
        while not stop.is_set():
            try:
                status, payload, der = await raw_exchange(served, pki, body)
            except (OSError, ssl.SSLError, ValueError, IndexError) as exc:
                failures.append(repr(exc))
                continue
            if status != 200 or json.loads(payload)["response"]["allowed"] is not True:
                failures.append(f"HTTP {status}: {payload[:200]!r}")
            seen.append(serial(der))

    clients = [asyncio.create_task(client()) for _ in range(3)]
    try:

        async def progressed(count: int) -> Callable[[], Awaitable[bool]]:
            target = len(seen) + count

            async def check() -> bool:
                return len(seen) >= target or bool(failures)

            return check

        await until(await progressed(5), what="first reviews")
        # Half a rotation: the certificate first. The server must keep serving the old pair.
        os.replace(staging / "tls.crt", live / "tls.crt")

        async def kept_old_pair() -> bool:
            return (
                await read_metric(
                    served.http, "pf_webhook_errors_total", default=0, kind="cert_reload"
                )
                >= 1
            )

        await until(kept_old_pair, what="the server to notice the half-replaced pair")
        await until(await progressed(5), what="reviews while the pair is mismatched")
        assert seen[-1] == old_serial
        os.replace(staging / "tls.key", live / "tls.key")

        async def new_certificate_served() -> bool:
            return new_serial in seen or bool(failures)

        await until(new_certificate_served, what="the new certificate on the client side")
    finally:
        stop.set()
        await asyncio.gather(*clients)
    assert failures == []
    assert old_serial in seen and seen[-1] == new_serial
    assert await read_metric(served.http, "pf_webhook_cert_reloads_total") == 1
    assert "serving certificate reloaded" in served.stderr


# --------------------------------------------------------------------------- (4) SIGTERM


async def test_sigterm_drains_then_finishes_in_flight_reviews_and_exits_0(
    serve: ServeFactory, pki: Pki
) -> None:
    served = serve(env={"PF_WEBHOOK_SHUTDOWN_DELAY": "2"})
    url = urlsplit(served.https)
    body = json.dumps(admission_review(worker_statefulset(), uid="in-flight")).encode()
    async with https_session(pki) as session:
        await post_review(session, served.https + "/mutate", admission_review(worker_statefulset()))

        # A review in flight: headers sent, the server answered 100 Continue, body not yet sent.
        reader, writer = await asyncio.open_connection(
            url.hostname, url.port, ssl=pki.client_context()
        )
        try:
            writer.write(
                f"POST /mutate HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n".encode()
            )
            await writer.drain()
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 100")

            served.signal()

            async def not_ready() -> bool:
                return (await get(served.http + "/readyz"))[0] == 503

            await until(not_ready, what="/readyz to say 503")
            assert served.proc.poll() is None, "the process must still run after /readyz went 503"
            # During the drain delay new reviews are still answered.
            answer = await post_review(
                session, served.https + "/validate", admission_review(worker_statefulset())
            )
            # answered, so before the drain ended: once the listener closes, a request fails
            assert "response" in answer

            async def listener_closed() -> bool:
                try:
                    _, probe = await asyncio.open_connection(url.hostname, url.port)
                except ConnectionRefusedError:
                    return True
                probe.close()
                await probe.wait_closed()
                return False

            await until(listener_closed, what="the HTTPS listener to close after the drain")
            assert served.proc.poll() is None, "in-flight review still pending: must not exit"
            writer.write(body)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            answer = json.loads(await reader.readexactly(length))
            assert answer["response"]["uid"] == "in-flight"
            assert answer["response"]["allowed"] is True
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()
    assert await asyncio.to_thread(served.proc.wait, 15) == 0
    assert '"msg": "stopped"' in served.stderr


# --------------------------------------------------------------------------- (5) config reload


async def test_a_changed_config_file_applies_without_restart(serve: ServeFactory, pki: Pki) -> None:
    served = serve(config="webhook: {policy: {enforcement: deny}}\n")
    config_path = served.workdir / "functions_worker.yml"
    doc = admission_review(statefulset(name=LONG_NAME))
    async with https_session(pki) as session:
        answer = await post_review(session, served.https + "/validate", doc)
        assert answer["response"]["allowed"] is False

        staged = served.workdir / "staged.yml"
        staged.write_text("webhook: {policy: {enforcement: sometimes}}\n")
        os.replace(staged, config_path)

        async def rejected() -> bool:
            return (
                await read_metric(
                    served.http, "pf_webhook_config_reloads_total", default=0, result="error"
                )
                == 1
            )

        await until(rejected, what="the bad config to be rejected")
        answer = await post_review(session, served.https + "/validate", doc)
        assert answer["response"]["allowed"] is False, "the previous config stays in force"

        staged.write_text("webhook: {policy: {enforcement: warn}}\n")
        os.replace(staged, config_path)

        async def allowed() -> bool:
            answer = await post_review(session, served.https + "/validate", doc)
            return bool(answer["response"]["allowed"])

        await until(allowed, what="the new config to allow the review")
        answer = await post_review(session, served.https + "/validate", doc)
        assert any(
            w.startswith("[naming/statefulset-name]") for w in answer["response"]["warnings"]
        )
    assert (
        await read_metric(served.http, "pf_webhook_config_reloads_total", default=0, result="ok")
        == 1
    )
    assert "config not reloaded; keeping the previous config" in served.stderr


# --------------------------------------------------------------------------- (6) logs


async def test_logs_never_contain_secret_values_or_tokens(serve: ServeFactory, pki: Pki) -> None:
    served = serve()
    obj = worker_statefulset()
    container = obj["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [
        e if e["name"] != "DB_PASSWORD" else {"name": "DB_PASSWORD", "value": SECRET_VALUE}
        for e in container["env"]
    ]
    assert "file:///etc/auth/token" in container["command"][-1]
    container["command"][-1] = container["command"][-1].replace(
        "file:///etc/auth/token", f"token:{TOKEN}"
    )
    async with https_session(pki) as session:
        mutated = await post_review(session, served.https + "/mutate", admission_review(obj))
        ops = patch_of(mutated["response"])
        assert SECRET_VALUE not in json.dumps(ops), "the literal value is replaced, not copied"
        assert any("DB_PASSWORD" in w for w in mutated["response"]["warnings"])
        await post_review(session, served.https + "/validate", admission_review(obj))
        long = copy.deepcopy(obj)
        long["metadata"]["name"] = "pf-public-default-" + LONG_NAME
        await post_review(session, served.https + "/validate", admission_review(long))
        bad = json.dumps({**admission_review(obj), "apiVersion": TOKEN}).encode()
        async with session.post(served.https + "/mutate", data=bad, headers=JSON) as resp:
            assert resp.status == 400
    logs = served.logs()
    assert logs.count('"msg": "review"') == 3
    assert SECRET_VALUE not in logs
    assert TOKEN not in logs and TOKEN[:20] not in logs


# --------------------------------------------------------------------------- (7) client CA


async def test_client_ca_admits_only_clients_with_a_certificate_from_it(
    serve: ServeFactory, pki: Pki
) -> None:
    served = serve("--client-ca", str(pki.client_ca))
    doc = admission_review(worker_statefulset())
    with pytest.raises((aiohttp.ClientError, ssl.SSLError, ConnectionError)):
        async with https_session(pki) as session:
            await post_review(session, served.https + "/mutate", doc)
    async with https_session(pki, with_client_cert=True) as session:
        answer = await post_review(session, served.https + "/mutate", doc)
    assert answer["response"]["allowed"] is True
    assert served.proc.poll() is None
