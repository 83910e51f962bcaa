"""Shell: the server's log lines: one JSON object each, metadata only.

Exceptions appear as their type only, never a traceback or message, because either may quote
the object under review.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping
from typing import Any, Final, Protocol

# The HTTP layer's loggers: what they report is a peer's malformed request or lost connection.
HTTP_LOGGERS: Final = ("aiohttp.server", "aiohttp.web", "asyncio")
THROTTLE_SECONDS: Final = 10.0


class JsonFormatter(logging.Formatter):
    """One JSON object per line. Exceptions appear as their type only: a traceback or an
    exception message may quote object contents."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            entry.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            entry.setdefault("error", record.exc_info[0].__name__)
        return json.dumps(entry, default=str)


def setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler])


class _LabelledCounter(Protocol):
    def labels(self, *values: str) -> Any: ...


class Throttle(logging.Filter):
    """Lets one record through per `interval` seconds, at warning level, without traceback,
    saying how many were held back; every record is counted in `counter` (by logger).

    A peer can make the HTTP layer log at will (one malformed request, one line at error):
    the counter, not the log, is where their number shows.
    """

    def __init__(self, counter: _LabelledCounter, interval: float = THROTTLE_SECONDS) -> None:
        super().__init__()
        self.counter = counter
        self.interval = interval
        self._next = 0.0
        self._held = 0

    def filter(self, record: logging.LogRecord) -> bool:
        self.counter.labels(record.name).inc()
        now = time.monotonic()
        if now < self._next:
            self._held += 1
            return False
        self._next = now + self.interval
        fields = dict(getattr(record, "fields", None) or {})
        if record.exc_info and record.exc_info[0] is not None:
            fields["error"] = record.exc_info[0].__name__
        fields["held_back"] = self._held
        self._held = 0
        record.exc_info = record.exc_text = record.stack_info = None
        if record.levelno > logging.WARNING:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.fields = fields
        return True


def throttle_http_errors(counter: _LabelledCounter) -> None:
    """Install a `Throttle` on the HTTP layer's loggers (replacing an earlier one)."""
    throttle = Throttle(counter)
    for name in HTTP_LOGGERS:
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, Throttle)]:
            logger.removeFilter(old)
        logger.addFilter(throttle)
