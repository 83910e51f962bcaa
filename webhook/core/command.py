"""Pure: read and edit the instance's flags in the worker's `sh -c` command line, as POSIX sh
(dash) reads it.

The worker writes `command: [sh, -c, "<download> && ... && exec <instance> --flag value ..."]`.
`parse` reads the script once, in one linear pass, the way sh does: words end at blanks,
newlines and the operators `; & | && || ( ) < >`; `#` at the start of a word begins a comment;
single quotes, double quotes, backslashes, `$name`, `${...}`, `$(...)`, `$((...))` and
backquotes are followed to their end. A non-breaking space is a word character to sh, and so it
is here. What this reader cannot follow exactly (here-documents, line continuations, nested
quotes in backquotes, `${...}` holding quotes) makes the script unreadable: `CommandError`.

Reading takes the flags of the instance: the command that the script `exec`s. Editing (`Edit`)
replaces the span of a flag's value, or inserts the flag right after the instance's last word,
and renders once, so every byte we do not touch stays as it was. An edit is refused, leaving
the script untouched, whenever we cannot show that our flag lands on the instance's own argv:
a second exec, a command after the instance, a pipeline or background job, a compound command,
`eval`/`alias`/`.`, a command name or value only known at run time, a flag given twice or in
another spelling. Every value we write is quoted for sh (only when it needs it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NamedTuple

from webhook.core import bounded
from webhook.core.bounded import DEFAULT_LIMITS, Limits
from webhook.core.errors import UserError

DEFAULT_MAX_LENGTH = DEFAULT_LIMITS.max_command_length  # the worker's commands are a few KiB
MAX_NESTING = 16  # $( inside $( inside ...
LIMIT_KEY = "webhook.limits.maxCommandLength"


class CommandError(UserError, ValueError):
    """The command line cannot be read (unterminated quote, here-document, over the limit...)."""


class Word(NamedTuple):
    """A word as sh reads it, with its span in the script."""

    text: str  # after quote removal; expansions kept as written (`$SHARD_ID`)
    start: int
    end: int
    expands: bool = False  # holds $, `...`, an unquoted glob or a leading ~: known at run time
    plain: bool = True  # no quoting at all (reserved words and io numbers are only plain)
    assignment: bool = False  # `NAME=...` (before the command name it sets a variable)
    odd_space: int = -1  # where an unquoted non-ASCII space (NBSP...) is: not a blank to sh


class _Op(NamedTuple):
    text: str  # an operator, or "\n"
    start: int
    end: int


@dataclass(frozen=True)
class Command:
    """One simple command: its words (assignments included, redirections not) and its span."""

    words: tuple[Word, ...]
    start: int
    end: int  # end of its last word or redirection target
    before: str  # the operator before it ("" at the start of the script)
    after: str  # the operator after it ("" at the end)


# ---------------------------------------------------------------------------------------------
# the lexer

# blanks, then a plain word or a single-quoted word (most of a script), in one match; the
# match may be only blanks, or empty (then the general reader takes over at that character)
_FAST = re.compile(
    r"[ \t]*+(?:"
    r"(?P<word>[^ \t\n'\"\\$`;&|()<>#~*?\[\s][^ \t\n'\"\\$`;&|()<>*?\[\s]*+)(?=[ \t\n;&|()<>]|\Z)"
    r"|(?P<quoted>'[^']*+')(?=[ \t\n;&|()<>]|\Z)"
    r")?"
)
_PLAIN = re.compile(r"[^ \t\n'\"\\$`;&|()<>]+")
_GLOB = re.compile(r"[*?\[]")
_ODD_SPACE = re.compile(r"[^\S \t\n]")  # Unicode spaces other than sh's blanks
_IN_DOUBLE = re.compile(r'[^"\\$`]+')
_OPERATORS = ("<<-", "&&", "||", ";;", "<<", ">>", "<&", ">&", "<>", ">|", ";", "&", "|", "(", ")", "<", ">")  # fmt: skip
_OPERATOR_START = frozenset(";&|()<>")
_REDIRECTIONS = frozenset({"<", ">", ">>", "<&", ">&", "<>", ">|"})
_SEPARATORS = frozenset({";", "&", "&&", "||", "|", "\n"})
_PARAMETER = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*|[0-9@*#?$!-])")
_BRACED = re.compile(r"\$\{[^}'\"\\$`{]*\}")
# possessive quantifiers: one way to read each text, so a failed match fails in linear time
_ARITHMETIC = re.compile(
    r"\$\(\((?:[^()'\"\\`$]++|\$[A-Za-z_][A-Za-z0-9_]*+|\$[0-9#?$!@*-]|\([^()'\"\\`$]*+\))*+\)\)"
)
_BACKQUOTED = re.compile(r"`((?:[^`\\]++|\\.)*+)`", re.S)
_RESERVED = frozenset(
    {"if", "then", "else", "elif", "fi", "do", "done", "case", "esac", "while", "until", "for"}
    | {"{", "}", "!", "in"}
)
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_DIGITS = re.compile(r"[0-9]+")


class _Lexer:
    """One pass over the script; `$(...)` is read by the same lexer, recursively (bounded)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.n = len(text)

    def tokens(self, pos: int, depth: int, closing: bool) -> tuple[list[Word | _Op], int]:
        """Tokens from `pos` to the end, or (`closing`) to the `)` that closes a `$(`."""
        if depth > MAX_NESTING:
            raise CommandError(f"command substitutions nested over {MAX_NESTING} deep")
        text, n = self.text, self.n
        out: list[Word | _Op] = []
        parens = 0
        fast_match, new, append = _FAST.match, tuple.__new__, out.append
        while pos < n:
            fast = fast_match(text, pos)
            end = fast.end()  # type: ignore[union-attr]  # the pattern matches (maybe empty)
            if end > pos:  # blanks, then maybe a plain or single-quoted word
                kind = fast.lastgroup  # type: ignore[union-attr]
                if kind == "word":
                    start = fast.start(kind)  # type: ignore[union-attr]
                    plain = text[start:end]
                    if closing and plain == "case":
                        raise CommandError(f"a case statement inside $(...) at character {start}")
                    assignment = "=" in plain and _ASSIGNMENT.match(plain) is not None
                    append(new(Word, (plain, start, end, False, True, assignment, -1)))
                elif kind == "quoted":
                    start = fast.start(kind)  # type: ignore[union-attr]
                    append(
                        new(Word, (text[start + 1 : end - 1], start, end, False, False, False, -1))
                    )
                pos = end
                continue
            char = text[pos]
            if char == "\n":
                out.append(_Op("\n", pos, pos + 1))
                pos += 1
            elif char == "#":
                newline = text.find("\n", pos)
                pos = n if newline < 0 else newline
            elif char == "\\" and text.startswith("\\\n", pos):
                raise CommandError(f"a line continuation (backslash-newline) at character {pos}")
            elif char in _OPERATOR_START:
                op = next(o for o in _OPERATORS if text.startswith(o, pos))
                if op in ("<<", "<<-"):
                    raise CommandError(f"a here-document at character {pos}")
                if closing and op == "(":
                    parens += 1
                elif closing and op == ")":
                    if parens == 0:
                        return out, pos + 1
                    parens -= 1
                out.append(_Op(op, pos, pos + len(op)))
                pos += len(op)
            else:
                word = self.word(pos, depth)
                if closing and word.plain and word.text == "case":
                    raise CommandError(f"a case statement inside $(...) at character {pos}")
                out.append(word)
                pos = word.end
        if closing:
            raise CommandError("unterminated $( command substitution")
        return out, pos

    def word(self, pos: int, depth: int) -> Word:
        text, n = self.text, self.n
        start, parts, expands, plain, odd_space = pos, [], False, True, -1
        while pos < n:
            char = text[pos]
            if char in " \t\n" or char in _OPERATOR_START:
                break
            match = _PLAIN.match(text, pos)
            if match:
                segment = match.group()
                if _GLOB.search(segment) or (pos == start and segment[0] == "~"):
                    expands = True
                if odd_space < 0:
                    space = _ODD_SPACE.search(segment)
                    odd_space = pos + space.start() if space else -1
                parts.append(segment)
                pos = match.end()
            elif char == "'":
                close = text.find("'", pos + 1)
                if close < 0:
                    raise CommandError(f"unterminated single quote at character {pos}")
                parts.append(text[pos + 1 : close])
                pos, plain = close + 1, False
            elif char == '"':
                pos, quoted_expands = self.double(pos, depth, parts)
                expands, plain = expands or quoted_expands, False
            elif char == "\\":
                if pos + 1 >= n:  # sh keeps it, but anything added after would be escaped
                    raise CommandError(f"a backslash at the very end, at character {pos}")
                elif text[pos + 1] == "\n":
                    raise CommandError(
                        f"a line continuation (backslash-newline) at character {pos}"
                    )
                else:
                    parts.append(text[pos + 1])
                    pos, plain = pos + 2, False
            else:  # $ or `
                end, expansion = self.expansion(pos, depth)
                parts.append(text[pos:end])
                expands = expands or expansion
                pos = end
        assignment = bool(_ASSIGNMENT.match(text, start, pos))
        return Word("".join(parts), start, pos, expands, plain, assignment, odd_space)

    def double(self, pos: int, depth: int, parts: list[str]) -> tuple[int, bool]:
        """A double-quoted part from its opening quote; returns (end, holds an expansion)."""
        text, n = self.text, self.n
        opening, pos, expands = pos, pos + 1, False
        while pos < n:
            char = text[pos]
            if char == '"':
                return pos + 1, expands
            match = _IN_DOUBLE.match(text, pos)
            if match:
                parts.append(match.group())
                pos = match.end()
            elif char == "\\":
                following = text[pos + 1 : pos + 2]
                if following in ("$", "`", '"', "\\"):
                    parts.append(following)
                    pos += 2
                elif following == "\n":
                    pos += 2  # removed, as sh removes it
                else:
                    parts.append("\\")
                    pos += 1
            else:
                end, expansion = self.expansion(pos, depth)
                parts.append(text[pos:end])
                expands = expands or expansion
                pos = end
        raise CommandError(f"unterminated double quote at character {opening}")

    def expansion(self, pos: int, depth: int) -> tuple[int, bool]:
        """From a `$` or a backquote: (end, is an expansion)."""
        text = self.text
        if text[pos] == "`":
            match = _BACKQUOTED.match(text, pos)
            if not match:
                raise CommandError(f"unterminated backquote at character {pos}")
            inner = match.group(1)
            if any(c in inner for c in "'\"`") or "\\\n" in inner:
                raise CommandError(
                    f"quotes or backquotes inside a backquoted command at character {pos} (use $(...))"
                )
            _Lexer(re.sub(r"\\([$`\\])", r"\1", inner)).tokens(0, depth + 1, closing=False)
            return match.end(), True
        following = text[pos + 1 : pos + 2]
        if following == "{":
            match = _BRACED.match(text, pos)
            if not match:
                raise CommandError(
                    f"a ${{...}} expansion holding quotes, $, backquotes or braces at character {pos}"
                )
            return match.end(), True
        if text.startswith("$((", pos):
            match = _ARITHMETIC.match(text, pos)
            if not match:
                raise CommandError(f"an arithmetic expansion this reader cannot follow at {pos}")
            return match.end(), True
        if following == "(":
            _, end = self.tokens(pos + 2, depth + 1, closing=True)
            return end, True
        match = _PARAMETER.match(text, pos)
        if match:
            return match.end(), True
        return pos + 1, False  # a lone `$` is a literal dollar sign


