"""One inbound message, start to finish: raw store -> parse -> classify -> policy
-> apply, the last in one database transaction (SPEC §2).

Every way in (``maild ingest``, the LMTP listener, IMAP sources, the web reply
form) calls ``ingest``. The raw bytes are stored durably before anything else;
whatever happens after, the message ends with exactly one outcome on its
``Inbound`` row -- ``quarantined`` at worst -- and can be replayed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import peewee as pw
import structlog

from maild.app import App
from maild.apply import apply_decision
from maild.errors import StorageUnavailableError, UsageError
from maild.faults import DATABASE_ERRORS, ResourceFault, detect_resource_fault
from maild.parsers.message import parse_message
from maild.policy import types as outcomes
from maild.policy.access import may_post
from maild.policy.classify import classify
from maild.policy.table import decide
from maild.policy.types import Classified, Decision, PolicyContext, TicketView
from maild.storage.customers import has_tickets, is_known
from maild.storage.db import advisory_xact_lock, for_update, is_postgres, write_transaction
from maild.storage.models import (
    INBOUND_HELD,
    INBOUND_PROCESSED,
    INBOUND_QUARANTINED,
    INBOUND_RECEIVED,
    ImapState,
    Inbound,
    RateWindowNotice,
    RawMessage,
    Ticket,
    to_storage,
)
from maild.storage.queries import ticket_ccs
from maild.storage.stores import StoreError, sha256_hex
from maild.storage.tickets import find_active_duplicate, find_by_message_ids, find_subject_thread

log = structlog.get_logger("maild.pipeline")

MAX_ATTEMPTS = 3  # quarantine after this many failed tries (Mailman's MAX_BAK_COUNT)


class DryRunRollbackError(Exception):
    """Raised inside a dry-run transaction to undo everything it did."""


@dataclass(frozen=True)
class ImapPosition:
    """Where an IMAP message sits in its source. ``generation`` is the lease
    generation the runner holds (None: no fencing, e.g. recovery at start)."""

    source: str
    uidvalidity: int
    uid: int
    generation: int | None = None


class LeaseFencedError(Exception):
    """The position write of a runner whose lease changed hands: its transaction
    rolls back and the message is left ``received`` for the current holder."""


@dataclass(frozen=True)
class IngestResult:
    outcome: str
    ticket: int | None
    message_id: str | None
    inbound_id: int | None = None
    detail: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "ticket": self.ticket, "message_id": self.message_id}


# ---------------------------------------------------------------------------
# stage 1: raw first
# ---------------------------------------------------------------------------


def split_headers(raw: bytes) -> bytes:
    """The header block of a message (for too_large: only headers are kept)."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        index = raw.find(sep)
        if index != -1:
            return raw[: index + len(sep)]
    return raw[:65536]


def header_length(raw: bytes) -> int:
    """Bytes up to and including the blank line after the headers; ``len(raw)``
    when there is none (a message of headers only, or not a message at all)."""
    ends = [index + len(sep) for sep in (b"\r\n\r\n", b"\n\n") if (index := raw.find(sep)) != -1]
    return min(ends) if ends else len(raw)


def kept_headers(raw: bytes, max_header_bytes: int) -> bytes:
    """What a too_large message keeps: its headers, cut to ``max_header_bytes`` at
    a line end (a header bomb is kept as evidence, not parsed whole)."""
    head = split_headers(raw)
    if len(head) <= max_header_bytes:
        return head
    head = head[:max_header_bytes]
    cut = head.rfind(b"\n")
    head = head[: cut + 1] if cut > 0 else head
    while head[:1] in (b" ", b"\t") or head.startswith((b"\r\n", b"\n")):
        head = head[1:]  # never start inside a folded line
    return head.rstrip(b"\r\n") + b"\r\n\r\n"


