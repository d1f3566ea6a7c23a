"""Ticket writes: numbers, thread entries, attachments, CCs, events.

Callers hold the transaction; these functions only add rows to it. Every change
to a ticket writes an ``Event`` (the audit log).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import peewee as pw
from maild.storage.binding import bound_database
from maild.storage.models import (
    ACTIVE_STATUSES,
    Attachment,
    Event,
    KnownMessageId,
    RefusedAttachment,
    ThreadEntry,
    Ticket,
    TicketCC,
    to_storage,
)

NUMBER_ATTEMPTS = 50


class NumberSpaceExhaustedError(RuntimeError):
    """No free ticket number after many tries: raise tickets.number_digits."""


def new_access_key() -> str:
    """192 random bits, URL-safe."""
    return secrets.token_urlsafe(24)


def random_number(digits: int) -> int:
    low = 10 ** (digits - 1)
    return low + secrets.randbelow(9 * low)


def create_ticket(
    *,
    digits: int,
    now: datetime,
    **fields: Any,
) -> Ticket:
    """Insert a ticket under a fresh random number, unique even with concurrent writers."""
    db = bound_database()
    for _ in range(NUMBER_ATTEMPTS):
        number = random_number(digits)
        if Ticket.select().where(Ticket.number == number).exists():
            continue
        try:
            with db.atomic():  # savepoint: a clash must not poison the outer transaction
                return Ticket.create(
                    number=number,
                    access_key=new_access_key(),
                    created_at=to_storage(now),
                    updated_at=to_storage(now),
                    **fields,
                )
        except pw.IntegrityError:
            continue
    raise NumberSpaceExhaustedError(f"no free {digits}-digit ticket number after retries")


def add_event(ticket: Ticket, kind: str, actor: str, now: datetime, **data: Any) -> Event:
    return Event.create(
        ticket=ticket, kind=kind, actor=actor or "system", data=data, created_at=to_storage(now)
    )


def add_cc(ticket: Ticket, address: str, actor: str, now: datetime) -> bool:
    address = address.lower()
    if not address or address == ticket.requester:
        return False
    if (
        TicketCC.select()
        .where((TicketCC.ticket == ticket) & (TicketCC.address == address))
        .exists()
    ):
        return False
    TicketCC.create(ticket=ticket, address=address)
    add_event(ticket, "cc_added", actor, now, address=address)
    return True


def remember_message_id(ticket: Ticket, message_id: str | None) -> None:
    if not message_id:
        return
    # One statement, safe against a concurrent writer remembering the same id.
    KnownMessageId.insert(message_id=message_id, ticket=ticket).on_conflict_ignore().execute()


def add_entry(
    ticket: Ticket,
    *,
    kind: str,
    now: datetime,
    author: str = "",
    author_name: str = "",
    message_id: str | None = None,
    inbound: Any = None,
    outcome: str | None = None,
    text: str = "",
    full_text: str = "",
) -> ThreadEntry:
    entry = ThreadEntry.create(
        ticket=ticket,
        kind=kind,
        author=author,
        author_name=author_name,
        message_id=message_id,
        inbound=inbound,
        outcome=outcome,
        text=text,
        full_text=full_text or text,
        created_at=to_storage(now),
    )
    remember_message_id(ticket, message_id)
    return entry


def add_attachment(
    entry: ThreadEntry,
    *,
    filename: str,
    content_type: str,
    size: int,
    sha256: str,
    inline: bool = False,
    content_id: str | None = None,
) -> Attachment:
    return Attachment.create(
        entry=entry,
        filename=filename,
        content_type=content_type,
        size=size,
        sha256=sha256,
        inline=inline,
        content_id=content_id,
    )


def add_refused(
    inbound: Any, entry: ThreadEntry | None, filename: str, reason: str, reason_code: str
) -> RefusedAttachment:
    return RefusedAttachment.create(
        inbound=inbound, entry=entry, filename=filename, reason=reason, reason_code=reason_code
    )


def set_status(ticket: Ticket, status: str, actor: str, now: datetime) -> bool:
    if ticket.status == status:
        return False
    old = ticket.status
    ticket.status = status
    stamp = to_storage(now)
    if status == "resolved":
        ticket.resolved_at = stamp
    elif status == "closed":
        ticket.closed_at = stamp
    elif old in ("resolved", "closed"):
        ticket.resolved_at = None
        ticket.closed_at = None
    # The SLA clock: a waiting period starts and ends with the status; the scheduler
    # folds closed periods into the due times (pause_while_waiting).
    if status == "waiting_customer":
        ticket.waiting_since = stamp
    elif old == "waiting_customer" and ticket.waiting_since is not None:
        start = ticket.waiting_since
        start = start if isinstance(start, datetime) else datetime.fromisoformat(str(start))
        ticket.sla_pauses = [*(ticket.sla_pauses or []), [start.isoformat(), stamp.isoformat()]]
        ticket.waiting_since = None
    add_event(ticket, "status_changed", actor, now, old=old, new=status)
    return True


def set_priority(ticket: Ticket, priority: str, actor: str, now: datetime) -> bool:
    if ticket.priority == priority:
        return False
    old = ticket.priority
    ticket.priority = priority
    add_event(ticket, "priority_changed", actor, now, old=old, new=priority)
    return True


def touch(ticket: Ticket, now: datetime) -> None:
    ticket.updated_at = to_storage(now)
    ticket.save()


def rotate_access_key(ticket: Ticket, actor: str, now: datetime) -> str:
    ticket.access_key = new_access_key()
    add_event(ticket, "link_rotated", actor, now)
    touch(ticket, now)
    return ticket.access_key


def find_active_duplicate(
    normalized_subject: str, requester: str, department: str
) -> Ticket | None:
    if not normalized_subject:
        return None
    return (
        Ticket.select()
        .where(
            (Ticket.normalized_subject == normalized_subject)
            & (Ticket.requester == requester)
            & (Ticket.department == department)
            & (Ticket.status.in_(ACTIVE_STATUSES))
        )
        .order_by(Ticket.id)
        .first()
    )


def find_by_message_ids(message_ids: Iterable[str]) -> Ticket | None:
    ids = [m for m in message_ids if m]
    if not ids:
        return None
    row = (
        KnownMessageId.select(KnownMessageId.ticket)
        .where(KnownMessageId.message_id.in_(ids))
        .order_by(KnownMessageId.id.desc())
        .first()
    )
    return Ticket.get_by_id(row.ticket_id) if row else None


def find_subject_thread(normalized_subject: str, sender: str, department: str) -> Ticket | None:
    """Active ticket of the same sender (requester or CC) in the department, same subject."""
    if not normalized_subject:
        return None
    cc_tickets = TicketCC.select(TicketCC.ticket).where(TicketCC.address == sender)
    return (
        Ticket.select()
        .where(
            (Ticket.normalized_subject == normalized_subject)
            & (Ticket.department == department)
            & (Ticket.status.in_(ACTIVE_STATUSES))
            & ((Ticket.requester == sender) | (Ticket.id.in_(cc_tickets)))
        )
        .order_by(Ticket.id.desc())
        .first()
    )
