"""Issue 12 item 8 through the server in-process: every hostile but well-formed review gets an
AdmissionReview (a denial naming the problem) or a 4xx, never a 500."""

from __future__ import annotations

import json

import pytest

from tests.unit.test_hostile_input import GRANULAR, _hostile_objects, review_of
from tests.unit.test_server import Client, ClientFactory, state_with
from webhook.server import handlers


@pytest.fixture
async def granular_client(aiohttp_client: ClientFactory) -> Client:
    return await aiohttp_client(handlers.create_app(state_with(config=GRANULAR)))


@pytest.mark.parametrize("index", range(len(_hostile_objects())))
async def test_no_hostile_review_gets_a_500(granular_client: Client, index: int) -> None:
    body = json.dumps(review_of(_hostile_objects()[index]))
    for path in ("/mutate", "/validate"):
        resp = await granular_client.post(
            path, data=body, headers={"Content-Type": "application/json"}
        )
        text = await resp.text()
        assert resp.status in (200, 400), text
        if resp.status == 200:
            assert json.loads(text)["response"]["uid"] == "u-1"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b'{"apiVersion": "admission.k8s.io/v1", "x": ' + b"9" * 5000 + b"}", "too many digits"),
        (b"[" * 100_000, "nested too deeply"),
        (b'{"a": NaN}', "NaN is not a JSON number"),
    ],
    ids=["huge-int", "deep", "nan"],
)
async def test_an_unreadable_body_is_a_400_naming_the_problem(
    granular_client: Client, body: bytes, words: str
) -> None:
    resp = await granular_client.post(
        "/validate", data=body, headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400
    assert words in (await resp.json())["error"]