def is_too_large(raw: bytes, size: int, settings: Any) -> bool:
    """Over ``attachments.max_message_bytes`` whole, or over ``limits.max_header_bytes``
    of headers: either way only (at most that many bytes of) the headers are kept."""
    if size > settings.attachments.max_message_bytes:
        return True
    return header_length(raw) > settings.limits.max_header_bytes


@dataclass(frozen=True)
class Incoming:
    """One message handed over by a source, for ``ingest_batch``."""

    raw: bytes
    source: str = "ingest"
    position: ImapPosition | None = None
    declared_size: int | None = None


def store_inbound(
    app: App,
    raw: bytes,
    source: str,
    position: ImapPosition | None = None,
    declared_size: int | None = None,
) -> Inbound:
    """Write the raw bytes and an ``Inbound`` row durably; raise StorageUnavailableError.

    ``declared_size`` is the size a source reported for a message it did not
    download whole (IMAP ``RFC822.SIZE`` of an oversize message): ``raw`` then
    holds only its headers and the message is ``too_large``.
    """
    return store_inbound_batch(app, [Incoming(raw, source, position, declared_size)])[0]


def store_inbound_batch(app: App, items: Sequence[Incoming]) -> list[Inbound]:
    """``store_inbound`` for several messages, committed together (SPEC §2.3: one
    durable commit for the raw rows of a batch instead of one per message)."""
    try:
        with app.db.atomic():
            # In the database (the default) the bytes commit with the rows that record
            # them; as files they are fsynced before. Either way: raw first.
            return [_store_one(app, item) for item in items]
    except Exception as exc:
        fault = detect_resource_fault(exc)
        if fault is not None:
            raise storage_unavailable(app, fault) from exc
        if isinstance(exc, (StoreError, *DATABASE_ERRORS)):
            # A passing conflict (two writers of the same row): the sender retries.
            raise StorageUnavailableError(f"not stored: {exc}") from exc
        raise


def _store_one(app: App, item: Incoming) -> Inbound:
    raw, position = item.raw, item.position
    size = max(len(raw), item.declared_size or 0)
    headers_only = is_too_large(raw, size, app.settings)
    kept = kept_headers(raw, app.settings.limits.max_header_bytes) if headers_only else raw
    digest = app.raw_store.put(kept)
    if position is not None:
        existing = Inbound.get_or_none(
            (Inbound.imap_source == position.source)
            & (Inbound.imap_uidvalidity == position.uidvalidity)
            & (Inbound.imap_uid == position.uid)
        )
        if existing is not None:
            return existing
    raw_row = RawMessage.get_or_none(RawMessage.sha256 == digest)
    if raw_row is None:
        raw_row = RawMessage.create(
            sha256=digest,
            size=size,
            headers_only=headers_only,
            created_at=to_storage(app.clock.now()),
        )
    return Inbound.create(
        raw=raw_row,
        source=item.source,
        received_at=to_storage(app.clock.now()),
        imap_source=position.source if position else None,
        imap_uidvalidity=position.uidvalidity if position else None,
        imap_uid=position.uid if position else None,
    )


# ---------------------------------------------------------------------------
# entry points
# ---------------------------------------------------------------------------


def ingest(
    app: App,
    raw: bytes,
    source: str = "ingest",
    position: ImapPosition | None = None,
    declared_size: int | None = None,
) -> IngestResult:
    """Store then process one message. Raises only StorageUnavailableError."""
    return ingest_batch(app, [Incoming(raw, source, position, declared_size)])[0]


