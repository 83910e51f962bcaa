"""Pure: read JSON the way Pulsar reads customRuntimeOptions (Gson, lenient).

The worker parses a function's customRuntimeOptions with Gson in lenient mode, so it accepts
single-quoted strings, unquoted names and values, `=`/`=>` after names, `;` between members,
comments and trailing garbage-free documents; and it hands a JSON number to a String field as
written (`1.50` stays `1.50`). We accept the same and keep numbers' text in JsonNumber.

Bounded: nesting deeper than `max_depth` and numbers longer than `max_digits` are errors
(the same limits and messages as webhook.bounded); the input is already size-limited.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from webhook.core.errors import UserError

MAX_DEPTH = 64
MAX_DIGITS = 64
_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_LITERAL_END = set("{}[]:,;=#/\\ \t\n\r\f")
_ESCAPES = {
    '"': '"',
    "'": "'",
    "\\": "\\",
    "/": "/",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
}


class GsonError(UserError, ValueError):
    """Not a document Gson would read; the message says what and at which character."""


class GsonLimitError(GsonError):
    """Beyond a webhook.limits bound; the message names the limit."""


class JsonNumber(str):
    """A JSON number, kept as written; `.value` is its numeric value."""

    @property
    def value(self) -> float:
        return float(self)

    @property
    def text(self) -> str:
        return str.__str__(self)


class _Reader:
    def __init__(self, text: str, max_depth: int, max_digits: int) -> None:
        self.text = text
        self.pos = 0
        self.max_depth = max_depth
        self.max_digits = max_digits

    def fail(self, what: str) -> GsonError:
        return GsonError(f"{what} at character {self.pos}")

    def skip(self) -> None:
        text, n = self.text, len(self.text)
        while self.pos < n:
            c = text[self.pos]
            if c in " \t\n\r":
                self.pos += 1
            elif c == "#" or text.startswith("//", self.pos):
                end = text.find("\n", self.pos)
                self.pos = n if end < 0 else end + 1
            elif text.startswith("/*", self.pos):
                end = text.find("*/", self.pos + 2)
                if end < 0:
                    raise self.fail("unterminated comment")
                self.pos = end + 2
            else:
                return

    def peek(self) -> str:
        self.skip()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def value(self, depth: int) -> Any:
        if depth > self.max_depth:
            raise GsonLimitError(
                f"nested deeper than {self.max_depth} levels (webhook.limits.maxJsonDepth)"
            )
        c = self.peek()
        if c == "{":
            return self.obj(depth + 1)
        if c == "[":
            return self.array(depth + 1)
        if c in "\"'":
            return self.string(c)
        if c == "":
            raise self.fail("unexpected end of input")
        return self.literal()

    def string(self, quote: str) -> str:
        self.pos += 1
        out: list[str] = []
        text, n = self.text, len(self.text)
        while self.pos < n:
            c = text[self.pos]
            self.pos += 1
            if c == quote:
                return "".join(out)
            if c != "\\":
                out.append(c)
                continue
            if self.pos >= n:
                break
            e = text[self.pos]
            self.pos += 1
            if e == "u":
                digits = text[self.pos : self.pos + 4]
                if len(digits) < 4 or not all(d in "0123456789abcdefABCDEF" for d in digits):
                    raise self.fail("bad \\u escape")
                out.append(chr(int(digits, 16)))
                self.pos += 4
            elif e in _ESCAPES:
                out.append(_ESCAPES[e])
            elif e == "\n":
                out.append("\n")
            else:
                raise self.fail(f"bad escape \\{e}")
        raise self.fail("unterminated string")

    def literal(self) -> Any:
        start = self.pos
        text, n = self.text, len(self.text)
        while self.pos < n and text[self.pos] not in _LITERAL_END:
            self.pos += 1
        word = text[start : self.pos]
        if not word:
            raise self.fail(f"unexpected {text[start]!r}")
        if word in ("true", "false"):
            return word == "true"
        if word == "null":
            return None
        if _NUMBER.fullmatch(word):
            if len(word) > self.max_digits + 8:
                raise GsonLimitError(
                    f"a number has more than {self.max_digits} digits "
                    "(webhook.limits.maxNumberDigits)"
                )
            return JsonNumber(word)
        return word  # an unquoted string (lenient)

    def name(self) -> str:
        c = self.peek()
        if c in "\"'":
            return self.string(c)
        word = self.literal()
        if word is None or isinstance(word, bool):
            return "null" if word is None else ("true" if word else "false")
        return str(word)

    def obj(self, depth: int) -> dict[str, Any]:
        self.pos += 1
        result: dict[str, Any] = {}
        if self.peek() == "}":
            self.pos += 1
            return result
        while True:
            if self.peek() == "":
                raise self.fail("unterminated object")
            key = self.name()
            c = self.peek()
            if c == ":":
                self.pos += 1
            elif c == "=":
                self.pos += 2 if self.text.startswith("=>", self.pos) else 1
            else:
                raise self.fail("expected ':' after a name")
            result[key] = self.value(depth)
            c = self.peek()
            if c in ",;":
                self.pos += 1
                if self.peek() == "}":  # Gson refuses a trailing separator in objects
                    raise self.fail("expected a name")
                continue
            if c == "}":
                self.pos += 1
                return result
            raise self.fail("expected ',' or '}'")

    def array(self, depth: int) -> list[Any]:
        self.pos += 1
        result: list[Any] = []
        if self.peek() == "]":
            self.pos += 1
            return result
        while True:
            c = self.peek()
            if c in ",;":  # lenient: an empty element reads as null
                self.pos += 1
                result.append(None)
                continue
            if c == "]":
                self.pos += 1
                result.append(None)
                return result
            result.append(self.value(depth))
            c = self.peek()
            if c in ",;":
                self.pos += 1
                if self.peek() == "]":
                    self.pos += 1
                    result.append(None)
                    return result
                continue
            if c == "]":
                self.pos += 1
                return result
            raise self.fail("expected ',' or ']'")


def loads(text: str, *, max_depth: int = MAX_DEPTH, max_digits: int = MAX_DIGITS) -> Any:
    """One lenient JSON document; GsonError when Gson would refuse it or a limit is passed."""
    strict = _strict(text, max_depth, max_digits)
    if strict is not _LENIENT:
        return strict
    reader = _Reader(text, max_depth, max_digits)
    value = reader.value(0)
    if reader.peek() != "":
        raise reader.fail("JSON document was not fully consumed")
    return value


class _Lenient(Exception):
    """Not plain strict JSON within the limits: read it with the lenient reader."""


_LENIENT: Any = object()


@functools.lru_cache(maxsize=16)
def _decoder(max_digits: int) -> json.JSONDecoder:
    """The C parser, keeping numbers as written (made once per limit, not per document)."""

    def number(word: str) -> JsonNumber:
        if len(word) > max_digits + 8:
            raise _Lenient
        return JsonNumber(word)

    def constant(word: str) -> Any:
        raise _Lenient

    return json.JSONDecoder(parse_int=number, parse_float=number, parse_constant=constant)


def _strict(text: str, max_depth: int, max_digits: int) -> Any:
    """The document, when it is strict JSON that the lenient reader would read the same (the
    usual case, read by the C parser); else _LENIENT. Anything unusual (escapes `\\u`, which
    the C parser joins into surrogate pairs and Gson does not; NaN; a limit passed; a syntax
    error) goes to the lenient reader, which gives Gson's reading and its exact errors."""
    if "\\u" in text or text.startswith("\ufeff"):
        return _LENIENT
    try:
        value = _decoder(max_digits).decode(text)
    except (_Lenient, ValueError, RecursionError):
        return _LENIENT
    # the lenient reader refuses a value nested deeper than max_depth (a value at level d,
    # the top one at 0, with d > max_depth)
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, level = stack.pop()
        children = node.values() if type(node) is dict else node if type(node) is list else ()
        for child in children:
            if level + 1 > max_depth:
                return _LENIENT
            stack.append((child, level + 1))
    return value
