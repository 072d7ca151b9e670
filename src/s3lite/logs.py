"""Structured logs for every s3lite process: one line per event, as text or JSON.

Code logs an event with :func:`event` (a message plus named fields); the formatter
set up by :func:`configure` (``--log-format text|json``, ``--log-level``) writes it as

    text: ``2026-11-27T14:46:54.676Z INFO s3lite.gateway.app: GET /b/k 200 request_id=...``
    json: ``{"time": "2026-11-27T14:46:54.676Z", "level": "info", "logger": ...,
            "message": "GET /b/k 200", "request_id": ..., ...}``

Fields are values the code chose to log (ids, counts, names, reasons), never a
request's headers, query string or body: a secret cannot reach a log line through
them. A traceback, when a bug is logged, is one field (``exception``) of one line.

What the servers log: one line per request (the gateway's ``request`` fields: time,
level, request_id, access_key, operation, method, path, status, bytes_in, bytes_out,
duration_ms, outcome), one per join step and progress milestone
(s3lite.progress), one per node state change (s3lite.orchestrator.orchestrator), and
one per heal action (:func:`heal_action`, for the healer).

uvicorn's own loggers go through the same handler. Its "ASGI callable returned
without completing response." is dropped: s3lite returns that way on purpose to
drop a connection whose response broke off, and has logged why already. asyncio's
"Task exception was never retrieved" reports become one warning line (the error,
no stack) instead of a traceback per dropped connection.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import sys
from collections.abc import Mapping
from typing import IO, Any, Final

FORMATS: Final = ("text", "json")
LEVELS: Final = ("debug", "info", "warning", "error")
_FIELDS = "s3lite_fields"

HEAL_LOGGER: Final = "s3lite.healer"


def event(logger: logging.Logger, level: int, message: str, **fields: Any) -> None:
    """Log ``message`` with named ``fields`` (rendered by the configured format)."""
    if logger.isEnabledFor(level):
        logger.log(level, message, extra={_FIELDS: fields}, stacklevel=2)


def fields_extra(**fields: Any) -> dict[str, Any]:
    """``extra=`` for a plain logging call (``log.exception``) that carries fields."""
    return {_FIELDS: fields}


def heal_action(action: str, *, outcome: str = "done", **fields: Any) -> None:
    """One line per healer action (rebuild, reprotect, quarantine, scrub pass, ...):
    the healer calls this, with the segment, part, node and bytes as ``fields``."""
    level = logging.INFO if outcome == "done" else logging.WARNING
    event(
        logging.getLogger(HEAL_LOGGER),
        level,
        f"heal {action} {outcome}",
        action=action,
        outcome=outcome,
        **fields,
    )


def fields_of(record: logging.LogRecord) -> Mapping[str, Any]:
    fields = getattr(record, _FIELDS, None)
    return fields if isinstance(fields, Mapping) else {}


def _timestamp(record: logging.LogRecord) -> str:
    when = dt.datetime.fromtimestamp(record.created, dt.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(record.msecs):03d}Z"


def _text_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if not text or any(c.isspace() or c in '"=' for c in text):
        return json.dumps(text)
    return text


class TextFormatter(logging.Formatter):
    """``TIME LEVEL logger: message key=value ...`` (values with spaces quoted)."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record)} {record.levelname} {record.name}: {record.getMessage()}"
        extra = " ".join(f"{k}={_text_value(v)}" for k, v in fields_of(record).items())
        if extra:
            line = f"{line} {extra}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then the fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in fields_of(record).items():
            entry.setdefault(key, value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class _DropUnfinishedResponse(logging.Filter):
    """Drops uvicorn's line for a response s3lite broke off on purpose (see module doc)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("ASGI callable returned without completing")


def drop_unfinished_response_lines() -> None:
    """Filter uvicorn's "returned without completing response" line (see module doc)."""
    uvicorn_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DropUnfinishedResponse) for f in uvicorn_log.filters):
        uvicorn_log.addFilter(_DropUnfinishedResponse())


def configure(
    log_format: str = "text", level: str = "info", stream: IO[str] | None = None
) -> logging.Handler:
    """Send every log record of this process to ``stream`` (stderr) in ``log_format``.

    Raises ValueError for a format or level that does not exist. Returns the handler
    (tests remove it again).
    """
    if log_format not in FORMATS:
        raise ValueError(f"--log-format must be one of {', '.join(FORMATS)}, got {log_format!r}")
    if level.lower() not in LEVELS:
        raise ValueError(f"--log-level must be one of {', '.join(LEVELS)}, got {level!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # uvicorn's per-request noise stays off unless debugging.
    logging.getLogger("uvicorn.error").setLevel("DEBUG" if level == "debug" else "WARNING")
    return handler


def quiet_loop_errors(loop: asyncio.AbstractEventLoop) -> None:
    """Log what asyncio reports about tasks nobody awaited (a library's write task
    on a connection a node dropped) as one warning line, not a traceback."""
    log = logging.getLogger("s3lite.asyncio")

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, Exception) and not isinstance(exc, AssertionError | TypeError):
            event(
                log,
                logging.WARNING,
                context.get("message", "asyncio error"),
                error=f"{type(exc).__name__}: {exc}",
            )
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handle)