# The fast path: a script made only of blanks, words of plain characters, `$name` and simple
# `${...}`, whole single-quoted words and the operators `&& || ;; ; & |` and newlines (what the
# worker writes) is read by one regex pass. The words come out exactly as the lexer above reads
# them; anything else (other quotes, backslashes, `$(`, `#`, `~`, redirections, parentheses,
# Unicode spaces...) leaves a gap the pattern cannot match, and the whole script goes to the
# lexer above.
_FAST_TOKEN = re.compile(
    r"([ \t]*+)(?:"
    r"((?:[^\s'\"\\$`;&|()<>#~][^\s'\"\\$`;&|()<>]*+|\$\{[^}'\"\\$`{]*+\}|\$(?:[A-Za-z_][A-Za-z0-9_]*+|[0-9@*#?$!-]))"
    r"(?:[^\s'\"\\$`;&|()<>]++|\$\{[^}'\"\\$`{]*+\}|\$(?:[A-Za-z_][A-Za-z0-9_]*+|[0-9@*#?$!-]))*+)"
    r"(?=[ \t\n;&|]|\Z)"  # a word: plain characters, $name, ${...}
    r"|'([^']*+)'(?=[ \t\n;&|]|\Z)"  # a single-quoted word
    r"|(&&|\|\||;;|[;&|\n])"  # an operator
    r"|\Z"  # trailing blanks
    r"|([\s\S])"  # anything else: stop there (every position matches, so none is searched twice)
    r")"
)


