"""Read-side queries and their JSON shapes (SPEC §7 field names).

Listings and ``tickets show`` are built here so that the CLI, the web view and
tests all see one representation of a ticket.
"""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from typing import Any

import peewee as pw
from maild.storage.models import (
    ACTIVE_STATUSES,
    Attachment,
    Event,
    Inbound,
    Outbox,
    RateWindowNotice,
    RefusedAttachment,
    ThreadEntry,
    Ticket,
    TicketCC,
    aware,
    to_storage,
)


def iso(dt: datetime | None, tz: tzinfo | None = None) -> str | None:
    value = aware(dt)
    if value is None:
        return None
    return (value.astimezone(tz) if tz else value).isoformat()


def ticket_link(base_url: str, ticket: Ticket) -> str:
    return f"{base_url.rstrip('/')}/t/{ticket.number}/{ticket.access_key}"


RATING_STARS: tuple[int, ...] = (1, 2, 3, 4, 5)


def rating_links(base_url: str, ticket: Ticket) -> list[dict[str, Any]]:
    """One ``{stars, url}`` per star count, for the ``resolved`` mail.

    The URL only opens the page with the stars pre-selected (mail scanners
    prefetch links, so a GET never records anything); a POST there confirms.
    """
    link = ticket_link(base_url, ticket)
    return [{"stars": n, "url": f"{link}?rate={n}"} for n in RATING_STARS]


def ticket_ccs(ticket: Ticket) -> list[str]:
    return [
        row.address
        for row in TicketCC.select().where(TicketCC.ticket == ticket).order_by(TicketCC.id)
    ]


def customer_recipients(ticket: Ticket) -> tuple[str, tuple[str, ...]]:
    """(requester, CCs): who hears from us about a ticket."""
    return ticket.requester, tuple(ticket_ccs(ticket))


# How many of the ticket's customer Message-IDs go into References.
MAX_REFERENCES = 10


def customer_thread_refs(ticket: Ticket) -> tuple[str | None, tuple[str, ...]]:
    """(In-Reply-To, References) for mail to the customer: their own messages,
    the first and the latest ones, so their client threads ours beneath them."""
    ids = [
        entry.message_id
        for entry in ThreadEntry.select(ThreadEntry.message_id)
        .where(
            (ThreadEntry.ticket == ticket)
            & (ThreadEntry.kind == "customer")
            & ThreadEntry.message_id.is_null(False)
        )
        .order_by(ThreadEntry.id)
    ]
    if not ids:
        return None, ()
    refs = ids[:1] + ids[1:][-(MAX_REFERENCES - 1) :]
    return ids[-1], tuple(dict.fromkeys(refs))


def list_tickets(
    *,
    status: str | None = None,
    pending: bool = False,
    answered: bool = False,
    department: str | None = None,
    requester: str | None = None,
    month: tuple[datetime, datetime] | None = None,
) -> list[Ticket]:
    """Oldest first: tickets are served in order of arrival."""
    query = Ticket.select()
    statuses: set[str] | None = None
    if status:
        statuses = {status}
    if pending:
        statuses = (statuses or set(ACTIVE_STATUSES)) & {"open", "in_progress"}
    if answered:
        statuses = (statuses if statuses is not None else {"waiting_customer"}) & {
            "waiting_customer"
        }
    if statuses is not None:
        query = query.where(Ticket.status.in_(sorted(statuses)) if statuses else pw.SQL("1=0"))
    if department:
        query = query.where(Ticket.department == department)
    if requester:  # as requester or as CC: every ticket the address is on
        as_cc = TicketCC.select(TicketCC.ticket).where(TicketCC.address == requester.lower())
        query = query.where((Ticket.requester == requester.lower()) | Ticket.id.in_(as_cc))
    if month:
        query = query.where((Ticket.created_at >= month[0]) & (Ticket.created_at < month[1]))
    return list(query.order_by(Ticket.created_at, Ticket.id))


def message_count(ticket: Ticket) -> int:
    return ThreadEntry.select().where(ThreadEntry.ticket == ticket).count()