def ingest_batch(app: App, items: Sequence[Incoming]) -> list[IngestResult]:
    """Store then process several messages with two commits (SPEC §2.3 group commit).

    The raw rows commit together; then one transaction processes them all, each in
    a savepoint of its own. A message that fails there is rolled back alone and,
    after the batch committed, goes the one-at-a-time way (``process_inbound``:
    retried, then quarantined), so it never takes the others with it. Raises only
    StorageUnavailableError, and only when nothing of the batch was stored.
    """
    if not items:
        return []
    inbounds = store_inbound_batch(app, items)
    results: list[IngestResult | None] = [None] * len(items)
    todo: list[int] = []
    for index, inbound in enumerate(inbounds):
        if inbound.state != INBOUND_RECEIVED:  # re-fetched IMAP message already handled
            results[index] = _result_of(inbound)
        else:
            todo.append(index)
    if len(todo) < len(items):
        storage_ok(app)  # stored (or found stored) without a fault: any fault is over
    started = app.clock.now()
    alone: list[int] = []
    if len(todo) == 1:
        alone = todo
    elif todo:
        alone = _process_together(app, items, inbounds, todo, results)
    for index in alone:
        item, inbound = items[index], inbounds[index]
        # Hand the bytes on rather than re-reading them: one copy of a large message in
        # memory, not two (too_large ones are processed from the headers kept).
        stored = None if inbound.raw.headers_only else item.raw
        results[index] = process_inbound(app, inbound, position=item.position, raw=stored)
    done = [r for r in results if r is not None]
    assert len(done) == len(items)
    processed_together = len(todo) - len(alone)
    if processed_together:
        storage_ok(app)  # a batch got through: whatever fault was recorded is over
        app.metrics.batch_size.observe(processed_together)
        for index in todo:
            if index not in alone:
                bound = structlog.contextvars.bound_contextvars(
                    inbound_id=inbounds[index].id, source=items[index].source
                )
                with bound:
                    _log_result(done[index], started, app, items[index].source, batched=True)
    return done


def _process_together(
    app: App,
    items: Sequence[Incoming],
    inbounds: Sequence[Inbound],
    todo: Sequence[int],
    results: list[IngestResult | None],
) -> list[int]:
    """Process ``todo`` in one transaction, a savepoint each; return the indexes
    left for the one-at-a-time path (failed here, or the whole batch on a
    database error such as a deadlock between instances)."""
    alone: list[int] = []
    decided: dict[int, IngestResult] = {}
    try:
        with _transaction(app):
            for index in todo:
                item, inbound = items[index], inbounds[index]
                raw = _load_raw(app, inbound) if inbound.raw.headers_only else item.raw
                bound = structlog.contextvars.bound_contextvars(
                    inbound_id=inbound.id, source=inbound.source
                )
                with bound:
                    try:
                        with app.db.atomic():  # a savepoint: this message alone rolls back
                            query = Inbound.select().where(Inbound.id == inbound.id)
                            if is_postgres(app.db):
                                query = query.for_update()
                            fresh = query.get()
                            if fresh.state != INBOUND_RECEIVED:
                                decided[index] = _result_of(fresh)
                                continue
                            decided[index] = _process_in_transaction(
                                app, fresh, raw, item.position, app.clock.now()
                            )
                    except (pw.OperationalError, LeaseFencedError):
                        raise
                    except Exception as exc:  # retried alone after the commit
                        log.info("message.batch_fallback", error=f"{type(exc).__name__}: {exc}")
                        alone.append(index)
    except (pw.OperationalError, StorageUnavailableError) as exc:
        log.warning("batch.fallback", count=len(todo), error=str(exc))
        return list(todo)
    for index, result in decided.items():
        results[index] = result
    return alone


def dry_run(app: App, raw: bytes, source: str = "ingest") -> IngestResult:
    """What would happen to ``raw``: processed in a transaction that is rolled back.

    The raw row carries the digest ``store_inbound`` would give it (reusing the
    stored row when there is one), so a message without Message-ID that was
    already ingested is reported as ``duplicate_message`` here too. Nothing is
    written to the raw or attachment stores.
    """
    now = app.clock.now()
    size = len(raw)
    headers_only = is_too_large(raw, size, app.settings)
    if headers_only:
        raw = kept_headers(raw, app.settings.limits.max_header_bytes)
    digest = sha256_hex(raw)
    try:
        with _transaction(app) as txn:
            raw_row = RawMessage.get_or_none(RawMessage.sha256 == digest)
            if raw_row is None:
                raw_row = RawMessage.create(
                    sha256=digest,
                    size=size,
                    headers_only=headers_only,
                    created_at=to_storage(now),
                )
            inbound = Inbound.create(raw=raw_row, source=source, received_at=to_storage(now))
            result = _process_in_transaction(app, inbound, raw, None, now, store_files=False)
            txn.rollback()
    except pw.OperationalError as exc:
        raise StorageUnavailableError(f"database: {exc}") from exc
    except Exception as exc:  # the per-message boundary, as in process_inbound
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return IngestResult(
            outcome=outcomes.QUARANTINED, ticket=None, message_id=None, detail=detail
        )
    return result


