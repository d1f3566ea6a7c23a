"""Resource faults are temporary (SPEC §2): a full database or disk, a lost
connection, a log that cannot be written never refuse or lose a message."""

from __future__ import annotations

import contextlib
import errno
import sqlite3

import peewee as pw
import pytest
import structlog
from maild.storage.models import Inbound
from maild.storage.stores import StoreError

from maild.errors import StorageUnavailableError
from maild.faults import (
    DATABASE_FULL,
    DATABASE_LOCKED,
    DATABASE_UNAVAILABLE,
    DISK_FULL,
    IO_ERROR,
    detect_resource_fault,
)
from maild.logging import configure_logging
from maild.pipeline import ingest
from maild.policy import types as o
from maild.recovery import retry_stranded
from maild.storage_health import probe_storage
from tests.component.conftest import counts, mail


def _wrapped(inner: BaseException, outer: BaseException) -> BaseException:
    try:
        try:
            raise inner
        except BaseException as exc:
            raise outer from exc
    except BaseException as exc:
        return exc


@pytest.mark.parametrize(
    ("exc", "reason", "target"),
    [
        (
            OSError(errno.ENOSPC, "No space left on device", "/var/lib/maild/raw/x"),
            DISK_FULL,
            "/var/lib/maild/raw/x",
        ),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), DISK_FULL, "data_dir"),
        (OSError(errno.EIO, "Input/output error", "/srv/a"), IO_ERROR, "/srv/a"),
        (
            _wrapped(
                OSError(errno.ENOSPC, "No space left on device", "/d/tmp"),
                StoreError(errno.ENOSPC, "cannot store blob"),
            ),
            DISK_FULL,
            "/d/tmp",
        ),
        (
            pw.OperationalError(sqlite3.OperationalError("database or disk is full")),
            DATABASE_FULL,
            "database",
        ),
        (pw.OperationalError("database is locked"), DATABASE_LOCKED, "database"),
        (pw.InterfaceError("connection already closed"), DATABASE_UNAVAILABLE, "database"),
        (
            _wrapped(
                pw.OperationalError(sqlite3.OperationalError("database or disk is full")),
                pw.OperationalError("cannot rollback - no transaction is active"),
            ),
            DATABASE_FULL,
            "database",
        ),
    ],
)
def test_resource_faults_are_recognised(exc, reason, target) -> None:
    fault = detect_resource_fault(exc)
    assert fault is not None
    assert (fault.reason, fault.target) == (reason, target)


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("bad header"),
        pw.IntegrityError("UNIQUE constraint failed"),
        OSError(errno.EACCES, "Permission denied"),
        KeyError("x"),
        FileNotFoundError(errno.EIO, "blob abc is incomplete"),
    ],
)
def test_bugs_are_not_resource_faults(exc) -> None:
    assert detect_resource_fault(exc) is None


def _fill_database(app) -> int:
    """Cap the SQLite file at its current size: every further write is SQLITE_FULL,
    the very error a full disk gives (this connection only)."""
    pages = app.db.execute_sql("PRAGMA page_count").fetchone()[0]
    app.db.execute_sql(f"PRAGMA max_page_count = {pages}")
    return pages


def test_full_database_is_temporary_and_recovers(app) -> None:
    ingest(app, mail(subject="aquecimento"))  # the tables have their first pages
    before = (counts(), Inbound.select().count())
    _fill_database(app)
    big = mail(subject="grande", body="x" * 300_000 + "\n")
    with structlog.testing.capture_logs() as logs:
        for _ in range(3):
            with pytest.raises(StorageUnavailableError) as info:
                ingest(app, big)
    assert info.value.fault is not None and info.value.fault.reason == DATABASE_FULL
    assert (counts(), Inbound.select().count()) == before  # nothing half-written
    unavailable = [e for e in logs if e["event"] == "storage.unavailable"]
    assert len(unavailable) == 1  # one line per outage, not per message
    assert unavailable[0]["reason"] == DATABASE_FULL and unavailable[0]["target"] == "database"
    assert all("trace" not in e and "exc_info" not in e for e in logs)
    state = app.metrics.storage.current()
    assert state is not None and state.fault.reason == DATABASE_FULL

    app.db.execute_sql("PRAGMA max_page_count = 1073741823")  # space returns
    with structlog.testing.capture_logs() as logs:
        result = ingest(app, big)
    assert result.outcome == o.CREATED
    assert app.metrics.storage.current() is None
    assert [e["event"] for e in logs].count("storage.recovered") == 1


def test_fault_after_the_raw_is_stored_leaves_it_received_and_retried(files_app) -> None:
    """Files store: the raw bytes are in, then the database fills while processing."""
    app = files_app
    ingest(app, mail(subject="aquecimento"))
    _fill_database(app)
    with pytest.raises(StorageUnavailableError):
        ingest(app, mail(subject="cheio", body="y" * 300_000 + "\n"))
    assert Inbound.select().where(Inbound.outcome == o.QUARANTINED).count() == 0
    app.db.execute_sql("PRAGMA max_page_count = 1073741823")
    retry_stranded(app)  # what the daemon does every few seconds
    assert Inbound.select().where(Inbound.state == "received").count() == 0
    assert Inbound.select().where(Inbound.outcome == o.QUARANTINED).count() == 0


def test_a_log_that_cannot_be_written_never_fails_a_delivery(app) -> None:
    full = open("/dev/full", "w")  # noqa: SIM115 - every write fails with ENOSPC
    try:
        configure_logging("debug", json=True, stream=full)
        result = ingest(app, mail(subject="log cheio"))
        structlog.get_logger("test").error("still.fine", detail="x" * 10000)
    finally:
        with contextlib.suppress(OSError):  # its buffer cannot be flushed either
            full.close()
    assert result.outcome == o.CREATED


def test_probe_clears_the_fault_once_a_write_gets_through(app) -> None:
    ingest(app, mail(subject="aquecimento"))
    _fill_database(app)
    with pytest.raises(StorageUnavailableError):
        ingest(app, mail(subject="grande", body="z" * 300_000 + "\n"))
    app.db.execute_sql("PRAGMA max_page_count = 1073741823")
    assert app.metrics.storage.current() is not None
    assert probe_storage(app)
    assert app.metrics.storage.current() is None
    assert counts()["tickets"] == 1  # the probe leaves nothing behind
