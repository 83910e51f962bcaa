"""Shell: a compact JWS read from a file or stdin and decoded, never echoed.

``parse_token`` splits and decodes header and payload; errors say what is wrong with the input
without quoting it. The raw token is kept only for the signature check: ``repr`` and ``str``
of a ``ParsedToken`` leave it out.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from webhook.audit.errors import AuditError

MAX_TOKEN_BYTES = 1 << 20
_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class ParsedToken:
    """A compact JWS split and decoded. ``raw`` is only ever handed to the signature check."""

    header: Mapping[str, Any]
    claims: Mapping[str, Any]
    raw: str = field(repr=False)
    signed: bool = True  # a non-empty signature part

    def __str__(self) -> str:  # never the token
        return "<token>"


def _b64url(part: str, what: str) -> bytes:
    if not _B64URL.match(part) or len(part) % 4 == 1:
        raise AuditError(f"not a JWT: the {what} is not base64url")
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError):
        raise AuditError(f"not a JWT: the {what} is not base64url") from None


def _json_part(part: str, what: str) -> dict[str, Any]:
    data = _b64url(part, what)
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise AuditError(f"not a JWT: the {what} is not JSON") from None
    except RecursionError:
        raise AuditError(f"not a JWT: the {what} is JSON nested too deeply") from None
    if not isinstance(value, dict):
        raise AuditError(f"not a JWT: the {what} is a JSON {type(value).__name__}, not an object")
    return value


def parse_token(text: str) -> ParsedToken:
    """Split and decode a compact JWS; AuditError (never quoting the input) when it is not one."""
    token = text.strip()
    if not token:
        raise AuditError("no token: the input is empty")
    parts = token.split(".")
    if len(parts) == 5:
        raise AuditError("not a JWT: this is an encrypted token (JWE), not a signed one")
    if len(parts) != 3:
        raise AuditError(f"not a JWT: expected 3 dot-separated parts, found {len(parts)}")
    header = _json_part(parts[0], "header")
    claims = _json_part(parts[1], "payload")
    signature = _b64url(parts[2], "signature")
    return ParsedToken(header=header, claims=claims, raw=token, signed=bool(signature))


def read_token(source: str) -> ParsedToken:
    """The token in file ``source`` (``-`` for stdin), surrounding whitespace stripped."""
    name = "<stdin>" if source == "-" else source
    try:
        if source == "-":
            text = sys.stdin.read(MAX_TOKEN_BYTES + 1)
        else:
            with open(source, "rb") as handle:
                data = handle.read(MAX_TOKEN_BYTES + 1)
            text = data.decode("utf-8")
    except OSError as exc:
        raise AuditError(f"{name}: cannot read: {exc.strerror or type(exc).__name__}") from None
    except UnicodeDecodeError:
        raise AuditError(f"{name}: not a JWT: not UTF-8 text") from None
    if len(text) > MAX_TOKEN_BYTES:
        raise AuditError(f"{name}: larger than {MAX_TOKEN_BYTES} bytes, not a token")
    try:
        return parse_token(text)
    except AuditError as exc:
        raise AuditError(f"{name}: {exc}") from None