def process_inbound(
    app: App,
    inbound: Inbound,
    *,
    position: ImapPosition | None = None,
    bypass_rate_limit: bool = False,
    raw: bytes | None = None,
) -> IngestResult:
    """Decide and apply one stored message; quarantine it when that fails.

    ``raw`` may be given when the caller holds exactly the stored bytes.
    """
    started = app.clock.now()
    if raw is None:
        raw = _load_raw(app, inbound)
    bound = structlog.contextvars.bound_contextvars(inbound_id=inbound.id, source=inbound.source)
    with bound:
        last_error = ""
        for _attempt in range(MAX_ATTEMPTS):
            try:
                with _transaction(app):
                    query = Inbound.select().where(Inbound.id == inbound.id)
                    fresh = for_update(query, app.db).get()
                    if fresh.state != INBOUND_RECEIVED:
                        # Another process (recover at start, a second instance) got
                        # here first: its outcome stands, nothing is done twice.
                        return _result_of(fresh)
                    result = _process_in_transaction(
                        app,
                        fresh,
                        raw,
                        position,
                        app.clock.now(),
                        bypass_rate_limit=bypass_rate_limit,
                    )
                storage_ok(app, inbound.id)
                _log_result(result, started, app, inbound.source)
                return result
            except pw.IntegrityError as exc:
                # A concurrent writer took the same dedupe key or number: try again,
                # the next pass sees its row.
                last_error = f"{type(exc).__name__}: {exc}"
                continue
            except LeaseFencedError:
                raise  # not the message's fault: it stays for the lease's holder
            except Exception as exc:  # the per-message boundary: never crash the loop
                fault = detect_resource_fault(exc)
                if fault is not None:
                    # A full disk, a lost or locked database: not the message's fault.
                    # It stays 'received' (retried once the fault passes, recovered at
                    # the next start) and the source retries too; no traceback.
                    app.metrics.storage.strand(inbound.id)
                    raise storage_unavailable(app, fault) from exc
                last_error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                log.error(
                    "message.failed",
                    error=last_error,
                    trace=traceback.format_exc(limit=8),
                )
                break
        try:
            result = _quarantine(app, inbound, last_error, position, raw)
        except Exception as exc:
            fault = detect_resource_fault(exc)
            if fault is None:
                raise
            app.metrics.storage.strand(inbound.id)
            raise storage_unavailable(app, fault) from exc
        _log_result(result, started, app, inbound.source)
        return result


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


PROBE_FREE_BYTES = 1 << 20  # below this much free space, storing is not tried again
PROBE_ADDRESS = "storage-probe.invalid"


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
        with _transaction(app):
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


def retry_stranded(app: App) -> list[IngestResult]:
    """Process the stored messages this process could not finish during a resource
    fault; stops at the first that still meets one. Not counted as attempts: the
    fault was never theirs (contrast ``recover``, after a crash)."""
    results = []
    for inbound_id in app.metrics.storage.stranded():
        try:
            inbound = Inbound.get_or_none(Inbound.id == inbound_id)
            if inbound is None or inbound.state != INBOUND_RECEIVED:
                app.metrics.storage.unstrand(inbound_id)
                continue
            position = None
            if inbound.imap_source is not None:
                position = ImapPosition(
                    inbound.imap_source, inbound.imap_uidvalidity, inbound.imap_uid
                )
            results.append(process_inbound(app, inbound, position=position))
        except StorageUnavailableError:
            break
        except DATABASE_ERRORS as exc:
            fault = detect_resource_fault(exc)
            if fault is not None:
                storage_unavailable(app, fault)
            break
    return results


