"""Pure: the one base of every error a user reads, and the one way its text is made one line.

A `UserError`'s message is what the user sees (on stderr after ``error:``, in a denial, in a
log record's ``error`` field): one line, its whitespace collapsed and its control characters
escaped, done once here when the error is made. Its text may quote a peer's words (a URL, an
API server's message, a token's claim, a manifest's value), so a terminal escape in them cannot
rewrite the report or the log it lands in. The command line catches `UserError` once and exits 2.
"""

from __future__ import annotations

import json
import re

__all__ = ["UserError", "one_line", "printable"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(value: object) -> str:
    """`value` for a terminal or a log line, its control characters escaped (``\\x1b``); a
    value that is not a string is shown as JSON."""
    text = value if isinstance(value, str) else json.dumps(value)
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def one_line(text: object) -> str:
    """`text` as one line: runs of whitespace (newlines included) become one space, control
    characters are escaped."""
    return printable(" ".join(str(text).split()))


class UserError(Exception):
    """An error whose message is for the user: one line (see `one_line`), naming what and where.

    Subclasses keep the built-in base they had (``ValueError``, ...) next to this one, so an
    ``except ValueError`` written against them still holds.
    """

    def __init__(self, message: object) -> None:
        super().__init__(one_line(message))
