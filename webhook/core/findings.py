"""Pure: what a check found (rule id, field path, what to do). Actions are attached later by
policy, from the config."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Finding:
    rule: str
    path: str
    message: str