def release(app: App, inbound_id: int) -> IngestResult:
    """Process a held (rate-limited) or quarantined message now."""
    inbound = Inbound.get_or_none(Inbound.id == inbound_id)
    if inbound is None:
        raise UsageError(f"no quarantined or held message {inbound_id}")
    if inbound.state not in (INBOUND_HELD, INBOUND_QUARANTINED):
        raise UsageError(
            f"message {inbound_id} is not held or quarantined (outcome: {inbound.outcome})"
        )
    # The bytes first: a blob that cannot be read leaves the message as it was, held
    # or quarantined, where any instance can release it later.
    raw = _load_raw(app, inbound)
    previous = (inbound.state, inbound.dedupe_key)
    with app.db.atomic():
        Inbound.update(state=INBOUND_RECEIVED, dedupe_key=None).where(
            (Inbound.id == inbound.id) & (Inbound.state == inbound.state)
        ).execute()
    inbound = Inbound.get_by_id(inbound.id)
    try:
        return process_inbound(app, inbound, bypass_rate_limit=True, raw=raw)
    except StorageUnavailableError:
        # Not stranded in 'received': put it back for the next release.
        with contextlib.suppress(pw.DatabaseError), app.db.atomic():
            Inbound.update(state=previous[0], dedupe_key=previous[1]).where(
                (Inbound.id == inbound.id) & (Inbound.state == INBOUND_RECEIVED)
            ).execute()
        raise


def recover(app: App) -> list[IngestResult]:
    """Process messages whose raw bytes were stored but whose outcome never committed.

    A message that was in hand when the process died may be what killed it (a
    parser blow-up, memory): each recovery counts as an attempt, and one that has
    been tried MAX_ATTEMPTS times is quarantined instead of taking the daemon
    down again at every start.
    """
    results = []
    for inbound in Inbound.select().where(Inbound.state == INBOUND_RECEIVED).order_by(Inbound.id):
        position = None
        if inbound.imap_source is not None:
            position = ImapPosition(inbound.imap_source, inbound.imap_uidvalidity, inbound.imap_uid)
        if inbound.attempts >= MAX_ATTEMPTS:
            results.append(
                _quarantine(
                    app,
                    inbound,
                    f"processing was interrupted {inbound.attempts} times (crash or kill)",
                    position,
                    None,
                    count_attempt=False,
                )
            )
            continue
        try:
            with app.db.atomic():
                Inbound.update(attempts=Inbound.attempts + 1).where(
                    Inbound.id == inbound.id
                ).execute()
            results.append(process_inbound(app, inbound, position=position))
        except StorageUnavailableError as exc:
            # Still stored and still 'received': the next start (or pass) tries again.
            log.warning("message.recovery_deferred", inbound_id=inbound.id, error=str(exc))
            break
    return results


# ---------------------------------------------------------------------------
# internals
# ---------------------------------------------------------------------------


@contextmanager
def _transaction(app: App) -> Iterator[Any]:
    """A write transaction; on SQLite taken up front so writers queue, not deadlock."""
    with write_transaction(app.db) as txn:
        yield txn


def _load_raw(app: App, inbound: Inbound) -> bytes:
    try:
        return app.raw_store.get(inbound.raw.sha256)
    except Exception as exc:
        fault = detect_resource_fault(exc)
        if fault is not None:
            raise storage_unavailable(app, fault) from exc
        if not isinstance(exc, OSError):
            raise
        raise StorageUnavailableError(
            f"raw message {inbound.raw.sha256} unreadable: {exc}"
        ) from exc


