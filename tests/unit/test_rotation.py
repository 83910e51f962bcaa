"""The self-managed certificates' schedule (pure, time passed in) and the Secret's contents
through each step, with real certificates."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from webhook.certs import cert_secret, rotation

T0 = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)
SCHEDULE = rotation.Schedule(propagation=datetime.timedelta(seconds=60))
IDENTITY = cert_secret.Identity(
    service="pf-webhook", namespace="pf", hosts=("localhost",), ips=("127.0.0.1",)
)


def _step(
    data: dict[str, bytes] | None, now: datetime.datetime, **annotations: str
) -> rotation.Step:
    state = cert_secret.read_state(data, annotations, IDENTITY)
    return rotation.plan(state, now, SCHEDULE)


def _run(
    action: rotation.Action, data: dict[str, bytes] | None, now: datetime.datetime
) -> dict[str, bytes]:
    return cert_secret.apply(action, data, identity=IDENTITY, schedule=SCHEDULE, now=now)


def _published(data: dict[str, bytes], at: datetime.datetime) -> dict[str, str]:
    return {
        cert_secret.PUBLISHED_BUNDLE: cert_secret.bundle_digest(data["ca-bundle.crt"]),
        cert_secret.PUBLISHED_AT: at.isoformat(),
    }


def test_no_secret_means_create_and_a_fresh_pair_is_up_to_date() -> None:
    assert _step(None, T0).action == "create"
    data = _run("create", None, T0)
    assert set(data) == set(cert_secret.KEYS)
    step = rotation.plan(cert_secret.read_state(data, _published(data, T0), IDENTITY), T0, SCHEDULE)
    assert step.action == "none"
    assert T0 < step.next_check <= T0 + SCHEDULE.recheck
    leaf = x509.load_pem_x509_certificate(data["tls.crt"])
    assert leaf.not_valid_after_utc == T0 + SCHEDULE.leaf_validity
    names = cert_secret.read_state(data, {}, IDENTITY).leaf
    assert names is not None and names.names == IDENTITY.names()


def test_leaf_renews_at_half_its_life_well_before_the_warning_window() -> None:
    data = _run("create", None, T0)
    marks = _published(data, T0)
    assert _step(data, T0 + 44 * DAY, **marks).action == "none"
    step = _step(data, T0 + 45 * DAY, **marks)
    assert step.action == "renew-leaf"
    renewed = _run("renew-leaf", data, T0 + 45 * DAY)
    assert renewed["ca.crt"] == data["ca.crt"] and renewed["tls.crt"] != data["tls.crt"]
    assert _step(renewed, T0 + 45 * DAY, **marks).action == "none"
    # the leaf renewal point is more than 30 days before its expiry
    assert SCHEDULE.leaf_validity * (1 - SCHEDULE.leaf_renew_fraction) > rotation.WARN_BEFORE


def test_ca_rotation_keeps_the_old_ca_trusted_and_waits_for_publication_before_the_new_leaf() -> (
    None
):
    data = _run("create", None, T0)
    at = T0 + 2 * 365 * DAY + DAY  # past 2/3 of the CA's three years
    assert _step(data, at, **_published(data, T0)).action == "rotate-ca"
    rotated = _run("rotate-ca", data, at)
    bundle = cert_secret.bundle_certs(rotated["ca-bundle.crt"])
    assert [c.public_bytes(Encoding.PEM) for c in bundle][1] == data["ca.crt"]
    assert rotated["tls.crt"] == data["tls.crt"]  # still the old CA's leaf, still trusted
    # the old annotation names the old bundle: not published yet, so no new leaf
    step = _step(rotated, at, **_published(data, T0))
    assert step.action == "wait"
    step = _step(rotated, at + datetime.timedelta(seconds=30), **_published(rotated, at))
    assert step.action == "wait" and step.next_check == at + SCHEDULE.propagation
    step = _step(rotated, at + SCHEDULE.propagation, **_published(rotated, at))
    assert step.action == "renew-leaf"
    new_leaf = _run("renew-leaf", rotated, at + SCHEDULE.propagation)
    assert _step(new_leaf, at + SCHEDULE.propagation, **_published(rotated, at)).action == "none"


def test_expired_cas_leave_the_bundle() -> None:
    data = _run("create", None, T0)
    rotated = _run("rotate-ca", data, T0 + DAY)
    leaf = _run("renew-leaf", rotated, T0 + DAY)
    old_end = x509.load_pem_x509_certificate(data["ca.crt"]).not_valid_after_utc
    # the new leaf is renewed every 45 days; look just after a renewal, past the old CA's end
    later = old_end + datetime.timedelta(hours=1)
    fresh = _run("renew-leaf", leaf, later)
    state = cert_secret.read_state(fresh, _published(fresh, later), IDENTITY)
    assert rotation.plan(state, later, SCHEDULE).action in ("prune-bundle", "rotate-ca")
    pruned = _run("prune-bundle", fresh, later)
    assert len(cert_secret.bundle_certs(pruned["ca-bundle.crt"])) == 1


@pytest.mark.parametrize("what", ["leaf", "ca"])
def test_an_operator_request_forces_a_rotation(what: str) -> None:
    data = _run("create", None, T0)
    marks = {**_published(data, T0), cert_secret.ROTATE: what}
    expected = "renew-leaf" if what == "leaf" else "rotate-ca"
    assert _step(data, T0 + DAY, **marks).action == expected


def test_unusable_contents_are_recreated() -> None:
    data = _run("create", None, T0)
    assert _step({**data, "ca.key": data["tls.key"]}, T0).action == "create"
    assert _step({**data, "tls.crt": b"garbage"}, T0).action == "create"
    assert _step(data, T0 + 4 * 365 * DAY).action == "create"  # the CA itself expired


def test_other_names_than_wanted_renew_the_leaf() -> None:
    data = _run("create", None, T0)
    other = cert_secret.Identity(service="pf-webhook", namespace="elsewhere")
    state = cert_secret.read_state(data, _published(data, T0), other)
    assert rotation.plan(state, T0, SCHEDULE).action == "renew-leaf"


def test_expiry_levels() -> None:
    nb, na = T0, T0 + 90 * DAY
    assert rotation.expiry(nb, na, T0 + DAY) == "ok"
    assert rotation.expiry(nb, na, na - 30 * DAY) == "expiring"
    assert rotation.expiry(nb, na, na) == "expired"
    assert rotation.expiry(nb, na, T0 - DAY) == "not-yet-valid"


def test_lease_is_free_when_empty_ours_or_stale() -> None:
    d = datetime.timedelta(seconds=15)
    assert rotation.lease_free(None, None, d, "me", T0)
    assert rotation.lease_free("", T0, d, "me", T0)
    assert rotation.lease_free("me", T0, d, "me", T0)
    assert not rotation.lease_free("other", T0, d, "me", T0 + d / 2)
    assert rotation.lease_free("other", T0, d, "me", T0 + d)
