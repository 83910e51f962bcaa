"""Shell: the server's JSON on the wire: strict request bodies, compact answers, one-line errors.

A body that is not strict JSON (NaN, Infinity, bad UTF-8, nested too deeply) is a `BadJson`
naming where; an error answer is `{"error": "<one line>"}`, bounded; a failure inside a review
becomes `internal_error_review`, a denial naming only the exception type.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from aiohttp import web

from webhook.core import errors, review

MAX_ERROR_TEXT: Final = 300


def one_line(text: str, limit: int = MAX_ERROR_TEXT) -> str:
    """`text` on one line (`webhook.core.errors.one_line`), cut to `limit` characters."""
    return review.short(errors.one_line(text), limit)


def dumps(doc: object) -> str:
    """Compact JSON, as every answer is written."""
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


def load_json(body: bytes) -> Any:
    """A request body as strict JSON (no NaN or Infinity); BadJson otherwise."""
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
