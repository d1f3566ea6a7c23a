"""The outbox table: enqueue under an idempotency key, claim, and record attempts.

Rows are added inside the caller's transaction (with the ticket change that
caused them). Senders claim due rows atomically -- ``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, a write transaction on SQLite -- so two senders never take one row.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import peewee as pw

from storage.models import (
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


class OutboxError(LookupError):
    """No such outbox row, or it cannot be retried."""


def next_delay(attempts: int) -> timedelta:
    """Delay before attempt number ``attempts + 1`` (``attempts`` failures so far)."""
    index = attempts - 1
    minutes = BACKOFF_MINUTES[index] if 0 <= index < len(BACKOFF_MINUTES) else 60
    return timedelta(minutes=minutes)


def enqueue(
    *,
    idem_key: str,
    now: datetime,
    recipients: Sequence[str],
    status: str = OUTBOX_PENDING,
    **fields: Any,
) -> tuple[Outbox, bool]:
    """Add a row unless one with ``idem_key`` exists; return (row, created)."""
    existing = Outbox.get_or_none(Outbox.idem_key == idem_key)
    if existing is not None:
        return existing, False
    db = Outbox._meta.database
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
    for address in addresses:
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
    db = Outbox._meta.database
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
    OutboxAttempt.create(outbox=row.id, at=stamp, result="sent", detail=detail[:500])


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
    OutboxAttempt.create(
        outbox=row.id, at=stamp, result="failed" if give_up else "deferred", detail=error[:500]
    )
    row.status, row.attempts = status, attempts
    return status


def mark_bounced(message_id: str) -> Outbox | None:
    row = Outbox.get_or_none(Outbox.message_id == message_id)
    if row is not None and row.status != OUTBOX_BOUNCED:
        row.status = OUTBOX_BOUNCED
        row.save()
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
    "claim_due",
    "enqueue",
    "mark_bounced",
    "record_failure",
    "record_sent",
    "retry_now",
    "start_cooldown",
]