def ticket_json(ticket: Ticket, base_url: str, tz: tzinfo | None = None) -> dict[str, Any]:
    return {
        "number": ticket.number,
        "subject": ticket.subject,
        "status": ticket.status,
        "priority": ticket.priority,
        "department": ticket.department,
        "requester": ticket.requester,
        "cc": ticket_ccs(ticket),
        "assignee": ticket.assignee,
        "created_at": iso(ticket.created_at, tz),
        "updated_at": iso(ticket.updated_at, tz),
        "message_count": message_count(ticket),
        "link": ticket_link(base_url, ticket),
    }


def entry_json(entry: ThreadEntry, tz: tzinfo | None = None) -> dict[str, Any]:
    attachments = Attachment.select().where(Attachment.entry == entry).order_by(Attachment.id)
    refused = (
        RefusedAttachment.select()
        .where(RefusedAttachment.entry == entry)
        .order_by(RefusedAttachment.id)
    )
    return {
        "id": entry.id,
        "kind": entry.kind,
        "author": entry.author,
        "message_id": entry.message_id,
        "outcome": entry.outcome,
        "text": entry.text,
        "created_at": iso(entry.created_at, tz),
        "attachments": [
            {
                "filename": a.filename,
                "content_type": a.content_type,
                "size": a.size,
                "sha256": a.sha256,
            }
            for a in attachments
        ],
        "refused_attachments": [{"filename": r.filename, "reason": r.reason} for r in refused],
    }


def thread(ticket: Ticket, *, include_notes: bool = True) -> list[ThreadEntry]:
    query = ThreadEntry.select().where(ThreadEntry.ticket == ticket)
    if not include_notes:
        query = query.where(ThreadEntry.kind != "note")
    return list(query.order_by(ThreadEntry.created_at, ThreadEntry.id))


def ticket_detail_json(ticket: Ticket, base_url: str, tz: tzinfo | None = None) -> dict[str, Any]:
    data = ticket_json(ticket, base_url, tz)
    data["thread"] = [entry_json(e, tz) for e in thread(ticket)]
    data["events"] = [
        {
            "kind": ev.kind,
            "actor": ev.actor,
            "data": ev.data,
            "created_at": iso(ev.created_at, tz),
        }
        for ev in Event.select().where(Event.ticket == ticket).order_by(Event.created_at, Event.id)
    ]
    return data


def outbox_json(row: Outbox, tz: tzinfo | None = None) -> dict[str, Any]:
    return {
        "id": row.id,
        "status": row.status,
        "template": row.template,
        "ticket": row.ticket.number if row.ticket_id else None,
        "recipients": row.recipients,
        "subject": row.subject,
        "message_id": row.message_id,
        "attempts": row.attempts,
        "next_attempt_at": iso(row.next_attempt_at, tz),
        "last_error": row.last_error,
        "created_at": iso(row.created_at, tz),
        "sent_at": iso(row.sent_at, tz),
    }


def inbound_json(row: Inbound, tz: tzinfo | None = None) -> dict[str, Any]:
    return {
        "id": row.id,
        "state": row.state,
        "outcome": row.outcome,
        "source": row.source,
        "message_id": row.message_id,
        "sender": row.sender,
        "subject": row.subject,
        "ticket": row.ticket.number if row.ticket_id else None,
        "detail": row.detail,
        "attempts": row.attempts,
        "sha256": row.raw.sha256,
        "received_at": iso(row.received_at, tz),
    }


def notice_due(key: str, now: datetime) -> bool:
    """True (and the window started) when no notice under ``key`` went out in the
    past hour. The rate-limit notice uses the bare address (the same sliding hour the
    limit counts, so a held sender is told once per window); others a prefixed key."""
    key = key[:320]
    stamp = to_storage(now)
    since = to_storage(now - timedelta(hours=1))
    if (
        RateWindowNotice.select()
        .where((RateWindowNotice.address == key) & (RateWindowNotice.window_start > since))
        .exists()
    ):
        return False
    RateWindowNotice.create(address=key, window_start=stamp)
    return True