def _fast_tokens(text: str) -> list[Word | _Op] | None:
    """The tokens of a script of the worker's plain shapes, or None (read it with `_Lexer`)."""
    out: list[Word | _Op] = []
    append, new, pos = out.append, tuple.__new__, 0
    assignment = _ASSIGNMENT.match
    for blanks, word, quoted, op, other in _FAST_TOKEN.findall(text):
        pos += len(blanks)
        if word:
            end = pos + len(word)
            expands = "$" in word or "*" in word or "?" in word or "[" in word
            is_assignment = "=" in word and assignment(word) is not None
            append(new(Word, (word, pos, end, expands, True, is_assignment, -1)))
            pos = end
        elif op:
            end = pos + len(op)
            append(new(_Op, (op, pos, end)))
            pos = end
        elif other:
            return None
        elif pos < len(text):  # a quoted word (maybe empty: '')
            end = pos + len(quoted) + 2
            append(new(Word, (quoted, pos, end, False, False, False, -1)))
            pos = end
    return out


# ---------------------------------------------------------------------------------------------
# commands


def _commands(tokens: list[Word | _Op]) -> tuple[list[Command], list[str]]:
    """Simple commands in order, and what stops us from proving where an edit lands."""
    commands: list[Command] = []
    problems: list[str] = []
    words: list[Word] = []
    start = end = -1
    between = ""  # the operator since the last command
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        if type(token) is Word:
            if start < 0 and token.plain and token.text in _RESERVED:
                problems.append(f"a compound command ({token.text!r} at character {token.start})")
            words.append(token)
            start = token.start if start < 0 else start
            end = token.end
            continue
        if token.text in _REDIRECTIONS:
            previous = words[-1] if words else None
            if (
                previous is not None
                and previous.end == token.start
                and previous.plain
                and _DIGITS.fullmatch(previous.text)
            ):
                words.pop()  # an io number (`2>&1`) belongs to the redirection
            target = tokens[index] if index < len(tokens) else None
            if not isinstance(target, Word):
                problems.append(f"a redirection without a target at character {token.start}")
                continue
            index += 1
            start = token.start if start < 0 else start
            end = target.end
            continue
        op = token.text
        if op in ("(", ")", ";;"):
            problems.append(f"{op!r} at character {token.start} (subshell, function or case)")
        if start >= 0:
            commands.append(Command(tuple(words), start, end, between, op))
            between = op
        elif op == "\n":
            if between not in ("&&", "||", "|"):  # a line break may follow these
                between = op
        elif op not in ("(", ")"):
            problems.append(f"syntax error: {op!r} at character {token.start}")
        words, start, end = [], -1, -1
    if start >= 0:
        commands.append(Command(tuple(words), start, end, between, ""))
    elif between in ("&&", "||", "|"):
        problems.append(f"syntax error: the script ends after {between!r}")
    return commands, problems


