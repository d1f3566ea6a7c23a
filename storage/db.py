"""Open a peewee database from a URL; the dialect seam.

SQLite gets WAL mode, a busy timeout and foreign keys; PostgreSQL URLs
(``postgresql://user@host:port/db``) use psycopg2. There is no module-level
database: the composition root calls ``open_database`` and passes it on, and
the models use it where it is bound (``storage.binding``: per App, per thread).
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import peewee
from maild.storage.migrations import migrate as run_migrations

BUSY_TIMEOUT_MS = 10000
SQLITE_PRAGMAS = (
    ("journal_mode", "wal"),
    ("busy_timeout", BUSY_TIMEOUT_MS),
    ("foreign_keys", 1),
    # FULL: the WAL is synced at each commit. With NORMAL a power cut could take
    # back an Inbound row after the MTA got its 250 (or IMAP moved the message).
    ("synchronous", "full"),
)


class DatabaseURLError(ValueError):
    """The database URL cannot be understood."""


class _SqliteDatabase(peewee.SqliteDatabase):
    """Every transaction takes the write lock up front (``BEGIN IMMEDIATE``).

    A deferred transaction that reads and then writes must upgrade its lock; in
    WAL mode, when another connection committed meanwhile, SQLite answers
    SQLITE_BUSY at once ("database is locked") without waiting the busy timeout.
    The LMTP intake then tempfailed whenever the outbox sender committed at the
    same moment. IMMEDIATE makes writers queue on the busy timeout instead.

    In one process the writers (the pipeline, the outbox sender, the web view)
    also queue on a lock of ours before BEGIN: SQLite's own busy handler sleeps
    in growing steps (up to 100 ms) however soon the lock frees, which cost the
    daemon an eighth of its time waiting while the sender held the lock for
    well under a millisecond. Other processes still meet on the busy timeout.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._writer = threading.Lock()
        self._writer_owner: int | None = None

    def begin(self, lock_type: str | None = None) -> None:
        if not self._writer.acquire(timeout=BUSY_TIMEOUT_MS / 1000):
            # Same answer as SQLite's own busy timeout: callers treat it as transient.
            raise peewee.OperationalError("database is locked (in-process writer queue)")
        self._writer_owner = threading.get_ident()
        try:
            super().begin(lock_type or "IMMEDIATE")
        except BaseException:
            self._release_writer()
            raise

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self._release_writer()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._release_writer()

    def _release_writer(self) -> None:
        if self._writer_owner == threading.get_ident():
            self._writer_owner = None
            self._writer.release()


class _PostgresqlDatabase(peewee.PostgresqlDatabase):
    """Reconnects by itself after the server dropped the connection (a restart, a
    failover, ``pg_terminate_backend``): the statement that met the loss fails, and
    the caller answers "try again later"; the next one, outside any transaction,
    opens a fresh connection instead of failing for ever on the dead one."""

    def cursor(self, named_cursor: Any = None) -> Any:
        if not self.in_transaction() and not self.is_closed() and not self.is_connection_usable():
            self._drop_connection()
        return super().cursor(named_cursor)

    def begin(self, isolation_level: Any = None) -> None:
        # A connection killed while idle looks fine until used: when BEGIN is what
        # finds it dead, nothing was done yet, so open a new one and begin there.
        try:
            super().begin(isolation_level)
        except (peewee.OperationalError, peewee.InterfaceError):
            if self.is_closed() or self.is_connection_usable():
                raise
            self._drop_connection()
            super().begin(isolation_level)

    def _drop_connection(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


def make_database(url: str) -> peewee.Database:
    """Build (but do not connect) a peewee database for ``url``."""
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return _SqliteDatabase(path, pragmas=SQLITE_PRAGMAS, check_same_thread=False)
    parsed = urlparse(url)
    if parsed.scheme in ("postgres", "postgresql"):
        name = parsed.path.lstrip("/")
        if not name:
            raise DatabaseURLError(f"{url!r}: no database name")
        kwargs: dict[str, object] = {}
        if parsed.hostname:
            kwargs["host"] = parsed.hostname
        if parsed.port:
            kwargs["port"] = parsed.port
        if parsed.username:
            kwargs["user"] = unquote(parsed.username)
        if parsed.password:
            kwargs["password"] = unquote(parsed.password)
        for key, values in parse_qs(parsed.query).items():
            kwargs[key] = values[-1]
        return _PostgresqlDatabase(name, autorollback=False, **kwargs)
    raise DatabaseURLError(f"{url!r}: use sqlite:///path or postgresql://user@host/db")


def open_database(url: str, *, migrate: bool = False) -> peewee.Database:
    """Connect, and optionally bring the schema up to date. The models use it where
    it is bound (``App.bound()``, ``storage.binding``), not from here on."""
    db = make_database(url)
    db.connect(reuse_if_open=True)
    if migrate:
        run_migrations(db)
    return db


def is_postgres(db: peewee.Database) -> bool:
    return isinstance(db, peewee.PostgresqlDatabase)


# ---------------------------------------------------------------------------
# the dialect seam: every SQLite/PostgreSQL difference callers need, in one place
# ---------------------------------------------------------------------------


def write_transaction(db: peewee.Database) -> Any:
    """A write transaction: on SQLite it takes the write lock up front (IMMEDIATE),
    so concurrent writers queue instead of deadlocking; on PostgreSQL a plain one."""
    return db.atomic() if is_postgres(db) else db.atomic("IMMEDIATE")


def for_update(
    query: peewee.ModelSelect, db: peewee.Database, *, skip_locked: bool = False
) -> peewee.ModelSelect:
    """``query`` locking its rows on PostgreSQL (``skip_locked``: rows another
    transaction holds are left out); SQLite's IMMEDIATE transaction already
    serializes writers, and it has no row locks."""
    if not is_postgres(db):
        return query
    return query.for_update("FOR UPDATE SKIP LOCKED" if skip_locked else True)


# Lock names are qualified by the schema: two desks (or two test runs) in their own
# schemas of one database never wait on each other's locks.
_LOCK_KEY = "hashtextextended(coalesce(current_schema(), '') || ':' || %s, 0)"


def advisory_xact_lock(db: peewee.Database, name: str) -> None:
    """Hold a named lock until the transaction ends (PostgreSQL); SQLite's
    IMMEDIATE transactions already serialize, so there is nothing to do there."""
    if is_postgres(db):
        db.execute_sql(f"SELECT pg_advisory_xact_lock({_LOCK_KEY})", (name,))


def try_advisory_lock(db: peewee.Database, name: str) -> bool:
    """Take a named session lock if it is free (PostgreSQL); always True on SQLite
    (one host)."""
    if not is_postgres(db):
        return True
    row = db.execute_sql(f"SELECT pg_try_advisory_lock({_LOCK_KEY})", (name,)).fetchone()
    return bool(row and row[0])


def advisory_unlock(db: peewee.Database, name: str) -> None:
    if is_postgres(db):
        db.execute_sql(f"SELECT pg_advisory_unlock({_LOCK_KEY})", (name,))
