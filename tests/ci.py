"""Whether the tests run under CI, where a missing tool fails the tests instead of skipping them."""

from __future__ import annotations

import os


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1"}
