"""Whether storing works right now (SPEC §2): resource faults recorded for
``/healthz``, cleared by the next message that gets through or by a probe."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import peewee as pw
import structlog

from maild.app import App
from maild.errors import StorageUnavailableError
from maild.faults import ResourceFault, detect_resource_fault
from maild.storage.db import write_transaction
from maild.storage.models import RateWindowNotice, to_storage

log = structlog.get_logger("maild.pipeline")

PROBE_FREE_BYTES = 1 << 20  # below this much free space, storing is not tried again
PROBE_ADDRESS = "storage-probe.invalid"


def storage_unavailable(app: App, fault: ResourceFault) -> StorageUnavailableError:
    """Record ``fault`` for /healthz, log the first of an outage, and return the
    error that asks the source to retry (451, EX_TEMPFAIL, IMAP left unflagged)."""
    if app.metrics.storage.record(fault, app.clock.now()):
        # One line per outage, naming what is full: no traceback, it is no bug.
        log.warning(
            "storage.unavailable", reason=fault.reason, target=fault.target, error=fault.error
        )
    return StorageUnavailableError(f"not stored: {fault.describe()}", fault)


def storage_ok(app: App, inbound_id: int | None = None) -> None:
    """A message got through: whatever fault was recorded is over."""
    if inbound_id is not None:
        app.metrics.storage.unstrand(inbound_id)
    ended = app.metrics.storage.clear()
    if ended is not None:
        log.info(
            "storage.recovered",
            reason=ended.fault.reason,
            target=ended.fault.target,
            seconds=round((app.clock.now() - ended.since).total_seconds(), 1),
        )


def probe_storage(app: App) -> bool:
    """After a resource fault with nothing left to retry: is there room again?
    Free space where blobs and the SQLite file live, and one small write
    transaction (taken back in the same commit). True, and the fault cleared, when
    both pass; /healthz then says ok without waiting for the next message."""
    try:
        for folder in _storage_folders(app):
            stat = os.statvfs(folder)
            if stat.f_bavail * stat.f_frsize < PROBE_FREE_BYTES:
                raise OSError(errno.ENOSPC, "less than 1 MiB free", str(folder))
        with write_transaction(app.db):
            RateWindowNotice.create(address=PROBE_ADDRESS, window_start=to_storage(app.clock.now()))
            RateWindowNotice.delete().where(RateWindowNotice.address == PROBE_ADDRESS).execute()
    except Exception as exc:
        fault = detect_resource_fault(exc)
        if fault is None:
            raise
        storage_unavailable(app, fault)
        return False
    storage_ok(app)
    return True


def _storage_folders(app: App) -> list[Path]:
    folders = [Path(app.settings.daemon.data_dir)]
    if isinstance(app.db, pw.SqliteDatabase) and app.db.database != ":memory:":
        folders.append(Path(app.db.database).parent)
    return [folder for folder in folders if folder.is_dir()]
