"""Live reads on a cache miss: a missing object is None; any other API error is one `KubeError`
naming the object, never carrying the API server's response body."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from webhook.kube.caches import _read_or_none
from webhook.kube.client import KubeError


def _raising(status: int) -> Any:
    async def read(name: str, namespace: str) -> Any:
        exc = ApiException(status=status, reason="Reason")
        exc.body = b'{"message": "secret-value-in-body"}'  # bytes, as read off the response
        raise exc

    return read


async def test_a_missing_object_reads_as_none() -> None:
    assert await _read_or_none(_raising(404), "Secret", "ns", "tok") is None


async def test_an_object_is_returned_as_read() -> None:
    async def read(name: str, namespace: str) -> Any:
        return (namespace, name)

    assert await _read_or_none(read, "Secret", "ns", "tok") == ("ns", "tok")


@pytest.mark.parametrize("status", [401, 403, 500])
async def test_other_api_errors_name_the_object_not_the_body(status: int) -> None:
    with pytest.raises(KubeError) as caught:
        await _read_or_none(_raising(status), "ServiceAccount", "ns", "sa")
    message = str(caught.value)
    assert message == f"reading ServiceAccount ns/sa: HTTP {status} Reason"
    assert "secret-value-in-body" not in message
