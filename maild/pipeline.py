"""One inbound message, start to finish: raw store -> parse -> classify -> policy
-> apply, the last in one database transaction (SPEC §2).

Every way in (``maild ingest``, the LMTP listener, IMAP sources, the web reply
form) calls ``ingest_batch`` (``ingest`` for one message). The raw bytes are
stored durably first (``maild.inbound_store``); whatever happens after, the
message ends with exactly one outcome on its ``Inbound`` row -- ``quarantined``
at worst -- and can be replayed (``maild.recovery``). Reading order: this file,
then ``maild.context`` (the facts), ``maild.policy.table`` (the decision),
``maild.apply`` (what it does) and ``maild.records`` (the message's record and
its source position).
"""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from datetime import datetime

import peewee as pw
import structlog

from maild.app import App
from maild.apply import apply_decision
from maild.context import dedupe_key, gather
from maild.errors import StorageUnavailableError
from maild.faults import detect_resource_fault
from maild.inbound_store import (
    ImapPosition,
    Incoming,
    is_too_large,
    kept_headers,
    load_raw,
    store_inbound_batch,
)
from maild.parsers.message import parse_message
from maild.policy import types as outcomes
from maild.policy.classify import classify
from maild.policy.table import decide
from maild.records import (
    IngestResult,
    LeaseFencedError,
    quarantine,
    record_position,
    result_of,
)
from maild.storage.db import for_update, write_transaction
from maild.storage.models import (
    INBOUND_HELD,
    INBOUND_PROCESSED,
    INBOUND_QUARANTINED,
    INBOUND_RECEIVED,
    Inbound,
    RawMessage,
    to_storage,
)
from maild.storage.stores import sha256_hex
from maild.storage_health import storage_ok, storage_unavailable

log = structlog.get_logger("maild.pipeline")

MAX_ATTEMPTS = 3  # quarantine after this many failed tries (Mailman's MAX_BAK_COUNT)


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
            results[index] = result_of(inbound)
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
    together = [index for index in todo if index not in alone]
    if together:
        storage_ok(app)  # a batch got through: whatever fault was recorded is over
        app.metrics.batch_size.observe(len(together))
        for index in together:
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
        with write_transaction(app.db):
            for index in todo:
                item, inbound = items[index], inbounds[index]
                raw = load_raw(app, inbound) if inbound.raw.headers_only else item.raw
                bound = structlog.contextvars.bound_contextvars(
                    inbound_id=inbound.id, source=inbound.source
                )
                with bound:
                    try:
                        with app.db.atomic():  # a savepoint: this message alone rolls back
                            decided[index] = _process_fresh(app, inbound, raw, item.position)
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
        with write_transaction(app.db) as txn:
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
        raw = load_raw(app, inbound)
    bound = structlog.contextvars.bound_contextvars(inbound_id=inbound.id, source=inbound.source)
    with bound:
        last_error = ""
        for _attempt in range(MAX_ATTEMPTS):
            try:
                with write_transaction(app.db):
                    result = _process_fresh(app, inbound, raw, position, bypass_rate_limit)
                storage_ok(app, inbound.id)
                _log_result(result, started, app, inbound.source)
                return result
            except pw.IntegrityError as exc:
                # A concurrent writer took the same dedupe key or number: try again,
                # the next pass sees its row.
                last_error = f"{type(exc).__name__}: {exc}"
            except LeaseFencedError:
                raise  # not the message's fault: it stays for the lease's holder
            except Exception as exc:  # the per-message boundary: never crash the loop
                _raise_if_resource_fault(app, inbound, exc)
                last_error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                log.error("message.failed", error=last_error, trace=traceback.format_exc(limit=8))
                break
        try:
            result = quarantine(app, inbound, last_error, position, raw)
        except Exception as exc:
            _raise_if_resource_fault(app, inbound, exc)
            raise
        _log_result(result, started, app, inbound.source)
        return result


def _raise_if_resource_fault(app: App, inbound: Inbound, exc: Exception) -> None:
    """A full disk, a lost or locked database: not the message's fault. It stays
    'received' (retried once the fault passes, recovered at the next start) and
    the source retries too; no traceback."""
    fault = detect_resource_fault(exc)
    if fault is not None:
        app.metrics.storage.strand(inbound.id)
        raise storage_unavailable(app, fault) from exc


def _process_fresh(
    app: App,
    inbound: Inbound,
    raw: bytes,
    position: ImapPosition | None,
    bypass_rate_limit: bool = False,
) -> IngestResult:
    """``_process_in_transaction`` on the row read again (locked on PostgreSQL)."""
    query = Inbound.select().where(Inbound.id == inbound.id)
    fresh = for_update(query, app.db).get()
    if fresh.raw_id == inbound.raw.id:
        fresh.raw = inbound.raw  # already in hand: not read again
    if fresh.state != INBOUND_RECEIVED:
        # Another process (recover at start, a second instance) got here first:
        # its outcome stands, nothing is done twice.
        return result_of(fresh)
    return _process_in_transaction(
        app, fresh, raw, position, app.clock.now(), bypass_rate_limit=bypass_rate_limit
    )


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
    facts = gather(app, msg, inbound, now, bypass_rate_limit)
    decision = decide(msg, facts.context)
    applied = apply_decision(
        app, decision, msg, inbound, facts.ticket_of(decision), now, store_files=store_files
    )
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
    inbound.state = _STATES.get(decision.outcome, INBOUND_PROCESSED)
    if decision.outcome != outcomes.DUPLICATE_MESSAGE:  # quarantined too: a copy is a duplicate
        inbound.dedupe_key = dedupe_key(parsed.message_id, inbound.raw.sha256)
    inbound.save()
    if position is not None:
        record_position(position)
    return IngestResult(
        outcome=applied.outcome,
        ticket=ticket.number if ticket is not None else None,
        message_id=parsed.message_id,
        inbound_id=inbound.id,
        detail=inbound.detail,
    )


_STATES = {outcomes.RATE_LIMITED: INBOUND_HELD, outcomes.QUARANTINED: INBOUND_QUARANTINED}


def _log_result(
    result: IngestResult, started: datetime, app: App, source: str, *, batched: bool = False
) -> None:
    seconds = (app.clock.now() - started).total_seconds()
    app.metrics.message_processed(result.outcome, source, seconds)
    if not batched:
        app.metrics.batch_size.observe(1)  # a batch observes its own size once
    log.info(
        "message.processed",
        message_id=result.message_id,
        outcome=result.outcome,
        ticket=result.ticket,
        duration_ms=round(seconds * 1000, 1),
    )
