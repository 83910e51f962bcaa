"""The floor for any Python webhook: aiohttp over TLS that parses the review and answers allowed.

Same stack as `pf-webhook serve` (aiohttp on asyncio, orjson, Python's ssl, TLS 1.2+, no
access log), none of the work: no shape check, no mutation, no policy, no metrics, no logging.

    python benchmarks/noop_webhook.py --cert-dir DIR --port 8443 [--host 127.0.0.1]
        [--json json] [--loop uvloop]     # the variants bench_json_loop.py measures
"""

from __future__ import annotations

import argparse
import json
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web


def _answer(uid: Any) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": uid, "allowed": True},
    }


async def admit(request: web.Request) -> web.Response:
    review = json.loads(await request.read())
    return web.Response(
        text=json.dumps(_answer(review["request"]["uid"]), separators=(",", ":")),
        content_type="application/json",
    )


def _orjson_admit() -> Callable[[web.Request], Awaitable[web.Response]]:
    import orjson

    async def admit_orjson(request: web.Request) -> web.Response:
        review = orjson.loads(await request.read())
        return web.Response(
            body=orjson.dumps(_answer(review["request"]["uid"])), content_type="application/json"
        )

    return admit_orjson


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cert-dir", required=True, help="directory with tls.crt and tls.key")
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--json", choices=("json", "orjson"), default="orjson")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop

        uvloop.install()
    handler = _orjson_admit() if args.json == "orjson" else admit
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    cert_dir = Path(args.cert_dir)
    context.load_cert_chain(cert_dir / "tls.crt", cert_dir / "tls.key")
    app = web.Application(client_max_size=3 * 1024 * 1024)
    app.router.add_post("/mutate", handler)
    app.router.add_post("/validate", handler)
    web.run_app(
        app, host=args.host, port=args.port, ssl_context=context, access_log=None, print=None
    )


if __name__ == "__main__":
    main()
