"""Polling with a deadline, shared by the tests that wait for a cluster or a process to settle:
`wait_for` in plain code, `until` in a coroutine (its check may itself be a coroutine)."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

INTERVAL = 0.02


def wait_for(check: Callable[[], bool], seconds: float, what: str) -> None:
    """Return once `check()` is true; fail the test after `seconds` naming `what`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {seconds}s waiting for {what}")


async def until(
    check: Callable[[], bool | Awaitable[bool]], seconds: float = 15.0, what: str = "a condition"
) -> None:
    """Return once `check()` (or what it awaits to) is true; fail the test after `seconds`
    naming `what`. The event loop keeps running between checks."""
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {seconds}s waiting for {what}")
        await asyncio.sleep(INTERVAL)