def _result_of(inbound: Inbound) -> IngestResult:
    return IngestResult(
        outcome=inbound.outcome or inbound.state,
        ticket=inbound.ticket.number if inbound.ticket_id else None,
        message_id=inbound.message_id,
        inbound_id=inbound.id,
        detail=inbound.detail,
    )


def _log_result(
    result: IngestResult, started: datetime, app: App, source: str, *, batched: bool = False
) -> None:
    seconds = (app.clock.now() - started).total_seconds()
    duration = seconds * 1000
    app.metrics.message_processed(result.outcome, source, seconds)
    if not batched:
        app.metrics.batch_size.observe(1)  # a batch observes its own size once
    log.info(
        "message.processed",
        message_id=result.message_id,
        outcome=result.outcome,
        ticket=result.ticket,
        duration_ms=round(duration, 1),
    )


def _quarantine(
    app: App,
    inbound: Inbound,
    error: str,
    position: ImapPosition | None,
    raw: bytes | None,
    *,
    count_attempt: bool = True,
) -> IngestResult:
    """Mark a message quarantined. ``raw`` None: do not even parse it again (it may
    be what crashed the process); its dedupe key is then its SHA-256."""
    now = app.clock.now()
    key = (
        _safe_dedupe_key(raw, inbound.raw.sha256)
        if raw is not None
        else (dedupe_key(None, inbound.raw.sha256))
    )
    with app.db.atomic():
        # Claim the dedupe key (unless another copy holds it) so that the same
        # message arriving again is a duplicate_message, not a second entry in
        # the quarantine; `release` clears it before processing again.
        taken = (
            Inbound.select()
            .where((Inbound.dedupe_key == key) & (Inbound.id != inbound.id))
            .exists()
        )
        Inbound.update(
            state=INBOUND_QUARANTINED,
            outcome=outcomes.QUARANTINED,
            detail=error[:2000] or "processing failed",
            attempts=Inbound.attempts + (1 if count_attempt else 0),
            processed_at=to_storage(now),
            **({} if taken else {"dedupe_key": key}),
        ).where(Inbound.id == inbound.id).execute()
        if position is not None:
            _record_position(position)
    fresh = Inbound.get_by_id(inbound.id)
    return _result_of(fresh)


def _safe_dedupe_key(raw: bytes, sha: str) -> str:
    try:
        message_id = parse_message(raw).message_id
    except Exception:  # the parse may be what failed
        message_id = None
    return dedupe_key(message_id, sha)


def _record_position(position: ImapPosition) -> None:
    """Advance the source's UIDVALIDITY/UID; never touches the lease columns,
    which another instance may be renewing concurrently. With a ``generation``,
    only while the lease still has it (else LeaseFencedError: the caller's
    transaction rolls back, the message stays for the lease's current holder)."""
    state = ImapState.get_or_none(ImapState.source == position.source)
    if state is None:
        if position.generation is not None:
            raise LeaseFencedError(f"{position.source}: no lease row")
        ImapState.create(
            source=position.source, uidvalidity=position.uidvalidity, last_uid=position.uid
        )
        return
    if state.uidvalidity != position.uidvalidity:
        last_uid = position.uid
    else:
        last_uid = max(state.last_uid or 0, position.uid)
    where = ImapState.id == state.id
    if position.generation is not None:
        # Checked by the UPDATE itself: on PostgreSQL it waits for a concurrent
        # takeover's commit and then sees the new generation.
        where &= ImapState.lease_generation == position.generation
    updated = (
        ImapState.update(uidvalidity=position.uidvalidity, last_uid=last_uid).where(where).execute()
    )
    if not updated and position.generation is not None:
        raise LeaseFencedError(
            f"{position.source}: lease generation {position.generation} no longer holds"
        )


def _view(ticket: Ticket) -> TicketView:
    return TicketView(
        number=ticket.number,
        status=ticket.status,
        department=ticket.department,
        requester=ticket.requester,
        ccs=tuple(ticket_ccs(ticket)),
    )