def _name_index(command: Command) -> int:
    """Index of the command name: the first word that is not an assignment."""
    for index, word in enumerate(command.words):
        if not word.assignment:
            return index
    return len(command.words)


_INSTANCE_PROGRAM = re.compile(r"java|python[0-9.]*")
_OPAQUE = {"eval", ".", "source", "alias", "unalias", "command", "exec"}


@dataclass(frozen=True)
class Script:
    """A parsed `sh -c` script: where the instance is and whether it can be edited."""

    text: str
    commands: tuple[Command, ...]
    instance: Command | None  # the command whose flags we read
    program: int  # index in instance.words of the program (flags come after it)
    problem: str | None  # why no edit can be proven to land on the instance's argv

    def words(self) -> list[Word]:
        return [w for c in self.commands for w in c.words]

    def argv(self) -> tuple[Word, ...]:
        """The instance's arguments after the program."""
        if self.instance is None:
            return ()
        return self.instance.words[self.program + 1 :]

    @cached_property
    def _positions(self) -> dict[str, list[int]]:
        """Where each word occurs in `argv()` (built once: flags are looked up many times)."""
        positions: dict[str, list[int]] = {}
        for index, word in enumerate(self.argv()):
            positions.setdefault(word.text, []).append(index)
        return positions

    def positions(self, flag: str) -> list[int]:
        """The indices in `argv()` of the words that are exactly `flag`."""
        return self._positions.get(flag, [])

    def flag_word(self, flag: str) -> Word | None:
        """The word after the last `flag` in the instance's arguments."""
        args = self.argv()
        for index in reversed(self.positions(flag)):
            if index + 1 < len(args):
                return args[index + 1]
        return None

    def get(self, flag: str) -> str | None:
        word = self.flag_word(flag)
        return None if word is None else word.text

    def why_not(self, flag: str) -> str | None:
        """Why setting `flag` could not be shown to land on the instance's argv, or None."""
        if self.problem:
            return self.problem
        args = self.argv()
        positions = self.positions(flag)
        if len(positions) > 1:
            return f"{flag} appears {len(positions)} times on the instance's command"
        if positions and positions[0] == len(args) - 1:
            return f"{flag} is the instance's last word, with no value"
        if positions and args[positions[0] + 1].expands:
            return f"the value of {flag} holds a shell expansion ($, backquote, glob or ~) only known at run time"
        name = flag.lstrip("-")
        for index, key, double, word in self._spellings:
            if index in positions or (index - 1) in positions:
                continue
            if key == name or (double and len(key) > 1 and name.startswith(key)):
                return f"{flag} is also given as {_show(word.text.split('=', 1)[0])} on the instance's command"
        return None

    @cached_property
    def _spellings(self) -> list[tuple[int, str, bool, Word]]:
        """(index, name without dashes or `=value`, starts with `--`, word) of each argument
        that starts with `-` (built once: every flag we set is checked against them)."""
        return [
            (index, word.text.lstrip("-").split("=", 1)[0], word.text.startswith("--"), word)
            for index, word in enumerate(self.argv())
            if word.text.startswith("-")
        ]


