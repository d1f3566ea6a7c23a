"""The outbox table: enqueue under an idempotency key, claim, and record attempts.

Rows are added inside the caller's transaction (with the ticket change that
caused them). Senders claim due rows atomically -- ``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, a write transaction on SQLite -- so two senders never take one row.

Right before the message itself is handed over (SMTP ``DATA``, after the server
took MAIL and RCPT) the sender renews its claim and commits a ``sending`` attempt
(``begin_attempt``); the result replaces it. A row found with a ``sending``
attempt left over was being handed over when its sender died (``in_doubt``): it
may or may not have reached the server, so it is sent again as an identical copy
with the same Message-ID, and the cut attempt is kept as ``interrupted``. A
duplicate is preferred to a loss (SPEC §4, RFC 5321 §6.1).

Addresses in the per-recipient cap and the bounce cool-down are compared
lowercased.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import peewee as pw
from maild.storage.binding import bound_database
from maild.storage.models import (
    OUTBOX_BOUNCED,
    OUTBOX_FAILED,
    OUTBOX_HELD,
    OUTBOX_PENDING,
    OUTBOX_SENT,
    AddressCooldown,
    AutoMailLog,
    Outbox,
    OutboxAttempt,
    aware,
    to_storage,
)

# SPEC §4: 1, 5, 15, 60 minutes, then hourly, giving up 24 h after the first try.
BACKOFF_MINUTES = (1, 5, 15, 60)
GIVE_UP_AFTER = timedelta(hours=24)
CLAIM_LEASE = timedelta(minutes=5)
BOUNCE_COOLDOWN = timedelta(hours=24)

# OutboxAttempt.result values.
ATTEMPT_SENDING = "sending"  # committed before delivery; replaced by the outcome
ATTEMPT_SENT = "sent"
ATTEMPT_DEFERRED = "deferred"
ATTEMPT_FAILED = "failed"


class OutboxError(LookupError):
    """No such outbox row, or it cannot be retried."""


def next_delay(attempts: int) -> timedelta:
    """Delay before attempt number ``attempts + 1`` (``attempts`` failures so far)."""
    index = attempts - 1
    minutes = BACKOFF_MINUTES[index] if 0 <= index < len(BACKOFF_MINUTES) else 60
    return timedelta(minutes=minutes)


# PostgreSQL NOTIFY channel: every commit that queues mail wakes the senders of all
# instances at once (the notification is delivered when the transaction commits).
OUTBOX_CHANNEL = "maild_outbox"


def enqueue(
    *,
    idem_key: str,
    now: datetime,
    recipients: Sequence[str],
    status: str = OUTBOX_PENDING,
    **fields: Any,
) -> tuple[Outbox, bool]:
    """Add a row unless one with ``idem_key`` exists; return (row, created).

    Optimistic: the insert is tried first (in a savepoint) and the unique key
    answers for a replay; a replay is rare, a lookup before every insert is not.
    """
    db = bound_database()
    try:
        with db.atomic():
            row = Outbox.create(
                idem_key=idem_key,
                recipients=list(recipients),
                status=status,
                created_at=to_storage(now),
                next_attempt_at=to_storage(now),
                **fields,
            )
            if status == OUTBOX_PENDING and isinstance(db, pw.PostgresqlDatabase):
                db.execute_sql("SELECT pg_notify(%s, '')", (OUTBOX_CHANNEL,))
            return row, True
    except pw.IntegrityError:
        return Outbox.get(Outbox.idem_key == idem_key), False


def allowed_automatic_recipients(
    addresses: Sequence[str], now: datetime, cap_per_hour: int
) -> tuple[list[str], list[str]]:
    """Split recipients of an automatic mail into (allowed, suppressed).

    Suppressed: over the hourly cap, or on a bounce cool-down. Allowed ones are
    logged against the cap right away (same transaction as the outbox row).
    """
    stamp = to_storage(now)
    since = to_storage(now - timedelta(hours=1))
    allowed, suppressed = [], []
    for address in dict.fromkeys(a.strip().lower() for a in addresses if a.strip()):
        cooling = AddressCooldown.select().where(
            (AddressCooldown.address == address) & (AddressCooldown.until > stamp)
        )
        count = (
            AutoMailLog.select()
            .where((AutoMailLog.address == address) & (AutoMailLog.created_at > since))
            .count()
        )
        if cooling.exists() or count >= cap_per_hour:
            suppressed.append(address)
        else:
            allowed.append(address)
            AutoMailLog.create(address=address, created_at=stamp)
    return allowed, suppressed


def start_cooldown(address: str, now: datetime, reason: str) -> None:
    """No automatic mail to ``address`` for ``BOUNCE_COOLDOWN`` from ``now``."""
    address = address.strip().lower()
    until = to_storage(now + BOUNCE_COOLDOWN)
    row = AddressCooldown.get_or_none(AddressCooldown.address == address)
    if row is None:
        AddressCooldown.create(address=address, until=until, reason=reason)
    else:
        row.until = until
        row.reason = reason
        row.save()


def claim_due(owner: str, now: datetime, limit: int = 20) -> list[Outbox]:
    """Atomically take up to ``limit`` due rows for ``owner``."""
    db = bound_database()
    stamp = to_storage(now)
    due = (
        (Outbox.status == OUTBOX_PENDING)
        & (Outbox.next_attempt_at <= stamp)
        & ((Outbox.claimed_until.is_null()) | (Outbox.claimed_until < stamp))
    )
    lease = to_storage(now + CLAIM_LEASE)
    if isinstance(db, pw.PostgresqlDatabase):
        with db.atomic():
            rows = list(
                Outbox.select()
                .where(due)
                .order_by(Outbox.next_attempt_at, Outbox.id)
                .limit(limit)
                .for_update("FOR UPDATE SKIP LOCKED")
            )
            if rows:
                Outbox.update(claimed_by=owner, claimed_until=lease).where(
                    Outbox.id.in_([r.id for r in rows])
                ).execute()
    else:
        with db.atomic("IMMEDIATE"):
            rows = list(
                Outbox.select().where(due).order_by(Outbox.next_attempt_at, Outbox.id).limit(limit)
            )
            if rows:
                Outbox.update(claimed_by=owner, claimed_until=lease).where(
                    Outbox.id.in_([r.id for r in rows])
                ).execute()
    for row in rows:
        row.claimed_by = owner
        row.claimed_until = lease
    return rows


def begin_attempt(row: Outbox, owner: str, now: datetime) -> bool:
    """Renew ``owner``'s claim on ``row`` and mark it as being delivered; commits.

    False when the row is no longer ``owner``'s to send (its lease ran out and
    another sender took it, or it left ``pending``): the caller must skip it.
    """
    db = bound_database()
    with db.atomic():
        taken = (
            Outbox.update(claimed_until=to_storage(now + CLAIM_LEASE))
            .where(
                (Outbox.id == row.id)
                & (Outbox.status == OUTBOX_PENDING)
                & (Outbox.claimed_by == owner)
            )
            .execute()
        )
        if taken:
            OutboxAttempt.create(outbox=row.id, at=to_storage(now), result=ATTEMPT_SENDING)
    return bool(taken)


ATTEMPT_INTERRUPTED = "interrupted"


def record_interrupted(row: Outbox, now: datetime, detail: str) -> None:
    """Mark the attempt a crash cut short, so the row can be delivered again."""
    OutboxAttempt.update(at=to_storage(now), result=ATTEMPT_INTERRUPTED, detail=detail[:500]).where(
        (OutboxAttempt.outbox == row.id) & (OutboxAttempt.result == ATTEMPT_SENDING)
    ).execute()


def in_doubt(row: Outbox) -> bool:
    """True when a delivery of ``row`` began and its outcome was never recorded."""
    return (
        OutboxAttempt.select()
        .where((OutboxAttempt.outbox == row.id) & (OutboxAttempt.result == ATTEMPT_SENDING))
        .exists()
    )


def in_doubt_ids(rows: Sequence[Outbox]) -> set[int]:
    """``in_doubt`` for several rows, in one query (a claimed batch)."""
    ids = [row.id for row in rows]
    if not ids:
        return set()
    query = OutboxAttempt.select(OutboxAttempt.outbox).where(
        OutboxAttempt.outbox.in_(ids) & (OutboxAttempt.result == ATTEMPT_SENDING)
    )
    return {outbox_id for (outbox_id,) in query.tuples()}


def _finish_attempt(row: Outbox, stamp: datetime, result: str, detail: str) -> None:
    """Turn the pending ``sending`` attempt into ``result`` (or log a new attempt)."""
    updated = (
        OutboxAttempt.update(at=stamp, result=result, detail=detail[:500])
        .where((OutboxAttempt.outbox == row.id) & (OutboxAttempt.result == ATTEMPT_SENDING))
        .execute()
    )
    if not updated:
        OutboxAttempt.create(outbox=row.id, at=stamp, result=result, detail=detail[:500])


def release_claims(rows: Sequence[Outbox], owner: str) -> int:
    """Give claimed rows back to the queue (a sender stopping mid-batch)."""
    ids = [row.id for row in rows]
    if not ids:
        return 0
    return (
        Outbox.update(claimed_by=None, claimed_until=None)
        .where(Outbox.id.in_(ids) & (Outbox.claimed_by == owner))
        .execute()
    )


def record_sent(row: Outbox, now: datetime, detail: str = "") -> None:
    stamp = to_storage(now)
    Outbox.update(
        status=OUTBOX_SENT,
        sent_at=stamp,
        attempts=Outbox.attempts + 1,
        claimed_by=None,
        claimed_until=None,
        last_error=None,
    ).where(Outbox.id == row.id).execute()
    _finish_attempt(row, stamp, ATTEMPT_SENT, detail)


def record_failure(row: Outbox, now: datetime, error: str, *, permanent: bool) -> str:
    """Record a failed attempt; return the new status (pending or failed)."""
    stamp = to_storage(now)
    attempts = row.attempts + 1
    created = aware(row.created_at)
    assert created is not None
    give_up = permanent or (now - created) >= GIVE_UP_AFTER
    status = OUTBOX_FAILED if give_up else OUTBOX_PENDING
    Outbox.update(
        status=status,
        attempts=attempts,
        last_error=error[:1000],
        next_attempt_at=to_storage(now + next_delay(attempts)),
        claimed_by=None,
        claimed_until=None,
    ).where(Outbox.id == row.id).execute()
    _finish_attempt(row, stamp, ATTEMPT_FAILED if give_up else ATTEMPT_DEFERRED, error)
    row.status, row.attempts = status, attempts
    return status


def mark_bounced(message_id: str) -> Outbox | None:
    """Mark the row that sent ``message_id`` (brackets optional) bounced; None if not ours."""
    message_id = message_id.strip().removeprefix("<").removesuffix(">")
    row = Outbox.get_or_none(Outbox.message_id == message_id)
    if row is not None and row.status != OUTBOX_BOUNCED:
        # A single-column update: never write back a stale copy of the whole row.
        Outbox.update(status=OUTBOX_BOUNCED).where(Outbox.id == row.id).execute()
        row.status = OUTBOX_BOUNCED
    return row


def retry_now(outbox_id: int, now: datetime) -> Outbox:
    row = Outbox.get_or_none(Outbox.id == outbox_id)
    if row is None:
        raise OutboxError(f"no outbox message {outbox_id}")
    if row.status == OUTBOX_SENT:
        raise OutboxError(f"outbox message {outbox_id} was already sent")
    row.status = OUTBOX_PENDING
    row.next_attempt_at = to_storage(now)
    row.created_at = to_storage(now)  # restart the 24 h give-up window
    row.claimed_by = None
    row.claimed_until = None
    row.save()
    return row


__all__ = [
    "OUTBOX_BOUNCED",
    "OUTBOX_FAILED",
    "OUTBOX_HELD",
    "OUTBOX_PENDING",
    "OUTBOX_SENT",
    "allowed_automatic_recipients",
    "begin_attempt",
    "claim_due",
    "enqueue",
    "in_doubt",
    "mark_bounced",
    "record_failure",
    "record_sent",
    "retry_now",
    "start_cooldown",
]
