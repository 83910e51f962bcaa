"""Pure: read and edit flags in the instance's `sh -c` command line.

The worker writes `command: [sh, -c, "<download> && ... && exec <instance> --flag value ..."]`
with no shell quoting except single quotes around JSON (`--function_details '<json>'`, Go's
`-instance-conf '<json>'`). We tokenise the script like a shell (quotes, backslashes), keep
each token's span, and edit by replacing spans, so everything we do not touch stays byte-equal.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import Any

from webhook import bounded

_SAFE = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")


class CommandError(ValueError):
    """The command line cannot be read (for example an unterminated quote)."""


@dataclass(frozen=True)
class Token:
    text: str  # the word after quote removal
    start: int
    end: int


_SPACE = re.compile(r"\s*")
_WORD = re.compile(r"""(?:[^\s'"\\]+|'[^']*'|"(?:[^"\\]|\\.)*"|\\.)+""", re.S)
_PART = re.compile(r"""'([^']*)'|"((?:[^"\\]|\\.)*)"|\\(.)|([^'"\\]+)""", re.S)
_UNESCAPE = re.compile(r'\\([$`"\\\n])')  # inside "...", sh only unescapes these


def _unquote(word: str) -> str:
    parts = []
    for single, double, escaped, plain in _PART.findall(word):
        parts.append(single or _UNESCAPE.sub(r"\1", double) or escaped or plain)
    return "".join(parts)


@functools.lru_cache(maxsize=256)
def _tokens(script: str) -> tuple[Token, ...]:
    tokens: list[Token] = []
    pos, n = 0, len(script)
    while True:
        pos = _SPACE.match(script, pos).end()  # type: ignore[union-attr]
        if pos >= n:
            return tuple(tokens)
        match = _WORD.match(script, pos)
        end = match.end() if match else pos
        if end < n and not script[end].isspace():
            kind = "single" if script[end] == "'" else "double" if script[end] == '"' else "escaped"
            raise CommandError(f"unterminated {kind} quote at character {end}")
        word = script[pos:end]
        text = _unquote(word) if any(c in word for c in "'\"\\") else word
        tokens.append(Token(text, pos, end))
        pos = end


def tokenize(script: str) -> list[Token]:
    """Split like `sh` (quotes, backslashes), keeping each word's span in the script.

    Cached: the mutation reads the same script several times per review.
    """
    return list(_tokens(script))


_RESERVED = {"exec", "&&", "||", ";", "|"}
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")


def quote(value: str) -> str:
    """Quote a word for `sh` only when it needs it (single quotes, as the worker does)."""
    if _SAFE.fullmatch(value) and value not in _RESERVED:
        return value
    return "'" + value.replace("'", "'\"'\"'") + "'"


def _instance_start(tokens: list[Token], script: str) -> int:
    """Index of the token after the last `exec` in command position: flags are only read
    from the instance (a function named `exec` in `--logging_file exec` is not the shell's)."""
    start, command_position = 0, True
    for index, token in enumerate(tokens):
        raw = script[token.start : token.end]
        if raw in ("&&", "||", ";", "|"):
            command_position = True
        elif command_position and _ASSIGNMENT.match(raw):
            continue
        elif command_position:
            if raw == "exec":
                start = index + 1
            command_position = False
    return start


def get_flag(script: str, flag: str) -> str | None:
    tokens = tokenize(script)
    for index in range(_instance_start(tokens, script), len(tokens) - 1):
        if tokens[index].text == flag:
            return tokens[index + 1].text
    return None


def set_flag(script: str, flag: str, value: str) -> str:
    """Give `flag` the value `value`: replace it where present, else append it at the end."""
    tokens = tokenize(script)
    for index in range(_instance_start(tokens, script), len(tokens) - 1):
        if tokens[index].text == flag:
            target = tokens[index + 1]
            if target.text == value:
                return script
            return script[: target.start] + quote(value) + script[target.end :]
    return f"{script.rstrip()} {flag} {quote(value)}"


def get_json_flag(script: str, flag: str) -> dict[str, Any] | None:
    """The JSON object after `flag` (`--function_details`, `-instance-conf`), or None if absent.

    Raises CommandError saying what is wrong when the flag is there but its JSON is not.
    """
    raw = get_flag(script, flag)
    if raw is None:
        return None
    try:
        value = bounded.loads(raw)
    except bounded.JsonLimitError as exc:
        joint = " is" if str(exc).startswith("not valid JSON") else ":"
        raise CommandError(f"{flag}{joint} {exc}") from None
    if not isinstance(value, dict):
        raise CommandError(f"{flag} must be a JSON object, got {type(value).__name__}")
    return value


def set_json_flag(script: str, flag: str, value: dict[str, Any]) -> str:
    return set_flag(script, flag, json.dumps(value, separators=(",", ":")))


def clear_cache() -> None:
    """Forget tokenised scripts (benchmarks use it to measure every review as a first sight)."""
    _tokens.cache_clear()