def parse(script: str, *, max_length: int = DEFAULT_MAX_LENGTH) -> Script:
    """Read `script` as sh does; raises CommandError if it cannot be read (see module doc)."""
    if len(script) > max_length:
        raise CommandError(
            f"the command line is {len(script)} characters, above the limit of {max_length} ({LIMIT_KEY})"
        )
    if "\0" in script:
        raise CommandError(f"a NUL character at character {script.index(chr(0))}")
    tokens = _fast_tokens(script)
    spaced = tokens is None
    if tokens is None:
        tokens, _ = _Lexer(script).tokens(0, 0, closing=False)
    commands, problems = _commands(tokens)
    execs = []
    for command in commands:
        at = _name_index(command)
        if at + 1 < len(command.words) and command.words[at].text == "exec":
            execs.append((command, at + 1))
    instance, program = execs[-1] if execs else (None, 0)
    if instance is None:
        named = [c for c in commands if _name_index(c) < len(c.words)]
        if named:
            instance, program = named[-1], _name_index(named[-1])
    problem = problems[0] if problems else _shape_problem(commands, execs, spaced)
    return Script(script, tuple(commands), instance, program, problem)


def _show(text: str) -> str:
    """A word for a message: quoted, and cut short (messages name things, they do not copy)."""
    return repr(text if len(text) <= 40 else text[:39] + "…")


