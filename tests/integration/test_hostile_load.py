"""What a network peer can hold on the HTTPS port before any authentication, against a real
`pf-webhook serve` process: idle TLS and silent TCP connections (memory under the manifests'
limit, each closed by the server at its timeout), the connection cap, slow headers and bodies,
bad Content-Encoding, gzip bombs, framing errors, and log flooding.

The full 2,000 + 300 run with its numbers is benchmarks/bench_hostile.py; this one is the
same scenario at a size the suite can afford. Waits poll with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import io
import json
import re
import ssl
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.hostile import NormalClient, Peer, open_peers, rss_mib, sample_rss
from tests.integration.conftest import Served, ServeFactory
from tests.metrics import read_metric
from tests.pki import Pki
from tests.polling import until, wait_for
from tests.reviews import admission_review
from tests.worker import statefulset

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SLACK = 15.0  # seconds past a timeout by which the close must have been seen (a loaded CI box)


def manifest_memory_limit_mib() -> float:
    """The container memory limit of manifests/base/deployment.yaml, in MiB."""
    doc = yaml.safe_load((ROOT / "manifests/base/deployment.yaml").read_text())
    container = doc["spec"]["template"]["spec"]["containers"][0]
    limit = container["resources"]["limits"]["memory"]
    assert limit.endswith("Mi"), limit
    return float(limit[:-2])


def review(uid: str = "9a0b-hostile-0001") -> dict[str, Any]:
    obj = statefulset(secrets={"DB_PASSWORD": {"path": "db-creds", "key": "password"}})
    return admission_review(obj, uid=uid)


def limits(**values: float) -> str:
    return yaml.safe_dump({"webhook": {"server": {"connections": values}}})


def address(served: Served) -> tuple[str, int]:
    found = re.fullmatch(r"https://([^:]+):(\d+)", served.https)
    assert found, served.https
    return found[1], int(found[2])


async def raw_exchange(
    served: Served, tls: ssl.SSLContext, data: bytes, *, deadline: float
) -> tuple[bytes, bool]:
    """Send `data` over a new TLS connection; read until the server closes it. Returns what
    was read and whether the server closed it (False: still open after `deadline` seconds)."""
    host, port = address(served)
    reader, writer = await asyncio.open_connection(host, port, ssl=tls, server_hostname="localhost")
    writer.write(data)
    received = b""
    closed = True
    try:
        async with asyncio.timeout(deadline):
            while chunk := await reader.read(65536):
                received += chunk
    except TimeoutError:
        closed = False
    except (OSError, ssl.SSLError):
        pass  # reset by the server: closed too
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
            async with asyncio.timeout(5):
                await writer.wait_closed()
    return received, closed


def status_and_body(raw: bytes) -> tuple[int, Any]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body) if body.strip() else None


# --------------------------------------------------------------------------------- the load


async def hostile_load(
    served: Served, pki: Pki, *, idle: int, silent: int, client_cert: bool
) -> dict[str, Any]:
    host, port = address(served)
    normal_tls = pki.client_context(with_client_cert=client_cert)
    hostile_tls = pki.client_context()  # never a client certificate
    baseline = rss_mib(served.proc.pid)
    stop, rss = asyncio.Event(), [baseline]
    sampler = asyncio.create_task(sample_rss(served.proc.pid, stop, rss))
    client = NormalClient(f"{served.https}/mutate", normal_tls, review())
    normal = asyncio.create_task(client.run(stop))
    tls_peers, tls_failed = await open_peers(host, port, idle, tls=hostile_tls)
    silent_peers, silent_failed = await open_peers(host, port, silent, tls=None)
    async with aiohttp.ClientSession() as session, session.get(f"{served.http}/healthz") as got:
        healthz = got.status
    peers: list[Peer] = tls_peers + silent_peers
    async with asyncio.timeout(8 + SLACK):
        await asyncio.gather(*(p.wait_closed_by_server() for p in peers))
    stop.set()
    await asyncio.gather(sampler, normal)
    return {
        "baseline": baseline,
        "peak": max(rss),
        "tls_peers": tls_peers,
        "silent_peers": silent_peers,
        "unopened": tls_failed + silent_failed,
        "healthz": healthz,
        "client": client,
    }


@pytest.mark.parametrize("client_cert", [False, True], ids=["open", "client-ca"])
def test_idle_and_silent_connections_are_bounded_and_closed_at_their_timeouts(
    serve: ServeFactory, pki: Pki, client_cert: bool
) -> None:
    args = ("--client-ca", str(pki.client_ca)) if client_cert else ()
    config = limits(maxConnections=3000, handshakeTimeoutSeconds=3, headerTimeoutSeconds=4)
    served = serve(*args, config=config)
    idle, silent = 500, 300
    result = asyncio.run(
        hostile_load(served, pki, idle=idle, silent=silent, client_cert=client_cert)
    )

    assert result["unopened"] == 0
    assert result["peak"] < manifest_memory_limit_mib(), result["peak"]
    assert result["healthz"] == 200
    client: NormalClient = result["client"]
    assert client.latencies and not client.failures, client.failures[:5]
    # every peer was closed by the server: silent ones at the handshake timeout, TLS ones at
    # the header timeout (open) or at once, refused for want of a client certificate
    assert all(p.closed is not None for p in result["silent_peers"] + result["tls_peers"])

    async def counters() -> tuple[float, float, float]:
        return (
            await read_metric(
                served.http, "pf_webhook_connections_total", event="handshake_timeout"
            ),
            await read_metric(served.http, "pf_webhook_connections_total", event="header_timeout"),
            await read_metric(served.http, "pf_webhook_open_connections"),
        )

    handshake_timeouts, header_timeouts, still_open = asyncio.run(counters())
    assert handshake_timeouts == silent
    assert header_timeouts == (0 if client_cert else idle)
    if client_cert:
        failed = asyncio.run(
            read_metric(served.http, "pf_webhook_connections_total", event="handshake_failed")
        )
        assert failed == idle
    # memory is handed back once the connections are gone
    returned = result["baseline"] + (result["peak"] - result["baseline"]) / 2
    wait_for(
        lambda: rss_mib(served.proc.pid) <= returned,
        SLACK,
        f"RSS back to {returned:.0f} MiB (baseline, peak: {result['baseline']}, {result['peak']})",
    )
    assert still_open <= 1  # at most the normal client's keep-alive connection, closing
    assert "Traceback" not in served.logs()


def test_at_the_cap_new_connections_replace_idle_ones_and_reviews_still_get_through(
    serve: ServeFactory, pki: Pki
) -> None:
    served = serve(config=limits(maxConnections=20, handshakeTimeoutSeconds=60))
    host, port = address(served)

    async def counted(at_least: int) -> None:  # accept is asynchronous
        async def enough() -> bool:
            return await read_metric(served.http, "pf_webhook_open_connections") >= at_least

        await until(enough, SLACK, f"{at_least} open connections")

    async def scenario() -> tuple[list[Peer], list[Peer], list[Peer], float, float, int, float]:
        held, _ = await open_peers(host, port, 20, tls=None)  # the cap, all doing nothing
        await counted(20)
        over, _ = await open_peers(host, port, 5, tls=None)
        closing = [asyncio.create_task(p.wait_closed_by_server()) for p in held + over]
        await until(  # far under the 60 s handshake timeout
            lambda: sum(p.closed is not None for p in held + over) >= 5,
            SLACK,
            "five connections closed by the server",
        )
        evicted = await read_metric(served.http, "pf_webhook_connections_total", event="evicted")
        refused = await read_metric(served.http, "pf_webhook_connections_total", event="refused")
        # still at the cap, with nothing but idle connections: a review gets through
        async with (
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=pki.client_context())
            ) as session,
            session.post(f"{served.https}/mutate", json=review()) as response,
        ):
            status = response.status
        open_now = await read_metric(served.http, "pf_webhook_open_connections")
        for task in closing:
            task.cancel()
        await asyncio.gather(*closing, return_exceptions=True)
        await asyncio.gather(*(peer.close() for peer in held + over))
        return held, over, [p for p in held + over if p.closed], evicted, refused, status, open_now

    held, _over, closed, evicted, refused, status, open_now = asyncio.run(scenario())
    assert evicted >= 5 and refused == 0
    assert len(closed) >= 5
    assert all(p in held for p in closed)  # the newcomers took the idle ones' places
    assert status == 200
    assert open_now <= 20  # the cap still holds


def test_a_connection_with_a_request_in_progress_is_never_replaced(
    serve: ServeFactory, pki: Pki
) -> None:
    served = serve(config=limits(maxConnections=1, bodyTimeoutSeconds=30))
    host, port = address(served)
    head = b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"

    async def scenario() -> tuple[float, float, bool, bool]:
        reader, writer = await asyncio.open_connection(
            host, port, ssl=pki.client_context(), server_hostname="localhost"
        )
        writer.write(head + b"Content-Length: 1000\r\n\r\n{")  # the body never completes
        await writer.drain()

        async def accepted() -> bool:  # the review's handler is then waiting for the body
            return await read_metric(served.http, "pf_webhook_open_connections") >= 1

        await until(accepted, SLACK, "the connection to be counted")
        await asyncio.sleep(0)
        (newcomer,), _ = await open_peers(host, port, 1, tls=None)
        async with asyncio.timeout(SLACK):
            await newcomer.wait_closed_by_server()
        refused = await read_metric(served.http, "pf_webhook_connections_total", event="refused")
        evicted = await read_metric(served.http, "pf_webhook_connections_total", event="evicted")
        busy_alive = not reader.at_eof()
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
            async with asyncio.timeout(5):
                await writer.wait_closed()
        return refused, evicted, busy_alive, newcomer.closed is not None

    refused, evicted, busy_alive, newcomer_closed = asyncio.run(scenario())
    assert (refused, evicted) == (1, 0)
    assert newcomer_closed and busy_alive


# ------------------------------------------------------------------------- slow and bad input


def test_slow_headers_are_cut_at_the_header_timeout(serve: ServeFactory, pki: Pki) -> None:
    served = serve(config=limits(headerTimeoutSeconds=1))
    received, closed = asyncio.run(
        raw_exchange(
            served, pki.client_context(), b"POST /mutate HTTP/1.1\r\nHost: x", deadline=SLACK
        )
    )
    assert received == b""  # closed without an answer: there is no request to answer
    assert closed  # by the server at its header timeout, not left open until our deadline
    assert (
        asyncio.run(
            read_metric(served.http, "pf_webhook_connections_total", event="header_timeout")
        )
        == 1
    )


def test_a_body_shorter_than_its_content_length_gets_408(serve: ServeFactory, pki: Pki) -> None:
    served = serve(config=limits(bodyTimeoutSeconds=1))
    head = b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    received, closed = asyncio.run(
        raw_exchange(
            served,
            pki.client_context(),
            head + b"Content-Length: 1000\r\n\r\n{",
            deadline=SLACK,
        )
    )
    status, body = status_and_body(received)
    assert status == 408
    assert "did not arrive within 1s" in body["error"]
    assert closed


def post_raw(served: Served, pki: Pki, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    async def go() -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=pki.client_context())
            ) as session,
            session.post(
                f"{served.https}/mutate",
                data=body,
                headers={"Content-Type": "application/json", **headers},
                compress=False,
            ) as response,
        ):
            return response.status, await response.json(content_type=None)

    return asyncio.run(go())


def test_content_encoding_that_does_not_match_the_body_is_a_400(
    serve: ServeFactory, pki: Pki
) -> None:
    served = serve()
    status, body = post_raw(
        served, pki, json.dumps(review()).encode(), {"Content-Encoding": "gzip"}
    )
    assert status == 400
    assert body["error"].startswith("cannot read the body") and "\n" not in body["error"]
    # a real gzip body is read as such
    status, body = post_raw(
        served, pki, gzip.compress(json.dumps(review()).encode()), {"Content-Encoding": "gzip"}
    )
    assert status == 200 and body["response"]["uid"] == review()["request"]["uid"]
    assert "Traceback" not in served.logs()


def test_a_gzip_bomb_is_cut_at_the_body_limit(serve: ServeFactory, pki: Pki) -> None:
    served = serve()
    bomb = gzip.compress(b" " * (512 * 1024 * 1024), compresslevel=9)  # 512 MiB of spaces
    before = rss_mib(served.proc.pid)
    status, body = post_raw(served, pki, bomb, {"Content-Encoding": "gzip"})
    assert status == 413
    assert "larger than the limit" in body["error"]
    assert rss_mib(served.proc.pid) < before + 64


def test_framing_errors_are_4xx_and_logged_once_per_interval(serve: ServeFactory, pki: Pki) -> None:
    served = serve()
    bad = [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST /mutate HTTP/1.1\r\nHost: x\r\n" + b"X-Long: " + b"a" * 20000 + b"\r\n\r\n",
        b"POST /mutate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ] * 10

    async def go() -> list[int]:
        statuses = []
        for data in bad:
            received, _ = await raw_exchange(served, pki.client_context(), data, deadline=SLACK)
            statuses.append(int(received.split(b" ", 2)[1]))
        return statuses

    started = time.monotonic()
    statuses = asyncio.run(go())
    intervals = int((time.monotonic() - started) // 10) + 1  # 10 s intervals the requests spanned
    assert all(400 <= s < 500 for s in statuses), statuses
    counted = asyncio.run(
        read_metric(served.http, "pf_webhook_http_errors_total", logger="aiohttp.server")
    )
    assert counted >= len(bad) - 10  # the bad chunk may be seen once the answer is written
    lines = [line for line in served.stderr.splitlines() if '"logger": "aiohttp.server"' in line]
    # at most one per 10 s interval (+1: the first interval may have begun before the requests)
    assert 1 <= len(lines) <= intervals + 1, lines
    assert all('"level": "warning"' in line for line in lines)
    assert "Traceback" not in served.logs() and "aaaa" not in served.logs()


# ------------------------------------------------------------------------ CPU-heavy reviews


def heavy_review(uid: str) -> dict[str, Any]:
    """A well-formed review just under the body limit that costs seconds of CPU to mutate."""
    doc = review(uid)
    container = doc["request"]["object"]["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [{"name": f"E{i}", "value": "v" * 20} for i in range(55000)]
    return doc


# Building 110,000 dicts triggers a garbage collection that can finalise a client transport an
# earlier test left to the collector; that warning belongs to no assertion here.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_healthz_answers_while_heavy_reviews_are_processed(serve: ServeFactory, pki: Pki) -> None:
    served = serve()
    bodies = {f"heavy-{i}": json.dumps(heavy_review(f"heavy-{i}")).encode() for i in range(2)}
    assert all(len(b) < 3 * 1024 * 1024 for b in bodies.values())

    async def go() -> tuple[list[int], list[float], list[bool]]:
        sent: dict[str, int] = {}  # review uid -> body bytes handed to the connection

        async def on_chunk(
            session: aiohttp.ClientSession,
            context: Any,
            params: aiohttp.TraceRequestChunkSentParams,
        ) -> None:
            uid = params.url.query.get("uid")
            if uid and params.chunk:
                sent[uid] = sent.get(uid, 0) + len(params.chunk)

        trace = aiohttp.TraceConfig()
        trace.on_request_chunk_sent.append(on_chunk)
        connector = aiohttp.TCPConnector(ssl=pki.client_context())
        async with aiohttp.ClientSession(connector=connector, trace_configs=[trace]) as session:

            async def post(uid: str, body: bytes) -> int:
                headers = {"Content-Type": "application/json"}
                async with session.post(
                    f"{served.https}/mutate",
                    params={"uid": uid},
                    data=io.BytesIO(body),
                    headers=headers,
                ) as r:
                    await r.read()
                    return r.status

            reviews = [asyncio.create_task(post(uid, b)) for uid, b in bodies.items()]
            # /healthz only once both bodies are on their way: the server now has them to read
            # and review, and a loop that did so itself could answer nothing else meanwhile
            await until(
                lambda: (
                    all(sent.get(uid) == len(b) for uid, b in bodies.items())
                    or any(t.done() for t in reviews)
                ),
                what="both review bodies sent",
            )
            latencies: list[float] = []
            before_any_review: list[bool] = []  # per /healthz answer: no review answered yet
            while not all(t.done() for t in reviews):
                started = time.perf_counter()
                async with session.get(f"{served.http}/healthz") as r:
                    assert r.status == 200
                latencies.append(time.perf_counter() - started)
                before_any_review.append(not any(t.done() for t in reviews))
                await asyncio.sleep(0)  # let the review tasks see their answers
            statuses = [await t for t in reviews]
            return statuses, latencies, before_any_review

    statuses, latencies, before_any_review = asyncio.run(go())
    assert statuses == [200, 200]
    # Every /healthz asked while the reviews were under way was answered (200, above), and the
    # first, asked once both bodies were sent, before either review was. No count of answers:
    # how many fit in depends on the machine's speed.
    assert before_any_review and before_any_review[0], before_any_review
    answered = len(latencies)
    print(f"/healthz during heavy reviews: {answered} answers, max {max(latencies) * 1000:.0f} ms")


def slow_small_review(uid: str) -> bytes:
    """A review under the 16 KiB the server reviews on its event loop, but slow to read: its
    instance command line is backquotes (about 25 ms each on this machine)."""
    doc = review(uid)
    container = doc["request"]["object"]["spec"]["template"]["spec"]["containers"][0]
    container["command"][-1] += " " + " ".join(["`a`"] * 3000)
    body = json.dumps(doc).encode()
    assert len(body) <= 16 * 1024, len(body)
    return body


def test_healthz_answers_while_many_small_slow_reviews_arrive(
    serve: ServeFactory, pki: Pki
) -> None:
    """Small reviews run on the event loop, but once one is slow the rest go to the review
    thread: 60 slow ones sent together do not hold `/healthz` for their sum."""
    served = serve()
    bodies = [slow_small_review(f"slow-{i}") for i in range(60)]

    async def go() -> tuple[list[int], bool]:
        connector = aiohttp.TCPConnector(ssl=pki.client_context(), limit=60)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def post(body: bytes) -> int:
                async with session.post(
                    f"{served.https}/mutate",
                    data=body,
                    headers={"Content-Type": "application/json"},
                ) as r:
                    await r.read()
                    return r.status

            reviews = [asyncio.create_task(post(b)) for b in bodies]
            await asyncio.sleep(0)  # every request is started before /healthz is asked
            async with session.get(f"{served.http}/healthz") as r:
                assert r.status == 200
            before_last = not all(t.done() for t in reviews)
            return [await t for t in reviews], before_last

    statuses, before_last = asyncio.run(go())
    assert statuses == [200] * 60
    assert before_last, "/healthz waited for every slow review"
