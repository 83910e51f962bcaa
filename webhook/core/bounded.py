"""Pure: JSON read and walked with bounded work: nesting depth, digits per number, finite
numbers only. Errors are one line naming the limit, never a RecursionError or the 4,300-digit
ValueError of Python's int conversion."""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from webhook.core.errors import UserError


@dataclass(frozen=True)
class Limits:
    """Bounds on the work one review may cause (the `webhook.limits` config section); input
    beyond them is refused, naming the limit."""

    max_json_depth: int = 64
    max_number_digits: int = 64
    max_secrets: int = 1000
    max_command_length: int = 64 * 1024  # characters of the instance's `sh -c` script


DEFAULT_LIMITS = Limits()


class JsonLimitError(UserError, ValueError):
    """The text is not JSON we read, or goes beyond a limit; the message says which."""


@functools.lru_cache(maxsize=16)
def _number_parsers(limits: Limits) -> tuple[Any, Any, Any]:
    """The number hooks for `limits` (made once per configured limits, not per document)."""
    digits = limits.max_number_digits

    def parse_int(text: str) -> int:
        # checked before int() so a 10,000-digit literal costs nothing
        if len(text.lstrip("-")) > digits:
            raise JsonLimitError(
                f"a number has more than {digits} digits (webhook.limits.maxNumberDigits)"
            )
        return int(text)

    def parse_float(text: str) -> float:
        if len(text) > digits + 8:
            raise JsonLimitError(
                f"a number has more than {digits} digits (webhook.limits.maxNumberDigits)"
            )
        value = float(text)
        if not math.isfinite(value):
            raise JsonLimitError(f"number {text[:20]} is out of range")
        return value

    def parse_constant(name: str) -> Any:
        raise JsonLimitError(f"{name} is not a JSON number")

    return parse_int, parse_float, parse_constant


@functools.lru_cache(maxsize=16)
def _decoder(limits: Limits) -> json.JSONDecoder:
    """A decoder with the number hooks for `limits` (made once, not per document)."""
    parse_int, parse_float, parse_constant = _number_parsers(limits)
    return json.JSONDecoder(
        parse_int=parse_int, parse_float=parse_float, parse_constant=parse_constant
    )


def loads(text: str | bytes, limits: Limits = DEFAULT_LIMITS) -> Any:
    """Strict JSON within `limits`; JsonLimitError naming the problem otherwise."""
    try:
        if not isinstance(text, str):
            text = text.decode(json.detect_encoding(text), "surrogatepass")
        elif text.startswith("\ufeff"):  # as json.loads refuses it
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        value = _decoder(limits).decode(text)
    except json.JSONDecodeError as exc:
        raise JsonLimitError(f"not valid JSON: {exc.msg} at character {exc.pos}") from None
    except RecursionError:
        raise JsonLimitError(_depth_message(limits)) from None
    except UnicodeDecodeError:
        raise JsonLimitError("not UTF-8 text") from None
    # the hooks above bounded every number; only the nesting is left to check
    if _too_deep(value, limits.max_json_depth):
        raise JsonLimitError(_depth_message(limits))
    return value


def _too_deep(value: Any, max_depth: int) -> bool:
    """Whether a parsed JSON document nests containers deeper than `max_depth` (iterative;
    counted as `problem_in` counts)."""
    stack: list[tuple[Any, int]] = [([value], 0)]
    while stack:
        node, depth = stack.pop()
        for child in node.values() if type(node) is dict else node:
            if (type(child) is dict or type(child) is list) and child:
                if depth >= max_depth:
                    return True
                stack.append((child, depth + 1))
    return False


def _depth_message(limits: Limits) -> str:
    return f"nested deeper than {limits.max_json_depth} levels (webhook.limits.maxJsonDepth)"


def problem_in(
    value: Any, limits: Limits = DEFAULT_LIMITS, *, max_nodes: int | None = None
) -> str | None:
    """Why an already-parsed document goes beyond `limits` (depth, number size, NaN or
    infinity), or None. Iterative, so no depth can exhaust the stack; with `max_nodes`, shared
    references (YAML aliases) cannot make the walk unbounded either."""
    bits = int(limits.max_number_digits * 3.33) + 4
    max_depth = limits.max_json_depth
    # containers only on the stack: scalars are checked as their parent is visited
    stack: list[tuple[Any, int]] = [([value], 0)]
    seen = 0
    while stack:
        node, depth = stack.pop()
        kind = type(node)
        if kind is dict:
            children = node.values()
        elif kind is list:
            children = node
        else:
            children = node.values() if isinstance(node, Mapping) else node
        seen += len(children)
        if max_nodes is not None and seen > max_nodes:
            return f"more than {max_nodes} values"
        for child in children:
            kind = type(child)
            if kind is str or kind is bool or child is None:
                continue
            if kind is dict or kind is list or isinstance(child, Mapping | list | tuple):
                if child:
                    if depth >= max_depth:
                        return _depth_message(limits)
                    stack.append((child, depth + 1))
            elif kind is int or (isinstance(child, int) and not isinstance(child, bool)):
                if child.bit_length() > bits:
                    return (
                        f"a number has more than {limits.max_number_digits} digits "
                        "(webhook.limits.maxNumberDigits)"
                    )
            elif isinstance(child, float) and not math.isfinite(child):
                return f"{child} is not a JSON number"
    return None
