"""structlog set-up, done once at start: JSON lines when not on a terminal.

A log line that cannot be written (the log's disk is full, journald's pipe is
gone) is dropped, never raised: logging must not fail a delivery.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog


def configure_logging(
    level: str = "info", json: bool | None = None, stream: TextIO | None = None
) -> None:
    """``stream`` defaults to stderr: commands keep stdout for their own output
    (JSON listings, ingest results); the daemon logs to stdout for journald."""
    out = stream or sys.stderr
    if json is None:
        json = not out.isatty()
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=SafePrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )


class SafePrintLogger(structlog.PrintLogger):
    """structlog's PrintLogger, except that a failed write is counted, not raised."""

    dropped = 0  # lines lost since start, across loggers (a hint for an operator)

    def msg(self, message: str) -> None:
        try:
            super().msg(message)
        except (OSError, ValueError):  # ENOSPC, EIO, EPIPE; a closed stream
            SafePrintLogger.dropped += 1

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


class SafePrintLoggerFactory:
    def __init__(self, file: TextIO) -> None:
        self._file = file

    def __call__(self, *args: object) -> SafePrintLogger:
        return SafePrintLogger(self._file)
