"""Messages stored but not finished: after a crash (``recover``), after a
resource fault (``retry_stranded``), and held or quarantined ones a person
releases (``release``). Each goes through ``pipeline.process_inbound`` again."""

from __future__ import annotations

import contextlib

import peewee as pw
import structlog

from maild.app import App
from maild.errors import StorageUnavailableError, UsageError
from maild.faults import DATABASE_ERRORS, detect_resource_fault
from maild.inbound_store import ImapPosition, load_raw
from maild.pipeline import MAX_ATTEMPTS, process_inbound
from maild.records import IngestResult, quarantine
from maild.storage.models import INBOUND_HELD, INBOUND_QUARANTINED, INBOUND_RECEIVED, Inbound
from maild.storage_health import storage_unavailable

log = structlog.get_logger("maild.pipeline")


def _position(inbound: Inbound) -> ImapPosition | None:
    if inbound.imap_source is None:
        return None
    return ImapPosition(inbound.imap_source, inbound.imap_uidvalidity, inbound.imap_uid)


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
            results.append(process_inbound(app, inbound, position=_position(inbound)))
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
    raw = load_raw(app, inbound)
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
        position = _position(inbound)
        if inbound.attempts >= MAX_ATTEMPTS:
            error = f"processing was interrupted {inbound.attempts} times (crash or kill)"
            results.append(quarantine(app, inbound, error, position, None, count_attempt=False))
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