def dedupe_key(message_id: str | None, sha: str) -> str:
    return f"mid:{message_id}" if message_id else f"sha:{sha}"


def find_thread(app: App, msg: Classified) -> tuple[Ticket | None, str | None]:
    """SPEC §3 threading order: token, references, plus-address, footer, subject."""
    if msg.token_number is not None:
        ticket = Ticket.get_or_none(Ticket.number == msg.token_number)
        if ticket is not None:
            return ticket, "token"

    if msg.reference_ids:
        ticket = find_by_message_ids(msg.reference_ids)
        if ticket is not None:
            return ticket, "references"
    if msg.plus_number is not None:
        ticket = Ticket.get_or_none(Ticket.number == msg.plus_number)
        if ticket is not None:
            return ticket, "plus"
    if msg.footer_number is not None:
        ticket = Ticket.get_or_none(Ticket.number == msg.footer_number)
        if ticket is not None:
            return ticket, "footer"
    if msg.has_reply_prefix and msg.sender:
        ticket = find_subject_thread(msg.normalized_subject, msg.sender, msg.department)
        if ticket is not None:
            return ticket, "subject"
    return None, None


# Thread matches a stranger cannot claim a ticket by (see build_context).
WEAK_THREAD_EVIDENCE = ("references", "footer", "subject")


def _starts_new_ticket(settings: Any, ticket: Ticket) -> bool:
    dept = settings.department(ticket.department)
    return (
        ticket.status == "resolved"
        and dept is not None
        and (dept.followup_on_resolved == "new_ticket")
    )


def _serialize_openings(app: App, msg: Classified) -> None:
    """On PostgreSQL, one transaction at a time per requester, department and
    normalized subject (SPEC §10): the duplicate-subject rule and subject threading
    then hold across instances, since the second transaction, once it has the lock,
    sees what the first committed. SQLite's IMMEDIATE transactions already serialize."""
    if msg.sender:
        name = f"opening:{msg.sender.lower()}:{msg.department}:{msg.normalized_subject}"
        advisory_xact_lock(app.db, name)


def _locked(app: App, ticket: Ticket | None) -> Ticket | None:
    """The ticket row again, locked by this transaction on PostgreSQL, so that
    concurrent mail, agent replies and web posts never lose an update (SPEC §10)."""
    if ticket is None or not is_postgres(app.db):
        return ticket  # SQLite: the IMMEDIATE transaction already holds the write lock
    return for_update(Ticket.select().where(Ticket.id == ticket.id), app.db).get()


def build_context(
    app: App, msg: Classified, inbound: Inbound, now: datetime, bypass_rate_limit: bool
) -> tuple[PolicyContext, Ticket | None, Ticket | None]:
    settings = app.settings
    key = dedupe_key(msg.parsed.message_id, inbound.raw.sha256)
    already_seen = (
        Inbound.select().where((Inbound.dedupe_key == key) & (Inbound.id != inbound.id)).exists()
    )
    _serialize_openings(app, msg)
    ticket, via = find_thread(app, msg)
    ticket = _locked(app, ticket)
    view = _view(ticket) if ticket is not None else None
    if view is not None and via in WEAK_THREAD_EVIDENCE and not msg.is_agent:
        # A quoted footer or our References in a stranger's mail (a forward) is no
        # right to the ticket: that mail is a new opening, and learns nothing of it.
        allowed, _ = may_post(msg.sender, view, settings.access.allow_same_domain)
        if not allowed:
            ticket, via, view = None, None, None
    if ticket is not None and not msg.is_agent and _starts_new_ticket(settings, ticket):
        # new_ticket policy: a follow-up on a resolved ticket opens one new ticket;
        # further follow-ups thread onto that one instead of opening more.
        successor = find_subject_thread(msg.normalized_subject, msg.sender, ticket.department)
        if successor is not None and successor.id != ticket.id:
            successor = _locked(app, successor)
            ticket, via, view = successor, "subject", _view(successor)
    duplicate = None
    if ticket is None and not msg.has_reply_prefix and msg.sender:
        duplicate = find_active_duplicate(msg.normalized_subject, msg.sender, msg.department)
    recent = 0
    if not bypass_rate_limit and msg.sender:
        since = to_storage(now - timedelta(hours=1))
        recent = (
            Inbound.select()
            .where(
                (Inbound.sender == msg.sender)
                & (Inbound.received_at > since)
                & (Inbound.id != inbound.id)
                & (Inbound.outcome != outcomes.DUPLICATE_MESSAGE)
            )
            .count()
        )
    dept = settings.department(ticket.department) if ticket is not None else None
    known_only = settings.access.customers == "known"
    ctx = PolicyContext(
        known_customers_only=known_only,
        sender_known=_sender_known(msg) if known_only and ticket is None else True,
        already_seen=already_seen,
        ticket=view,
        thread_via=via,
        duplicate_of=_view(duplicate) if duplicate is not None else None,
        sender_recent_count=recent,
        max_per_hour=settings.limits.max_messages_per_sender_per_hour,
        allow_same_domain=settings.access.allow_same_domain,
        followup_policy=dept.followup_on_resolved if dept else "reject",
    )
    return ctx, ticket, duplicate


