"""A serving certificate close to or past its expiry, against a real `pf-webhook serve`: a
warning line at start and on reload, the expiry time on /metrics, readiness false once expired.
"""

from __future__ import annotations

import datetime
import json
import os
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.integration.conftest import ServeFactory
from tests.metrics import metric_value
from tests.polling import wait_for
from webhook.certs import pki

pytestmark = pytest.mark.slow


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def _expired_pair(directory: Path) -> datetime.datetime:
    """A self-signed pair that expired yesterday (Python's ssl still loads it)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    not_after = (now - datetime.timedelta(days=1)).replace(microsecond=0)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=30))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "tls.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (directory / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return not_after


def _expiry_metric(base: str) -> float:
    status, body = _get(f"{base}/metrics")
    assert status == 200
    return metric_value(
        body, "pf_webhook_certificate_expiry_timestamp_seconds", certificate="serving"
    )


def _warnings(text: str) -> list[dict[str, object]]:
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if "expires within 30 days" in str(record.get("message", record.get("msg", ""))):
                out.append(record)
    return out


def test_a_certificate_expiring_within_30_days_is_logged_and_on_metrics(
    serve: ServeFactory, tmp_path: Path
) -> None:
    source = tmp_path / "soon"
    pki.generate(
        service="pf-webhook", namespace="pf", out_dir=source, days=10, hosts=("localhost",)
    )
    leaf = x509.load_pem_x509_certificate((source / "tls.crt").read_bytes())
    served = serve(cert_source=source)
    assert _expiry_metric(served.http) == leaf.not_valid_after_utc.timestamp()
    assert len(_warnings(served.logs())) == 1
    assert _get(f"{served.http}/readyz")[0] == 200  # expiring is not expired
    # a reload of another soon-expiring pair warns again
    pki.generate(
        service="pf-webhook", namespace="pf", out_dir=served.cert_dir, days=5, hosts=("localhost",)
    )
    renewed = x509.load_pem_x509_certificate((served.cert_dir / "tls.crt").read_bytes())
    wait_for(lambda: len(_warnings(served.logs())) >= 2, 20, "a warning for the reloaded pair")
    assert len(_warnings(served.logs())) == 2
    assert _expiry_metric(served.http) == renewed.not_valid_after_utc.timestamp()


def test_an_expired_certificate_makes_the_server_not_ready(
    serve: ServeFactory, tmp_path: Path
) -> None:
    source = tmp_path / "expired"
    not_after = _expired_pair(source)
    served = serve(cert_source=source)
    assert _expiry_metric(served.http) == not_after.timestamp()
    status, body = _get(f"{served.http}/readyz")
    assert status == 503
    assert "serving certificate expired" in json.loads(body)["reasons"]
    assert "serving certificate expired" in served.logs()
    # a valid pair brings readiness back without a restart
    fresh = tmp_path / "fresh"
    pki.generate(service="pf-webhook", namespace="pf", out_dir=fresh, hosts=("localhost",))
    for name in ("tls.key", "tls.crt"):
        os.replace(fresh / name, served.cert_dir / name)
    wait_for(lambda: _get(f"{served.http}/readyz")[0] == 200, 20, "/readyz to answer 200")
