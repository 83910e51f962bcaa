"""The floor for any Python webhook: aiohttp over TLS that parses the review and answers allowed.

Same stack as `pf-webhook serve` (aiohttp, the stdlib json module, Python's ssl, TLS 1.2+, no
access log), none of the work: no shape check, no mutation, no policy, no metrics, no logging.

    python benchmarks/noop_webhook.py --cert-dir DIR --port 8443 [--host 127.0.0.1]
"""

from __future__ import annotations

import argparse
import json
import ssl
from pathlib import Path

from aiohttp import web


async def admit(request: web.Request) -> web.Response:
    review = json.loads(await request.read())
    answer = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": review["request"]["uid"], "allowed": True},
    }
    return web.Response(
        text=json.dumps(answer, separators=(",", ":")), content_type="application/json"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cert-dir", required=True, help="directory with tls.crt and tls.key")
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    cert_dir = Path(args.cert_dir)
    context.load_cert_chain(cert_dir / "tls.crt", cert_dir / "tls.key")
    app = web.Application(client_max_size=3 * 1024 * 1024)
    app.router.add_post("/mutate", admit)
    app.router.add_post("/validate", admit)
    web.run_app(
        app, host=args.host, port=args.port, ssl_context=context, access_log=None, print=None
    )


if __name__ == "__main__":
    main()