def _sender_known(msg: Classified) -> bool:
    """In the customer table (address or domain), or already on a ticket (SPEC §13)."""
    return bool(msg.sender) and (is_known(msg.sender) or has_tickets(msg.sender))


def _process_in_transaction(
    app: App,
    inbound: Inbound,
    raw: bytes,
    position: ImapPosition | None,
    now: datetime,
    *,
    bypass_rate_limit: bool = False,
    store_files: bool = True,
) -> IngestResult:
    parsed = parse_message(raw)
    msg = classify(parsed, raw, app.settings, too_large=inbound.raw.headers_only)
    ctx, ticket, duplicate = build_context(app, msg, inbound, now, bypass_rate_limit)
    decision = decide(msg, ctx)
    if decision.outcome == outcomes.DUPLICATE_SUBJECT_REJECTED:
        ticket = duplicate
    elif decision.outcome == outcomes.CREATED:
        ticket = None

    applied = apply_decision(app, decision, msg, inbound, ticket, now, store_files=store_files)
    ticket = applied.ticket

    inbound.message_id = parsed.message_id
    inbound.sender = msg.sender
    inbound.subject = parsed.subject[:1000]
    inbound.outcome = applied.outcome
    if applied.reason is not None:
        inbound.detail = f"{decision.rule}: {applied.reason}"
    elif decision.outcome == outcomes.AUTO_REPLY_IGNORED:
        inbound.detail = f"{decision.rule}: {msg.loop_reason}"
    else:
        inbound.detail = decision.rule
    inbound.ticket = ticket
    inbound.processed_at = to_storage(now)
    inbound.attempts = inbound.attempts + 1
    if decision.outcome == outcomes.RATE_LIMITED:
        inbound.state = INBOUND_HELD
    elif decision.outcome == outcomes.QUARANTINED:
        inbound.state = INBOUND_QUARANTINED
    else:
        inbound.state = INBOUND_PROCESSED
    if decision.outcome != outcomes.DUPLICATE_MESSAGE:  # quarantined too: a copy is a duplicate
        inbound.dedupe_key = dedupe_key(parsed.message_id, inbound.raw.sha256)
    inbound.save()
    if position is not None:
        _record_position(position)
    return IngestResult(
        outcome=applied.outcome,
        ticket=ticket.number if ticket is not None else None,
        message_id=parsed.message_id,
        inbound_id=inbound.id,
        detail=inbound.detail,
    )


__all__ = [
    "Decision",
    "ImapPosition",
    "IngestResult",
    "LeaseFencedError",
    "dry_run",
    "ingest",
    "probe_storage",
    "process_inbound",
    "recover",
    "release",
    "retry_stranded",
    "store_inbound",
]
