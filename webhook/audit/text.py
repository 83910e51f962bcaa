"""Shell: how ``pf-webhook audit`` words what it reports.

``AuditError`` is the audit's one failure: one line, for stderr and exit code 2. ``show`` puts
an untrusted value (a claim, a key id, a label) on a terminal with its control characters
escaped, so a token or a workload cannot rewrite the report it appears in.
"""

from __future__ import annotations

import json
import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class AuditError(Exception):
    """The audit could not run (unreadable token, key source unreachable...); one line, its
    control characters escaped (it may quote a URL or reason a network peer chose)."""

    def __init__(self, message: str) -> None:
        super().__init__(show(" ".join(str(message).split())))


def show(value: object) -> str:
    """A claim value for a terminal: control characters escaped."""
    text = value if isinstance(value, str) else json.dumps(value)
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
