"""The server's JSON reader and writer (orjson) read and write exactly what the stdlib would:
the same value (type included) or the same error message, for every body."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webhook.server import wire


def _outcome(read: Any, body: bytes) -> tuple[str, str]:
    try:
        value = read(body)
    except wire.BadJson as exc:
        return "error", str(exc)
    return "value", repr(value)  # repr tells 1 from 1.0 and True, and shows key order


def _same_as_stdlib(body: bytes) -> tuple[str, str]:
    ours = _outcome(wire.load_json, body)
    assert ours == _outcome(wire._load_json_stdlib, body), body[:200]
    return ours


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"[18446744073709551615]", ("value", "[18446744073709551615]")),  # 2**64 - 1
        (b"[18446744073709551616]", ("value", "[18446744073709551616]")),  # 2**64: an int
        (b"[-9223372036854775809]", ("value", "[-9223372036854775809]")),
        (b'{"x": ' + b"1" * 64 + b"}", ("value", "{'x': " + "1" * 64 + "}")),
        (b"[1e999, -1e999]", ("value", "[inf, -inf]")),
        (b'{"a": 1, "a": 2}', ("value", "{'a': 2}")),
        (b"\xef\xbb\xbf{}", ("value", "{}")),  # a UTF-8 byte order mark
        ('{"a": "é"}'.encode("utf-16"), ("value", "{'a': 'é'}")),
        (b'["\\ud800"]', ("value", "['\\ud800']")),  # a lone surrogate escape
        (b'{"a": NaN}', ("error", "body is not valid JSON: NaN is not a JSON number")),
        (b"[-Infinity]", ("error", "body is not valid JSON: -Infinity is not a JSON number")),
        (b"[" * 100_000, ("error", "body is not valid JSON: nested too deeply")),
        (
            b"[" + b"9" * 5000 + b"]",
            ("error", "body is not valid JSON: a number has too many digits"),
        ),
        (b"\xff\xfe\xfa", ("error", "body is not UTF-8 JSON")),
        (b'"\xed\xa0\x80"', ("value", "'\\ud800'")),  # UTF-8 of a surrogate: Python reads it
        (
            b'{"apiVersion": ',
            ("error", "body is not valid JSON at line 1 column 16: Expecting value"),
        ),
        (b"[1,]", ("error", "body is not valid JSON at line 1 column 4: Expecting value")),
        (
            b'"a\x01"',
            ("error", "body is not valid JSON at line 1 column 3: Invalid control character at"),
        ),
        (b"", ("error", "body is not valid JSON at line 1 column 1: Expecting value")),
        (b"[0.1234567890123456789012]", ("value", "[0.12345678901234568]")),
    ],
)
def test_edge_cases_read_as_the_stdlib_reads_them(body: bytes, expected: tuple[str, str]) -> None:
    assert _same_as_stdlib(body) == expected


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(json_values, st.booleans(), st.booleans())
def test_any_json_value_reads_as_with_the_stdlib(value: Any, ascii: bool, compact: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii, separators=(",", ":") if compact else None)
    kind, _ = _same_as_stdlib(text.encode())
    assert kind == "value"


@settings(max_examples=300, deadline=None)
@given(json_values, st.integers(min_value=0, max_value=10_000), st.binary(min_size=1, max_size=3))
def test_a_damaged_body_reads_or_fails_as_with_the_stdlib(
    value: Any, where: int, damage: bytes
) -> None:
    body = json.dumps(value).encode()
    at = where % (len(body) + 1)
    _same_as_stdlib(body[:at] + damage + body[at:])


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_an_answer_is_written_as_the_stdlib_writes_it(value: Any) -> None:
    assert json.loads(wire.dumps(value)) == json.loads(json.dumps(value, separators=(",", ":")))


def test_what_orjson_cannot_write_is_written_by_the_stdlib() -> None:
    for value in ({"uid": "\ud800"}, {"n": 2**70}, {1: "int key"}):
        assert wire.dumps(value) == json.dumps(value, separators=(",", ":"))
