"""Polling with a deadline, shared by the tests that wait for a cluster or a process to settle."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(check: Callable[[], bool], seconds: float, what: str) -> None:
    """Return once `check()` is true; fail the test after `seconds` naming `what`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {seconds}s waiting for {what}")