def _shape_problem(
    commands: list[Command], execs: list[tuple[Command, int]], spaced: bool = True
) -> str | None:
    """Why an edit cannot be shown to land on the instance's argv; `spaced`: whether any word
    may hold an unquoted odd space (never on the fast path)."""
    if not execs:
        return "the script has no `exec <program>` command to carry the flags"
    if len(execs) > 1:
        second = execs[-2][0].words[execs[-2][1]]
        return f"a second exec (of {_show(second.text)} at character {second.start})"
    instance, program = execs[0]
    for command in commands:
        at = _name_index(command)
        if at >= len(command.words):
            continue
        name = command.words[at]
        if name.expands:
            return f"a command name only known at run time (at character {name.start})"
        if name.text.startswith("-"):
            return f"a command named {_show(name.text)} at character {name.start} (a flag on a line of its own?)"
        if command is instance or (name.text == "exec" and at + 1 == len(command.words)):
            continue  # `exec 2>&1` only redirects
        if name.text in _OPAQUE:
            return f"`{name.text}` at character {name.start} runs or renames commands we cannot see"
    later = [c for c in commands if c.start > instance.start and _name_index(c) < len(c.words)]
    if later:
        return f"a command after the instance's exec (at character {later[0].start})"
    if instance.before == "|" or instance.after in ("|", "&"):
        return "the instance runs in a pipeline or in the background"
    odd_space = (
        next((w.odd_space for w in instance.words if w.odd_space >= 0), -1) if spaced else -1
    )
    if odd_space >= 0:
        return (
            f"a space character sh does not read as a blank (such as NBSP) at character {odd_space}"
        )
    word = instance.words[program]
    if word.expands or word.text.startswith("-"):
        return f"the program at character {word.start} is only known at run time"
    if not (
        _INSTANCE_PROGRAM.fullmatch(word.text.rsplit("/", 1)[-1])
        or any(w.text == "-instance-conf" for w in instance.words[program + 1 :])  # Go
    ):
        return f"the exec'd program {_show(word.text)} is not a Pulsar instance (java, python3, or a Go binary with -instance-conf)"
    return None


# ---------------------------------------------------------------------------------------------
# quoting and JSON

_SAFE = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")


def quote(value: str) -> str:
    """Quote a word for `sh` only when it needs it (single quotes, as the worker does)."""
    if _SAFE.fullmatch(value) and value not in _RESERVED and value != "exec":
        return value
    return "'" + value.replace("'", "'\"'\"'") + "'"


def _quote_before(value: str, text: str, at: int) -> str:
    """`quote(value)` for a word ending at `at`: digits right before `<` or `>` would become a
    file descriptor number (`2>x`), so they are quoted there."""
    quoted = quote(value)
    if quoted.isdigit() and text[at : at + 1] in ("<", ">"):
        return f"'{value}'"
    return quoted


