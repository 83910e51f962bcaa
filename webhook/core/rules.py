"""Pure: the rule registry, and what a check found.

Each rule is declared once, by `declare(...)` at the top of the module whose check reports it,
with what it checks (one line: the README's rule table shows it) and its default action. A
check reports a `Finding` of a declared `Rule`, never a bare id, so no check can report a rule
the registry does not know. The config's `policy.rules`, the README's rule table and the
metrics all read `declared()`.

Declaring registers the rule here; `webhook/core/__init__.py` imports every module that
declares rules, so the registry is complete before anything can read it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Action = Literal["deny", "warn", "audit", "off"]
ACTIONS: tuple[Action, ...] = ("deny", "warn", "audit", "off")

_ID = re.compile(r"[a-z]+/[a-z]+(-[a-z]+)*")


@dataclass(frozen=True)
class Rule:
    """A validation rule: its id, what it checks (one line), and its action when the config
    sets none (None: the global `policy.enforcement`)."""

    id: str
    checks: str
    default: Action | None = None


@dataclass(frozen=True)
class Finding:
    """What a check found: the rule, the field path and the problem. The action is attached
    later, by the policy, from the config."""

    rule: Rule
    path: str
    message: str


_DECLARED: dict[str, Rule] = {}


def declare(rule_id: str, checks: str, *, default: Action | None = None) -> Rule:
    """Declare a rule (once, beside its check) and register it."""
    if not _ID.fullmatch(rule_id):
        raise ValueError(f"rule id {rule_id!r} is not of the form area/what-it-checks")
    if rule_id in _DECLARED:
        raise ValueError(f"rule {rule_id} is declared twice")
    if not checks or "\n" in checks:
        raise ValueError(f"rule {rule_id}: what it checks must be one line")
    rule = Rule(rule_id, checks, default)
    _DECLARED[rule_id] = rule
    return rule


def declared() -> tuple[Rule, ...]:
    """Every declared rule, by id."""
    return tuple(sorted(_DECLARED.values(), key=lambda rule: rule.id))


def find(rule_id: str) -> Rule | None:
    """The declared rule with this id, or None."""
    return _DECLARED.get(rule_id)
