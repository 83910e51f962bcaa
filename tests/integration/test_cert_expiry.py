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

from tests.integration.conftest import ServeFactory
from tests.metrics import metric_value
from tests.pki import serving_pair
from tests.polling import wait_for

pytestmark = pytest.mark.slow


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def _pair(directory: Path, *, not_after: datetime.datetime) -> datetime.datetime:
    """A serving pair for localhost valid until `not_after` (whole seconds, as X.509 keeps)."""
    not_after = not_after.replace(microsecond=0)
    serving_pair(directory, not_before=not_after - datetime.timedelta(days=30), not_after=not_after)
    return not_after


def _in_days(days: float) -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=days)


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
    not_after = _pair(source, not_after=_in_days(10))
    served = serve(cert_source=source)
    assert _expiry_metric(served.http) == not_after.timestamp()
    assert len(_warnings(served.logs())) == 1
    assert _get(f"{served.http}/readyz")[0] == 200  # expiring is not expired
    # a reload of another soon-expiring pair warns again
    staged = tmp_path / "renewed"
    renewed = _pair(staged, not_after=_in_days(5))
    for name in ("tls.key", "tls.crt"):
        os.replace(staged / name, served.cert_dir / name)
    wait_for(lambda: len(_warnings(served.logs())) >= 2, 20, "a warning for the reloaded pair")
    assert len(_warnings(served.logs())) == 2
    assert _expiry_metric(served.http) == renewed.timestamp()


def test_an_expired_certificate_makes_the_server_not_ready(
    serve: ServeFactory, tmp_path: Path
) -> None:
    source = tmp_path / "expired"
    not_after = _pair(source, not_after=_in_days(-1))  # expired yesterday
    served = serve(cert_source=source)
    assert _expiry_metric(served.http) == not_after.timestamp()
    status, body = _get(f"{served.http}/readyz")
    assert status == 503
    assert "serving certificate expired" in json.loads(body)["reasons"]
    assert "serving certificate expired" in served.logs()
    # a valid pair brings readiness back without a restart
    fresh = tmp_path / "fresh"
    serving_pair(fresh)
    for name in ("tls.key", "tls.crt"):
        os.replace(fresh / name, served.cert_dir / name)
    wait_for(lambda: _get(f"{served.http}/readyz")[0] == 200, 20, "/readyz to answer 200")
