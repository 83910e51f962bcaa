"""Shell: `serve --manage-certs`: the CA and serving certificate in one Secret, kept by the
Lease holder, served by every replica.

- Every replica watches the Secret (by name) and loads each new serving pair into its live TLS
  context, so renewals need no restart; the CA bundle's expiry times go to `/metrics`.
- Only the Lease holder writes: it creates the Secret when absent, follows `rotation.plan`
  (leaf and CA on their own schedules, or when an operator annotates the Secret with
  `pf-webhook/rotate=leaf|ca`), and keeps both webhook configurations' caBundle equal to the
  Secret's bundle (old and new CA while the CA changes). Replicas that do not hold the Lease
  never write anything.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes_asyncio import client, watch

from webhook.certs import cert_secret, rotation
from webhook.certs.inject import bundle_patch
from webhook.kube.client import KubeError, call, error_text, host_of
from webhook.server.lease import Elector
from webhook.server.metrics import Metrics
from webhook.server.tls import CertLoadError, ServingCerts

log = logging.getLogger("webhook.server")


@dataclass(frozen=True)
class Settings:
    namespace: str
    secret: str
    lease: str
    identity: str
    cert: cert_secret.Identity
    mutating: str
    validating: str
    lease_duration: float = 30.0
    schedule: rotation.Schedule = field(default_factory=rotation.Schedule)
    timeout: float = 5.0


def _decode(secret: Any) -> dict[str, bytes]:
    out = {}
    for key, value in (secret.data or {}).items():
        try:
            out[key] = base64.b64decode(value or "")
        except ValueError:
            continue
    return out


class ManagedCerts:
    def __init__(
        self, api: client.ApiClient, settings: Settings, tls: ServingCerts, metrics: Metrics
    ) -> None:
        self.api = api
        self.s = settings
        self.tls = tls
        self.metrics = metrics
        self.core = client.CoreV1Api(api)
        self.admission = client.AdmissionregistrationV1Api(api)
        self.host = host_of(api)
        self.what = f"Secret {settings.namespace}/{settings.secret}"
        self.elector = Elector(
            api,
            namespace=settings.namespace,
            name=settings.lease,
            identity=settings.identity,
            duration=settings.lease_duration,
            timeout=settings.timeout,
            on_change=self._leading,
        )
        self.wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._served: tuple[bytes, bytes] | None = None
        self._ca_labels: set[str] = set()

    def _leading(self, leading: bool) -> None:
        self.metrics.leader.set(1 if leading else 0)
        self.wake.set()

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self.elector.run(), name="cert-lease"),
            asyncio.create_task(self._watch(), name="cert-secret-watch"),
            asyncio.create_task(self._write_loop(), name="cert-writer"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.elector.release()
        self.metrics.leader.set(0)

    # -- every replica: serve what the Secret holds -----------------------------------------

    def _serve(self, secret: Any) -> None:
        data = _decode(secret)
        pair = (data.get("tls.crt", b""), data.get("tls.key", b""))
        labels = set()
        for index, cert in enumerate(cert_secret.bundle_certs(data.get("ca-bundle.crt", b""))[:8]):
            labels.add(f"ca-{index}")  # ca-0 signs the serving certificate; others are older
            self.metrics.cert_expiry.labels(f"ca-{index}").set(cert.not_valid_after_utc.timestamp())
        for stale in self._ca_labels - labels:
            self.metrics.cert_expiry.remove(stale)
        self._ca_labels = labels
        if pair == self._served or not all(pair):
            return
        where = f"Secret {self.s.namespace}/{self.s.secret}"
        try:
            summary = self.tls.load_pem(pair[0], pair[1], source=where)
        except CertLoadError as exc:
            self.metrics.errors.labels("cert_reload").inc()
            log.warning(
                "serving certificate not reloaded; keeping the previous pair",
                extra={"fields": {"error": str(exc)}},
            )
            return
        first, self._served = self._served is None, pair
        if not first:
            self.metrics.cert_reloads.inc()
        log.info(
            "serving certificate loaded" if first else "serving certificate reloaded",
            extra={"fields": {"certificate": summary, "source": where}},
        )

    async def _watch(self) -> None:
        selector = f"metadata.name={self.s.secret}"
        backoff = 0.5
        while True:
            try:
                listed = await call(
                    self.core.list_namespaced_secret(
                        self.s.namespace, field_selector=selector, _request_timeout=self.s.timeout
                    ),
                    what=f"listing {self.what}",
                    host=self.host,
                )
                for item in listed.items or []:
                    self._serve(item)
                version = listed.metadata.resource_version
                backoff = 0.5
                while True:
                    stream = watch.Watch()
                    async with stream:
                        async for event in stream.stream(
                            self.core.list_namespaced_secret,
                            self.s.namespace,
                            field_selector=selector,
                            resource_version=version,
                            timeout_seconds=240,
                        ):
                            if event.get("type") in ("ADDED", "MODIFIED"):
                                self._serve(event["object"])
                            self.wake.set()  # the holder looks again (a deletion: re-create)
                    version = stream.resource_version or version
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "certificate Secret watch failed; relisting",
                    extra={"fields": {"error": error_text(exc), "seconds": backoff}},
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)

    # -- the Lease holder: create, renew, publish ------------------------------------------

    async def _write_loop(self) -> None:
        while True:
            await self.elector.leading.wait()
            self.wake.clear()  # events from now on trigger another pass
            delay = 1.0
            try:
                delay = await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.metrics.errors.labels("cert_manage").inc()
                log.warning(
                    "certificate upkeep failed; retrying",
                    extra={"fields": {"error": error_text(exc)}},
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), max(0.05, delay))

    async def _read(self) -> Any | None:
        try:
            return await call(
                self.core.read_namespaced_secret(
                    self.s.secret, self.s.namespace, _request_timeout=self.s.timeout
                ),
                what=f"reading {self.what}",
                host=self.host,
            )
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    async def reconcile(self) -> float:
        """One step of upkeep; returns the seconds until the next one is due."""
        secret = await self._read()
        data = _decode(secret) if secret is not None else None
        annotations: Mapping[str, str] = (
            (secret.metadata.annotations or {}) if secret is not None else {}
        )
        now = datetime.datetime.now(datetime.UTC)
        state = cert_secret.read_state(data, annotations, self.s.cert)
        step = rotation.plan(state, now, self.s.schedule)
        if step.action in ("create", "rotate-ca", "renew-leaf", "prune-bundle"):
            new = cert_secret.apply(
                step.action, data, identity=self.s.cert, schedule=self.s.schedule, now=now
            )
            done = {"rotate-ca": "ca", "renew-leaf": "leaf"}.get(step.action)
            keep = {
                k: v for k, v in annotations.items() if not (k == cert_secret.ROTATE and v == done)
            }
            await self._write(secret, new, keep)
            log.info(
                "certificate Secret updated",
                extra={"fields": {"action": step.action, "reason": step.reason}},
            )
            return 0.0
        if data is not None:
            bundle = data.get("ca-bundle.crt", b"")
            if bundle and annotations.get(
                cert_secret.PUBLISHED_BUNDLE
            ) != cert_secret.bundle_digest(bundle):
                if await self._publish(bundle):
                    marked = {
                        **annotations,
                        cert_secret.PUBLISHED_BUNDLE: cert_secret.bundle_digest(bundle),
                        cert_secret.PUBLISHED_AT: now.isoformat(),
                    }
                    await self._write(secret, data, marked)
                    return 0.0
                return 5.0
            elif bundle:
                await self._publish(bundle)  # a configuration re-installed without a caBundle
        return max(0.0, (step.next_check - now).total_seconds())

    async def _write(
        self, secret: Any | None, data: Mapping[str, bytes], annotations: Mapping[str, str]
    ) -> None:
        if not self.elector.is_leader():
            raise RuntimeError("lost the certificate Lease before writing")
        body: Any = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {
                "name": self.s.secret,
                "namespace": self.s.namespace,
                "labels": {"app.kubernetes.io/managed-by": "pf-webhook"},
                "annotations": dict(annotations),
            },
            "data": {k: base64.b64encode(v).decode("ascii") for k, v in data.items()},
        }
        if secret is None:
            await call(
                self.core.create_namespaced_secret(
                    self.s.namespace, body, _request_timeout=self.s.timeout
                ),
                what=f"creating {self.what}",
                host=self.host,
            )
            return
        body["metadata"]["resourceVersion"] = secret.metadata.resource_version
        body["metadata"]["labels"] = {
            **(secret.metadata.labels or {}),
            **body["metadata"]["labels"],
        }
        await call(
            self.core.replace_namespaced_secret(
                self.s.secret, self.s.namespace, body, _request_timeout=self.s.timeout
            ),
            what=f"writing {self.what}",
            host=self.host,
        )

    async def _publish(self, bundle: bytes) -> bool:
        """Set both webhook configurations' caBundle to `bundle`; True when both hold it."""
        encoded = base64.b64encode(bundle).decode("ascii")
        api = self.admission
        ok = True
        for kind, name, read, patch in (
            (
                "MutatingWebhookConfiguration",
                self.s.mutating,
                api.read_mutating_webhook_configuration,
                api.patch_mutating_webhook_configuration,
            ),
            (
                "ValidatingWebhookConfiguration",
                self.s.validating,
                api.read_validating_webhook_configuration,
                api.patch_validating_webhook_configuration,
            ),
        ):
            if not self.elector.is_leader():
                return False
            what = f"{kind} {name}"
            try:
                current = await call(
                    read(name, _request_timeout=self.s.timeout), what=what, host=self.host
                )
                ops, _ = bundle_patch(kind, name, current, encoded)
                if ops:
                    await call(
                        patch(name, ops, _request_timeout=self.s.timeout), what=what, host=self.host
                    )
                    log.info(
                        "caBundle published", extra={"fields": {"configuration": f"{kind}/{name}"}}
                    )
            except KubeError as exc:
                if exc.status is None:  # no answer (timeout, unreachable): the upkeep retries
                    raise
                ok = False
                log.warning(
                    "caBundle not published",
                    extra={"fields": {"configuration": f"{kind}/{name}", "error": str(exc)}},
                )
        return ok
