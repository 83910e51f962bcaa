"""Hostile input for the broker model: any properties text, any claims, any key set give an
answer or a one-line error, never an exception."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webhook.audit import broker, jwt_parse
from webhook.audit.errors import AuditError
from webhook.audit.keys import KeySource
from webhook.core import broker_config

BASE = broker_config.parse(
    "openIDAllowedTokenIssuers=https://i\nopenIDAllowedAudiences=pulsar\n", "broker.conf"
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)
claim_names = st.sampled_from(["iss", "sub", "aud", "exp", "nbf", "iat", "role", "kid"])


def _b64(data: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_properties_text(text: str) -> None:
    try:
        found = broker_config.parse(text, "f")
    except broker_config.BrokerConfigError as exc:
        assert "\n" not in str(exc)
    else:
        found.startup_error()
        found.notes()


def test_deeply_nested_yaml_is_an_answer_not_a_crash() -> None:
    for text in (
        "properties:\n  openIDAllowedAudiences: " + "[" * 20000,
        "PULSAR_PREFIX_openIDAllowedAudiences: " + "[" * 20000,
    ):
        try:
            broker_config.parse(text, "f")
        except broker_config.BrokerConfigError as exc:
            assert "\n" not in str(exc)


def test_worker_yaml_providers_ignore_nested_aliases() -> None:
    levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):  # 10**9 leaves if expanded
        levels.append(f"{name}: &{name} [{', '.join(['*' + prev] * 10)}]")
    text = (
        "properties:\n  openIDAllowedAudiences: pulsar\n"
        + "\n".join(levels)
        + "\nauthenticationProviders: [*i, Provider]\n"
    )
    found = broker_config.parse(text, "functions_worker.yml")
    assert found.providers == ("Provider",)


def test_far_future_times_are_words_not_crashes() -> None:
    for value in (10**30, 1e300, -(10**30), float("inf"), float("nan")):
        claims = {
            "iss": "https://i",
            "aud": "pulsar",
            "sub": "s",
            "exp": value,
            "nbf": value,
            "iat": 0,
        }
        verdict = broker.claims_verdict(claims, BASE, api=None, now=1e9)
        assert "\n" not in verdict.line()


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(claim_names, json_values, max_size=8),
    st.dictionaries(st.sampled_from(["alg", "kid", "typ"]), json_values, max_size=3),
    st.lists(
        st.dictionaries(
            st.sampled_from(["kty", "kid", "alg", "crv", "x", "y", "n", "e", "k"]),
            json_values,
            max_size=6,
        ),
        max_size=3,
    ),
    st.sampled_from(["sub", "role", ""]),
)
def test_any_claims_header_and_key_set(
    claims: dict[str, Any], header: dict[str, Any], keys: list[dict[str, Any]], role_claim: str
) -> None:
    token = jwt_parse.parse_token(f"{_b64(header)}.{_b64(claims)}.c2ln")
    settings_ = broker_config.BrokerSettings(
        source="x", issuers=BASE.issuers, audiences=BASE.audiences, role_claim=role_claim
    )
    source = KeySource(jwks={"keys": keys}, origin="keys", issuer="https://i")
    verdict = broker.broker_verdict(token, settings_, keys=source, api=None, now=1e9)
    assert "\n" not in verdict.line()
    assert verdict.accepted is False  # the signature "sig" never verifies
    broker.claims_verdict(claims, settings_, api=None, now=1e9)


def test_deeply_nested_claims_are_a_one_line_error() -> None:
    deep = base64.urlsafe_b64encode(b"[" * 200_000).rstrip(b"=").decode()
    with pytest.raises(AuditError, match=r"nested too deeply|not JSON"):
        jwt_parse.parse_token(f"{_b64({'alg': 'ES256'})}.{deep}.c2ln")
