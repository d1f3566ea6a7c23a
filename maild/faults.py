"""Tell resource faults from bugs (SPEC §2: no resource fault refuses or loses a mail).

A full disk, an I/O error, a locked or full database and a lost database
connection are nobody's fault in the message: the sender is asked to try again
(LMTP/SMTP 451, ``maild ingest`` exit 75, the IMAP message left unflagged),
``/healthz`` says what ran out, one log line says it without a traceback, and
the next message that gets through clears it. Everything else stays a bug of
ours, shunted to the quarantine with its traceback.
"""

from __future__ import annotations

import errno
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import peewee as pw

DISK_FULL = "disk_full"
IO_ERROR = "io_error"
READ_ONLY = "read_only"
DATABASE_FULL = "database_full"
DATABASE_LOCKED = "database_locked"
DATABASE_UNAVAILABLE = "database_unavailable"

# What peewee raises for a database that cannot do what it was asked. InterfaceError
# is not a DatabaseError: psycopg2 raises it on a connection the server dropped.
DATABASE_ERRORS: tuple[type[BaseException], ...] = (pw.DatabaseError, pw.InterfaceError)

_ERRNO_REASONS = {
    errno.ENOSPC: DISK_FULL,
    errno.EDQUOT: DISK_FULL,
    errno.EFBIG: DISK_FULL,
    errno.EIO: IO_ERROR,
    errno.EROFS: READ_ONLY,
}
# SQLite (sqlite3.Error.sqlite_errorname) and its messages when the name is missing.
_SQLITE_NAMES = {
    "SQLITE_FULL": DATABASE_FULL,
    "SQLITE_BUSY": DATABASE_LOCKED,
    "SQLITE_LOCKED": DATABASE_LOCKED,
    "SQLITE_READONLY": READ_ONLY,
    "SQLITE_CANTOPEN": IO_ERROR,
}
_SQLITE_MESSAGES = (
    ("database or disk is full", DATABASE_FULL),
    ("database is locked", DATABASE_LOCKED),
    ("disk i/o error", IO_ERROR),
    ("readonly database", READ_ONLY),
)
# PostgreSQL SQLSTATE classes: 53 insufficient resources (53100 disk full),
# 57P operator intervention (shutdown, pg_terminate_backend), 08 connection.
_PG_FULL = "53100"


@dataclass(frozen=True)
class ResourceFault:
    """What ran out: ``reason`` (a constant above), ``target`` (``database`` or the
    path that could not be written) and the error text, for logs and ``/healthz``."""

    reason: str
    target: str
    error: str

    def describe(self) -> str:
        return f"{self.reason} ({self.target}): {self.error}"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, its causes and contexts, and exceptions peewee wrapped in its args."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [a for a in current.args if isinstance(a, BaseException)]
        orig = getattr(current, "orig", None)  # peewee keeps the driver's error here
        if isinstance(orig, BaseException):
            todo.append(orig)
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]


def detect_resource_fault(exc: BaseException) -> ResourceFault | None:
    """The resource fault behind ``exc``, or None when it is not one."""
    database = False
    for item in _chain(exc):
        # A missing or incomplete blob (FileNotFoundError, even with EIO) is a fact
        # about that message, not about the disk.
        missing = isinstance(item, FileNotFoundError)
        if isinstance(item, OSError) and item.errno in _ERRNO_REASONS and not missing:
            named = (e.filename for e in _chain(exc) if isinstance(e, OSError) and e.filename)
            target = str(next(named, "data_dir"))
            return ResourceFault(_ERRNO_REASONS[item.errno], target, _text(item))
        if isinstance(item, sqlite3.Error | pw.OperationalError):
            reason = _SQLITE_NAMES.get(getattr(item, "sqlite_errorname", "") or "")
            message = str(item).lower()
            for needle, by_text in _SQLITE_MESSAGES:
                if reason is None and needle in message:
                    reason = by_text
            if reason is not None:
                return ResourceFault(reason, "database", _text(item))
        code = getattr(item, "pgcode", None)
        if code == _PG_FULL:
            return ResourceFault(DATABASE_FULL, "database", _text(item))
        if isinstance(item, pw.OperationalError | pw.InterfaceError) or (
            type(item).__module__.startswith("psycopg2")
            and type(item).__name__ in ("OperationalError", "InterfaceError")
        ):
            database = True
    if database:
        # Locked, gone, restarting, out of connections: the database cannot take
        # the write now; what is wrong is in the text.
        return ResourceFault(DATABASE_UNAVAILABLE, "database", _text(exc))
    return None


def _text(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text or type(exc).__name__)[:300]


@dataclass(frozen=True)
class FaultState:
    fault: ResourceFault
    since: datetime


class StorageHealth:
    """Whether the last attempt to store met a resource fault. Safe from any thread.

    ``record`` and ``clear`` return True when the state changed, so the caller logs
    one line per outage (not one per retried message) and one when it is over.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: FaultState | None = None
        self._stranded: set[int] = set()

    def strand(self, inbound_id: int) -> None:
        """A stored message whose processing met the fault: retried when it passes."""
        with self._lock:
            self._stranded.add(inbound_id)

    def unstrand(self, inbound_id: int) -> None:
        with self._lock:
            self._stranded.discard(inbound_id)

    def stranded(self) -> list[int]:
        with self._lock:
            return sorted(self._stranded)

    def record(self, fault: ResourceFault, now: datetime) -> bool:
        with self._lock:
            previous = self._state
            if previous is not None and (previous.fault.reason, previous.fault.target) == (
                fault.reason,
                fault.target,
            ):
                self._state = FaultState(fault, previous.since)
                return False
            self._state = FaultState(fault, now)
            return True

    def clear(self) -> FaultState | None:
        """Forget the fault; the state it ended, or None when there was none."""
        with self._lock:
            previous, self._state = self._state, None
            return previous

    def current(self) -> FaultState | None:
        with self._lock:
            return self._state
