"""AdmissionReviews as the API server sends them, and reading the patch out of an answer;
shared by the unit, integration and end-to-end tests and the benchmarks."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

# the identity Pulsar's functions worker has in a cluster (the API server names it in userInfo)
WORKER_USER = "system:serviceaccount:pulsar:pulsar-function-worker"


def admission_review(
    obj: Mapping[str, Any] | None,
    *,
    uid: str = "7d1c5e0a-0001",
    operation: str = "CREATE",
    namespace: str | None = "pulsar-functions",
    dry_run: bool = False,
    old: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The admission.k8s.io/v1 AdmissionReview for `obj`. request.kind and request.resource
    follow the object's apiVersion/kind (a StatefulSet when it has none); request.name is its
    metadata.name when it has one; namespace None leaves request.namespace out."""
    api_version, kind = "apps/v1", "StatefulSet"
    if (
        isinstance(obj, Mapping)
        and isinstance(obj.get("apiVersion"), str)
        and isinstance(obj.get("kind"), str)
    ):
        api_version, kind = obj["apiVersion"], obj["kind"]
    group, _, version = api_version.rpartition("/")
    request: dict[str, Any] = {
        "uid": uid,
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": group, "version": version, "resource": kind.lower() + "s"},
        "operation": operation,
        "userInfo": {"username": WORKER_USER},
        "object": obj,
        "oldObject": old,
        "dryRun": dry_run,
    }
    if namespace is not None:
        request["namespace"] = namespace
    metadata = obj.get("metadata") if isinstance(obj, Mapping) else None
    if isinstance(metadata, Mapping) and isinstance(metadata.get("name"), str):
        request["name"] = metadata["name"]
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def patch_of(response: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The JSONPatch operations of an AdmissionReview response ([] when it has no patch);
    fails the test if patch and patchType do not come together."""
    if "patch" not in response:
        assert "patchType" not in response, response
        return []
    assert response.get("patchType") == "JSONPatch", response
    ops = json.loads(base64.b64decode(response["patch"], validate=True))
    assert isinstance(ops, list), ops
    return ops
