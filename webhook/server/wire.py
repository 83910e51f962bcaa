"""Shell: the server's JSON on the wire: strict request bodies, compact answers, one-line errors.

A body that is not strict JSON (NaN, Infinity, bad UTF-8, nested too deeply) is a `BadJson`
naming where; an error answer is `{"error": "<one line>"}`, bounded; a failure inside a review
becomes `internal_error_review`, a denial naming only the exception type.

Bodies are read with orjson (several times faster than the stdlib on a review) and answers
written with it. What orjson reads differently is handed to the stdlib reader, so every body
reads to the same value, or fails with the same message, as with the stdlib alone: orjson
reads an integer beyond 64 bits as a float (a body with a run of 19 or more digits goes to the
stdlib, which keeps the integer), and refuses what the stdlib reads or words differently (NaN,
1e999, a byte order mark, UTF-16, lone surrogates, any error). One difference is left: orjson
reads nesting up to 1,024 levels, where the stdlib's limit is the interpreter's recursion
limit (about 1,000 levels less the stack in use); beyond both it is "nested too deeply".
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

import orjson
from aiohttp import web

from webhook.core import errors, review

MAX_ERROR_TEXT: Final = 300


def one_line(text: str, limit: int = MAX_ERROR_TEXT) -> str:
    """`text` on one line (`webhook.core.errors.one_line`), cut to `limit` characters."""
    return review.short(errors.one_line(text), limit)


def dumps(doc: object) -> str:
    """Compact JSON, as every answer is written (UTF-8, not \\u-escaped)."""
    try:
        return orjson.dumps(doc).decode()
    except TypeError:  # orjson.JSONEncodeError: an integer beyond 64 bits, a lone surrogate
        return json.dumps(doc, separators=(",", ":"))


def error(status: int, message: str, *, headers: Mapping[str, str] | None = None) -> web.Response:
    """An HTTP error answer: `{"error": "<one line>"}`."""
    return web.json_response(
        {"error": one_line(message)}, status=status, headers=headers, dumps=dumps
    )


class BadJson(errors.UserError, ValueError):
    """The body is not strict JSON; the message says where, without quoting the body."""


def _no_constant(name: str) -> Any:
    raise BadJson(f"body is not valid JSON: {name} is not a JSON number")


# digits -> "0", every other byte -> " ": a run of 19 digits is then one substring search
_DIGITS: Final = bytes(48 if 48 <= b <= 57 else 32 for b in range(256))
_LONG_DIGITS: Final = b"0" * 19  # 18 digits always fit in 64 bits


def load_json(body: bytes) -> Any:
    """A request body as strict JSON (no NaN or Infinity); BadJson otherwise."""
    if _LONG_DIGITS not in body.translate(_DIGITS):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass  # the stdlib decides: it reads some of these, and words the error
    return _load_json_stdlib(body)


def _load_json_stdlib(body: bytes) -> Any:
    try:
        return json.loads(body, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise BadJson(
            f"body is not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except UnicodeDecodeError:
        raise BadJson("body is not UTF-8 JSON") from None
    except RecursionError:
        raise BadJson("body is not valid JSON: nested too deeply") from None
    except BadJson:
        raise
    except ValueError:  # int(): a number over Python's 4,300-digit conversion limit
        raise BadJson("body is not valid JSON: a number has too many digits") from None


def internal_error_review(uid: str, exc: BaseException) -> review.AdmissionReview:
    """The denial for a failure inside a review: it names the exception type only."""
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {
            "uid": uid,
            "allowed": False,
            "status": {
                "code": 500,
                "reason": "InternalError",
                "message": f"internal error in pf-webhook: {type(exc).__name__}",
            },
        },
    }