def _json_object(text: str, flag: str, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """Strict JSON within `limits` (depth, digits, finite numbers), or CommandError."""
    try:
        value = bounded.loads(text, limits)
    except bounded.JsonLimitError as exc:
        joint = " is" if str(exc).startswith("not valid JSON") else ":"
        raise CommandError(f"{flag}{joint} {exc}") from None
    if not isinstance(value, dict):
        raise CommandError(f"{flag} must be a JSON object, got {type(value).__name__}")
    return value


_JSON_SPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


def _members(text: str) -> tuple[list[tuple[str, int, int]], int]:
    """(key, value start, value end) of each member of a JSON object, and where `}` is.

    Spans, not values: the edit replaces only our keys' values and keeps every other byte
    (a number like 1e999 stays 1e999; Python would print it as Infinity, which is not JSON).
    """
    members: list[tuple[str, int, int]] = []
    pos = _JSON_SPACE.match(text, 0).end()  # type: ignore[union-attr]
    pos += 1  # `{`: the caller has parsed the text as an object already
    pos = _JSON_SPACE.match(text, pos).end()  # type: ignore[union-attr]
    if text[pos] == "}":
        return members, pos
    while True:
        key, pos = json.decoder.scanstring(text, pos + 1)  # type: ignore[attr-defined]
        pos = _JSON_SPACE.match(text, pos).end() + 1  # type: ignore[union-attr]  # `:`
        start = _JSON_SPACE.match(text, pos).end()  # type: ignore[union-attr]
        _, end = _DECODER.raw_decode(text, start)
        members.append((key, start, end))
        pos = _JSON_SPACE.match(text, end).end()  # type: ignore[union-attr]
        if text[pos] == "}":
            return members, pos
        pos = _JSON_SPACE.match(text, pos + 1).end()  # type: ignore[union-attr]  # after `,`


def set_json_members(
    text: str, flag: str, values: Mapping[str, str], limits: Limits = DEFAULT_LIMITS
) -> str:
    """`text` (a JSON object) with `values` set: our keys' values replaced or appended, every
    other byte kept."""
    current = _json_object(text, flag, limits)
    wanted = {k: v for k, v in values.items() if current.get(k) != v or k not in current}
    if not wanted:
        return text
    try:
        members, close = _members(text)
    except (ValueError, RecursionError):
        raise CommandError(f"{flag} is JSON this reader cannot edit") from None
    pieces, last = [], 0
    for key, start, end in members:
        if key in wanted:
            pieces += [text[last:start], json.dumps(wanted[key])]
            last = end
    missing = [k for k in wanted if k not in current]
    added = ",".join(f"{json.dumps(k)}:{json.dumps(wanted[k])}" for k in missing)
    pieces += [text[last:close], ("," if members and added else "") + added, text[close:]]
    return "".join(pieces)


# ---------------------------------------------------------------------------------------------
# editing


@dataclass
class Edit:
    """Edits of one parsed script, made in memory and rendered once.

    `set` records a refusal instead of editing when the flag cannot be shown to land on the
    instance's argv; `render` then returns the script untouched.
    """

    script: Script
    values: dict[str, str] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    limits: Limits = DEFAULT_LIMITS  # for the JSON we read (Go's -instance-conf)
    download: dict[str, tuple[Word, str]] = field(default_factory=dict)  # flag -> (word, value)
    _download_at: dict[str, int] = field(default_factory=dict, repr=False)  # flag -> its index

    def get(self, flag: str) -> str | None:
        return self.values[flag] if flag in self.values else self.script.get(flag)

    def set(self, flag: str, value: str) -> None:
        if "\0" in value:  # no argv can hold it
            self.refused.append(f"cannot set {flag}: the value holds a NUL character")
            return
        if flag not in self.values:
            word = self.script.flag_word(flag)
            if word is not None and word.text == value and not word.expands:
                return
        elif self.values[flag] == value:
            return
        reason = self.script.why_not(flag)
        at = self.script.positions(flag)
        for other in self.values:
            other_at = self.script.positions(other)
            if not reason and at and other_at and other != flag and abs(other_at[0] - at[0]) == 1:
                reason = f"{flag} and {other} on the instance's command are each other's value"
        if reason:
            message = f"cannot set {flag}: {reason}"
            if message not in self.refused:
                self.refused.append(message)
            return
        self.values[flag] = value

    def get_json(self, flag: str) -> dict[str, Any] | None:
        raw = self.get(flag)
        return None if raw is None else _json_object(raw, flag, self.limits)

    def set_json(self, flag: str, members: Mapping[str, str]) -> None:
        """Set string members of the JSON object after `flag` (Go's `-instance-conf`)."""
        raw = self.get(flag)
        if raw is not None:
            self.set(flag, set_json_members(raw, flag, members, self.limits))

    def set_download(self, flag: str, value: str) -> None:
        """Give `flag` of the download step (the script's first command, before the instance:
        `pulsar-admin ... functions download`) the value `value`, only if the flag is there."""
        script = self.script
        first = script.commands[0] if script.commands else None
        if first is None or first is script.instance or script.instance is None:
            return
        args = first.words[_name_index(first) + 1 :]
        positions = [i for i, w in enumerate(args) if w.text == flag]
        if not positions or (
            len(positions) == 1
            and positions[0] + 1 < len(args)
            and args[positions[0] + 1].text == value
            and not args[positions[0] + 1].expands
        ):
            return
        reason = script.problem
        if reason is None and len(positions) > 1:
            reason = f"{flag} appears {len(positions)} times on the download command"
        elif reason is None and positions[0] == len(args) - 1:
            reason = f"{flag} is the download command's last word, with no value"
        elif reason is None and args[positions[0] + 1].expands:
            reason = f"the value of {flag} on the download command holds a shell expansion"
        elif reason is None and "\0" in value:
            reason = "the value holds a NUL character"
        at = positions[0]
        for other, other_at in self._download_at.items():
            if reason is None and abs(other_at - at) == 1:  # `--a --b x`: one is the other's value
                reason = f"{flag} and {other} on the download command are each other's value"
        if reason:
            message = f"cannot set {flag} (download): {reason}"
            if message not in self.refused:
                self.refused.append(message)
            return
        self.download[flag] = (args[at + 1], value)
        self._download_at[flag] = at

    @property
    def changed(self) -> bool:
        return bool(self.values or self.download) and not self.refused

    def render(self) -> str:
        """The script with every recorded edit, or unchanged if any edit was refused."""
        script = self.script
        if not self.changed or script.instance is None:
            return script.text
        text = script.text
        replacements: list[tuple[int, int, str]] = []
        appended = []
        for flag, value in self.values.items():
            word = script.flag_word(flag)
            if word is None:
                appended.append(f" {flag} {quote(value)}")
            else:
                replacements.append((word.start, word.end, _quote_before(value, text, word.end)))
        if appended:
            at = script.instance.end
            replacements.append((at, at, "".join(appended)))
        for word, value in self.download.values():
            replacements.append((word.start, word.end, _quote_before(value, text, word.end)))
        replacements.sort()
        pieces, last = [], 0
        for start, end, new in replacements:
            pieces += [text[last:start], new]
            last = end
        pieces.append(text[last:])
        return "".join(pieces)


# ---------------------------------------------------------------------------------------------
# one-shot helpers (tests, tools): each parses the script once


def tokenize(script: str) -> list[Word]:
    """Every word of every command, as sh splits them (redirections and comments left out)."""
    return parse(script).words()


def get_flag(script: str, flag: str) -> str | None:
    return parse(script).get(flag)


def get_json_flag(script: str, flag: str) -> dict[str, Any] | None:
    """The JSON object after `flag` (`--function_details`, `-instance-conf`), or None if absent.

    Raises CommandError saying what is wrong when the flag is there but its JSON is not.
    """
    return read_json_flag(parse(script), flag)


def read_json_flag(script: Script, flag: str) -> dict[str, Any] | None:
    count = len(script.positions(flag))
    if count > 1:
        raise CommandError(f"{flag} appears {count} times on the instance's command")
    raw = script.get(flag)
    return None if raw is None else _json_object(raw, flag)


class Uneditable(CommandError):
    """set_flag could not show that the flag lands on the instance's argv."""


def set_flag(script: str, flag: str, value: str) -> str:
    """Give `flag` the value `value` (replaced where present, else added to the instance)."""
    edit = Edit(parse(script))
    edit.set(flag, value)
    if edit.refused:
        raise Uneditable(edit.refused[0])
    return edit.render()


def set_json_flag(script: str, flag: str, members: Mapping[str, str]) -> str:
    edit = Edit(parse(script))
    edit.set_json(flag, members)
    if edit.refused:
        raise Uneditable(edit.refused[0])
    return edit.render()
