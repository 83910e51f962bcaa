"""Core: when a self-managed CA and serving certificate are created, renewed or published.

Pure: the caller passes the time and what the certificate Secret holds; `plan` answers with the
one next step and when to look again. The shell (`webhook.managed_certs`) does the I/O.

The rules, in order:
- no usable CA or serving pair: create both (a new CA, a leaf it signs);
- the CA is past its renewal point (or a rotation was requested): make a new CA and add it to
  the trusted bundle beside the old one; the leaf is still the old CA's;
- the leaf is not signed by the current CA: re-issue it only once the bundle holding the new CA
  has been published to both webhook configurations for `propagation`, so the API server
  trusts the new leaf before anyone serves it;
- the leaf is past its renewal point, has other names than wanted, or a renewal was requested:
  re-issue it;
- CAs in the bundle that have expired are dropped.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Final, Literal

DAY: Final = datetime.timedelta(days=1)
WARN_BEFORE: Final = datetime.timedelta(days=30)
"""A serving certificate that expires within this is logged as a warning."""

Action = Literal["create", "rotate-ca", "renew-leaf", "prune-bundle", "wait", "none"]
Expiry = Literal["ok", "expiring", "expired", "not-yet-valid"]


@dataclass(frozen=True)
class Schedule:
    """Lifetimes and renewal points. Renewal happens once less than `*_renew_fraction` of a
    certificate's lifetime remains (the CA at 1/3, as cert-manager does; the leaf at 1/2, so a
    renewed leaf is never within the 30-day warning window)."""

    ca_validity: datetime.timedelta = 3 * 365 * DAY
    ca_renew_fraction: float = 1 / 3
    leaf_validity: datetime.timedelta = 90 * DAY
    leaf_renew_fraction: float = 1 / 2
    propagation: datetime.timedelta = datetime.timedelta(seconds=60)
    recheck: datetime.timedelta = datetime.timedelta(hours=1)


@dataclass(frozen=True)
class Cert:
    """What the plan needs of one certificate."""

    not_before: datetime.datetime
    not_after: datetime.datetime
    key_id: bytes = b""  # the CA's subject key id, or the leaf's authority key id
    names: frozenset[str] = frozenset()  # a leaf's DNS and IP SANs

    def renew_at(self, fraction: float) -> datetime.datetime:
        return self.not_after - (self.not_after - self.not_before) * fraction


@dataclass(frozen=True)
class State:
    """The certificate Secret, as the plan sees it. `ca`/`leaf` are None when absent or
    unusable (unparsable, key not matching)."""

    exists: bool = False
    ca: Cert | None = None
    bundle: tuple[Cert, ...] = ()
    leaf: Cert | None = None
    published_at: datetime.datetime | None = None  # the current bundle is in both configurations
    requested: Literal["leaf", "ca"] | None = None
    wanted_names: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Step:
    action: Action
    reason: str
    next_check: datetime.datetime


def plan(state: State, now: datetime.datetime, schedule: Schedule) -> Step:
    """The one next step for the Lease holder, and when to call `plan` again at the latest."""

    def later(at: datetime.datetime) -> datetime.datetime:
        return max(now, min(at, now + schedule.recheck))

    ca, leaf = state.ca, state.leaf
    if ca is None or ca.not_after <= now or leaf is None or not state.exists:
        what = "no certificate Secret" if not state.exists else "no usable CA or serving pair"
        if ca is not None and ca.not_after <= now:
            what = "the CA has expired"
        return Step("create", what, now)
    if state.requested == "ca" or now >= ca.renew_at(schedule.ca_renew_fraction):
        why = "rotation requested" if state.requested == "ca" else "the CA is due for renewal"
        return Step("rotate-ca", why, now)
    if leaf.key_id != ca.key_id:
        if state.published_at is None:
            return Step(
                "wait",
                "the new CA is not yet published to the webhook configurations",
                later(now + schedule.propagation),
            )
        ready = state.published_at + schedule.propagation
        if now < ready:
            return Step("wait", "the new CA is being published", later(ready))
        return Step("renew-leaf", "the serving certificate is signed by the previous CA", now)
    if state.requested == "leaf":
        return Step("renew-leaf", "renewal requested", now)
    if now >= leaf.renew_at(schedule.leaf_renew_fraction) or leaf.not_after <= now:
        return Step("renew-leaf", "the serving certificate is due for renewal", now)
    if state.wanted_names and leaf.names != state.wanted_names:
        return Step(
            "renew-leaf", "the serving certificate's names differ from the wanted ones", now
        )
    if any(c.not_after <= now for c in state.bundle):
        return Step("prune-bundle", "an expired CA is still in the bundle", now)
    due = [ca.renew_at(schedule.ca_renew_fraction), leaf.renew_at(schedule.leaf_renew_fraction)]
    due += [c.not_after for c in state.bundle if c.key_id != ca.key_id]
    return Step("none", "up to date", later(min(due)))


def expiry(
    not_before: datetime.datetime, not_after: datetime.datetime, now: datetime.datetime
) -> Expiry:
    """Whether a serving certificate is fine, expires within 30 days, or cannot be used."""
    if not_after <= now:
        return "expired"
    if not_before > now:
        return "not-yet-valid"
    if not_after - now <= WARN_BEFORE:
        return "expiring"
    return "ok"


def lease_free(
    holder: str | None,
    renewed: datetime.datetime | None,
    duration: datetime.timedelta,
    me: str,
    now: datetime.datetime,
) -> bool:
    """Whether `me` may take (or keep) a Lease: nobody holds it, we do, or the holder's last
    renewal is older than the Lease duration."""
    if not holder or holder == me:
        return True
    return renewed is None or renewed + duration <= now
