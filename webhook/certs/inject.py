"""Shell: ``certs inject``'s work: the CA bundle put into ``clientConfig.caBundle`` of every
webhook of the Mutating and ValidatingWebhookConfiguration, through the Kubernetes API.

`bundle_patch` is the JSON patch that does it (also what ``serve --manage-certs`` publishes
with); `inject_ca_bundle` reads both configurations, then patches each. The cluster is the one
`webhook.kube.client` picks (flag, ``$KUBECONFIG``, ``~/.kube/config``, in-cluster); a failed
call is its one-line `KubeError`.
"""

from __future__ import annotations

import base64
from typing import Any

from webhook.certs.pki import CertError
from webhook.kube.client import KubeError, call, connect, host_of

__all__ = ["bundle_patch", "inject_ca_bundle"]


async def inject_ca_bundle(
    ca_pem: bytes,
    *,
    kubeconfig: str | None,
    mutating: str = "pf-webhook",
    validating: str = "pf-webhook",
    timeout: float = 10.0,
) -> list[str]:
    """Set ``clientConfig.caBundle`` of every webhook in both configurations to ``ca_pem``.

    Both configurations are read before either is changed, so a missing one leaves the other
    untouched. Each is changed with a JSON patch that touches only the caBundle fields and
    first tests each webhook's name at its index, so a concurrent reorder fails instead of
    writing the wrong entry. Returns one human-readable line per webhook. A failure is a
    `KubeError` (no cluster, not found, forbidden, unreachable) or a `CertError`.
    """
    # Imported here: kubernetes_asyncio is slow to import and only this command needs it.
    from kubernetes_asyncio import client

    bundle = base64.b64encode(ca_pem).decode("ascii")
    connection = await connect(kubeconfig)
    host = host_of(connection)
    kind_m = "MutatingWebhookConfiguration"
    kind_v = "ValidatingWebhookConfiguration"
    lines: list[str] = []
    try:
        async with connection as api_client:
            api = client.AdmissionregistrationV1Api(api_client)
            current_m = await call(
                api.read_mutating_webhook_configuration(mutating, _request_timeout=timeout),
                what=f"{kind_m} {mutating!r}",
                host=host,
            )
            current_v = await call(
                api.read_validating_webhook_configuration(validating, _request_timeout=timeout),
                what=f"{kind_v} {validating!r}",
                host=host,
            )
            for kind, name, current, patch_fn in (
                (kind_m, mutating, current_m, api.patch_mutating_webhook_configuration),
                (kind_v, validating, current_v, api.patch_validating_webhook_configuration),
            ):
                ops, changes = bundle_patch(kind, name, current, bundle)
                if ops:
                    what = f"{kind} {name!r}"
                    try:
                        await call(
                            patch_fn(name, ops, _request_timeout=timeout), what=what, host=host
                        )
                    except KubeError as exc:
                        if exc.status == 422 and "test operation" in exc.server_message.lower():
                            raise CertError(
                                f"{what} changed while patching; run inject again"
                            ) from None
                        raise
                lines.extend(changes)
    except (CertError, KubeError):
        raise
    except Exception as exc:  # closing the client or anything unforeseen: still one line
        raise CertError(
            f"caBundle injection via {host} failed: {type(exc).__name__}: {exc}"
        ) from exc
    return lines


def bundle_patch(
    kind: str, name: str, current: Any, bundle: str
) -> tuple[list[dict[str, Any]], list[str]]:
    """The JSON patch setting every webhook's caBundle of `current` (a configuration as read)
    to `bundle` (base64), each guarded by a test of its name; and one line per webhook."""
    webhooks = list(getattr(current, "webhooks", None) or [])
    if not webhooks:
        return [], [f"{kind}/{name}: no webhooks, nothing to change"]
    ops: list[dict[str, Any]] = []
    lines: list[str] = []
    for i, hook in enumerate(webhooks):
        hook_name = getattr(hook, "name", None) or f"#{i}"
        client_config = getattr(hook, "client_config", None)
        if client_config is not None and getattr(client_config, "ca_bundle", None) == bundle:
            lines.append(f"{kind}/{name}: webhook {hook_name} caBundle already up to date")
            continue
        ops.append({"op": "test", "path": f"/webhooks/{i}/name", "value": hook.name})
        ops.append({"op": "add", "path": f"/webhooks/{i}/clientConfig/caBundle", "value": bundle})
        lines.append(f"{kind}/{name}: webhook {hook_name} caBundle updated")
    return ops, lines
