"""Shell: one writer among the replicas, elected with a `coordination.k8s.io/v1` Lease.

Like client-go's leader election: the holder renews every `duration / 3`; another replica takes
the Lease only after it has seen the same record unchanged for `duration` (its own clock, so
clock skew between replicas does not matter); a holder that could not renew for
`2/3 * duration` stops leading before anyone else may start. On shutdown the holder releases
the Lease so the next replica takes over at once. Writes carry the record's resourceVersion, so
two replicas racing for the Lease cannot both win.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Callable
from typing import Any

from kubernetes_asyncio import client

from webhook.certs import rotation
from webhook.kube.client import KubeError, call, error_text, host_of

log = logging.getLogger("webhook.server")


def _micro(now: datetime.datetime) -> str:
    return now.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Elector:
    def __init__(
        self,
        api: client.ApiClient,
        *,
        namespace: str,
        name: str,
        identity: str,
        duration: float,
        timeout: float = 5.0,
        on_change: Callable[[bool], None] = lambda leading: None,
    ) -> None:
        self._api = client.CoordinationV1Api(api)
        self._host = host_of(api)
        self.namespace, self.name, self.identity = namespace, name, identity
        self.duration = duration
        self.timeout = timeout
        self.leading = asyncio.Event()
        self.on_change = on_change
        self._seen: tuple[Any, ...] | None = None
        self._seen_at = 0.0
        self._renewed_at = 0.0

    def is_leader(self) -> bool:
        return self.leading.is_set()

    def _set(self, leading: bool) -> None:
        if leading != self.leading.is_set():
            (self.leading.set if leading else self.leading.clear)()
            self.on_change(leading)
            log.info(
                "certificate Lease acquired" if leading else "certificate Lease lost",
                extra={
                    "fields": {"lease": f"{self.namespace}/{self.name}", "holder": self.identity}
                },
            )

    async def run(self) -> None:
        while True:
            try:
                ok = await self._try()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "certificate Lease not renewed",
                    extra={"fields": {"error": error_text(exc)}},
                )
                ok = False
            now = time.monotonic()
            if ok:
                self._renewed_at = now
                self._set(True)
            elif not self.is_leader() or now - self._renewed_at >= self.duration * 2 / 3:
                self._set(False)
            await asyncio.sleep(self.duration / 3 if self.is_leader() else self.duration / 4)

    async def _try(self) -> bool:
        now = datetime.datetime.now(datetime.UTC)
        body: Any
        try:
            lease = await self._read()
        except KubeError as exc:
            if exc.status != 404:
                raise
            body = self._body(now, transitions=0, acquired=now)
            try:
                await call(
                    self._api.create_namespaced_lease(
                        self.namespace, body, _request_timeout=self.timeout
                    ),
                    what=f"creating {self._what}",
                    host=self._host,
                )
            except KubeError as err:
                if err.status == 409:
                    return False
                raise
            return True
        spec = lease.spec
        holder = spec.holder_identity if spec else None
        record = (holder, spec.renew_time if spec else None, lease.metadata.resource_version)
        mono = time.monotonic()
        if record != self._seen:
            self._seen, self._seen_at = record, mono
        seen = now - datetime.timedelta(seconds=mono - self._seen_at)
        duration = datetime.timedelta(
            seconds=(spec.lease_duration_seconds or self.duration) if spec else self.duration
        )
        if not rotation.lease_free(holder, seen, duration, self.identity, now):
            return False
        transitions = (spec.lease_transitions or 0) if spec else 0
        acquired = spec.acquire_time if spec and holder == self.identity else now
        body = self._body(
            now,
            transitions=transitions if holder == self.identity else transitions + 1,
            acquired=acquired or now,
        )
        body["metadata"]["resourceVersion"] = lease.metadata.resource_version
        try:
            await self._replace(body)
        except KubeError as exc:
            if exc.status == 409:
                return False
            raise
        return True

    @property
    def _what(self) -> str:
        return f"Lease {self.namespace}/{self.name}"

    async def _read(self) -> Any:
        return await call(
            self._api.read_namespaced_lease(
                self.name, self.namespace, _request_timeout=self.timeout
            ),
            what=f"reading {self._what}",
            host=self._host,
        )

    async def _replace(self, body: Any) -> None:
        await call(
            self._api.replace_namespaced_lease(
                self.name, self.namespace, body, _request_timeout=self.timeout
            ),
            what=f"writing {self._what}",
            host=self._host,
        )

    def _body(
        self, now: datetime.datetime, *, transitions: int, acquired: datetime.datetime
    ) -> dict[str, Any]:
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": max(1, round(self.duration)),
                "acquireTime": _micro(acquired),
                "renewTime": _micro(now),
                "leaseTransitions": transitions,
            },
        }

    async def release(self) -> None:
        """Give the Lease up (holder emptied) so another replica takes it at once."""
        if not self.is_leader():
            return
        self._set(False)
        try:
            lease = await self._read()
            if lease.spec is None or lease.spec.holder_identity != self.identity:
                return
            now = datetime.datetime.now(datetime.UTC)
            body: Any = self._body(now, transitions=lease.spec.lease_transitions or 0, acquired=now)
            body["spec"]["holderIdentity"] = ""
            body["spec"]["leaseDurationSeconds"] = 1
            body["metadata"]["resourceVersion"] = lease.metadata.resource_version
            await self._replace(body)
        except Exception as exc:  # shutting down: the Lease then expires on its own
            log.warning(
                "certificate Lease not released",
                extra={"fields": {"error": error_text(exc)}},
            )
