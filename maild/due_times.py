"""A ticket's SLA due times as they stand (SPEC §11), read from the database.

The scheduler's runner and mail, the outbound mail's ticket context, the listings
and the web page all ask this module; it imports none of them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from maild.app import App
from maild.business_time import calendar_for
from maild.config import Settings
from maild.scheduler.plan import ACTIVE, Policy, TicketState, effective_due
from maild.storage.models import ThreadEntry, Ticket, aware


def policy_for(app: App) -> Policy:
    return Policy.from_settings(app.settings, calendar_for(app.settings))


def ticket_state(ticket: Ticket, met: bool) -> TicketState:
    pauses = tuple(
        (
            datetime.fromisoformat(a).replace(tzinfo=UTC),
            datetime.fromisoformat(b).replace(tzinfo=UTC),
        )
        for a, b in (ticket.sla_pauses or [])
    )
    return TicketState(
        id=ticket.id,
        status=ticket.status,
        created_at=aware(ticket.created_at),  # type: ignore[arg-type]
        first_response_due=aware(ticket.first_response_due),
        resolution_due=aware(ticket.resolution_due),
        first_response_met=met,
        waiting_since=aware(ticket.waiting_since),
        pauses=pauses,
        resolved_at=aware(ticket.resolved_at),
        rated=ticket.rating is not None,
    )


def agent_replied(ticket_ids: list[int]) -> set[int]:
    if not ticket_ids:
        return set()
    rows = (
        ThreadEntry.select(ThreadEntry.ticket)
        .where((ThreadEntry.kind == "agent") & ThreadEntry.ticket.in_(ticket_ids))
        .distinct()
        .tuples()
    )
    return {r[0] for r in rows}


def due_times(app: App, ticket: Ticket, now: datetime) -> tuple[datetime | None, datetime | None]:
    """(first-response due, resolution due) still ahead of the ticket, moved by its
    waiting periods; None once met (first agent reply; resolution)."""
    return due_times_for(app.settings, ticket, now)


def due_times_for(
    settings: Settings, ticket: Ticket, now: datetime
) -> tuple[datetime | None, datetime | None]:
    policy = Policy.from_settings(settings, calendar_for(settings))
    met = bool(agent_replied([ticket.id]))
    state = ticket_state(ticket, met)
    active = ticket.status in ACTIVE
    first = effective_due(policy, state.first_response_due, state, now)
    resolution = effective_due(policy, state.resolution_due, state, now)
    return (first if active and not met else None), (resolution if active else None)


def due_summary(app: App, ticket: Ticket, now: datetime) -> dict[str, Any]:
    """A ticket's SLA due times as listings show them: ``first_response_due`` until
    the first agent reply, ``resolution_due`` while the ticket is active (ISO 8601
    in the desk's time zone, moved by waiting periods), and ``overdue``."""
    first, resolution = due_times(app, ticket, now)
    tz = calendar_for(app.settings).tz
    return {
        "first_response_due": first.astimezone(tz).isoformat() if first else None,
        "resolution_due": resolution.astimezone(tz).isoformat() if resolution else None,
        "overdue": any(d is not None and d <= now for d in (first, resolution)),
    }
