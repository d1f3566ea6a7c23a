"""Units of work that change a ticket from its page: reply, close, rate.

Like ``maild.web.data``, each runs in a worker thread through ``data.run_db``.
A reply goes through the inbound pipeline as an emailed reply would; closing
and rating write the ticket and its event in one transaction and tell the
agents by mail.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from maild.app import App
from maild.outbound import MailRequest, agent_recipients, queue_mail
from maild.pipeline import ingest
from maild.records import IngestResult
from maild.status_mail import queue_status_change
from maild.storage import tickets
from maild.storage.db import write_transaction
from maild.storage.models import RefusedAttachment, Ticket
from maild.web.access import parse_number
from maild.web.data import DONE_STATUSES, department_of, find_ticket
from maild.web.links import RATING_STARS, page_path
from maild.web.reply import SOURCE, build_reply

MAX_RATING_COMMENT = 2000

# Close and rating tell the agents with ``agent_notification``; the close has no
# event of its own in that template, so it says what happened in ``message_text``.
CLOSED_TEXT = {
    "pt_BR": "O cliente encerrou o chamado pela página do chamado.",
    "en": "The customer closed the ticket on the ticket page.",
}


@dataclass(frozen=True)
class ReplyOutcome:
    """What a reply from the page did, and where the customer goes next."""

    result: IngestResult
    path: str  # the page to go back to (a new ticket's page when the reply opened one)
    refused_files: int = 0  # uploaded files the attachment policy refused


def _write_transaction(app: App) -> Any:
    """A write transaction; on SQLite taken up front so concurrent writers queue."""
    return write_transaction(app.db)


def post_reply(
    app: App, number_text: str, key: str, text: str, files: tuple[tuple[str, bytes], ...] = ()
) -> ReplyOutcome | None:
    """Send the page's reply through the inbound pipeline, as an emailed reply would go."""
    ticket = find_ticket(number_text, key)
    if ticket is None:
        return None
    settings = app.settings
    if settings.agent(ticket.requester) is not None:
        return ReplyOutcome(
            IngestResult(outcome="unauthorized", ticket=ticket.number, message_id=None),
            page_path(ticket),
        )
    raw = build_reply(
        requester=ticket.requester,
        requester_name=ticket.requester_name,
        department_address=department_of(app, ticket).addresses[0],
        number=ticket.number,
        subject=ticket.subject,
        token_prefix=settings.tickets.token_prefix,
        text=text,
        message_id_domain=settings.message_id_domain,
        now=app.clock.now(),
        files=files,
    )
    result = ingest(app, raw, source=SOURCE)
    path = page_path(ticket)
    if result.ticket is not None and result.ticket != ticket.number:
        other = Ticket.get_or_none(Ticket.number == result.ticket)
        if other is not None and other.requester == ticket.requester:
            path = page_path(other)
    refused = (
        RefusedAttachment.select().where(RefusedAttachment.inbound == result.inbound_id).count()
        if result.inbound_id is not None
        else 0
    )
    return ReplyOutcome(result, path, refused)


def _mail_agents(app: App, ticket: Ticket, event_id: int, event: str, **context: Any) -> None:
    settings = app.settings
    to = agent_recipients(settings, ticket, ticket.requester)
    if not to:
        return
    full_context: dict[str, Any] = {
        "event": event,
        "customer_name": ticket.requester_name,
        "customer_email": ticket.requester,
        "message_text": "",
        "attachments": [],
        "refused_attachments": [],
        "commands_help": False,
        "rating": None,
        "rating_comment": "",
        **context,
    }
    queue_mail(
        settings,
        app.renderer,
        MailRequest(
            idem_key=f"web-{event}:{ticket.id}:{event_id}",
            template="agent_notification",
            to=to,
            department=department_of(app, ticket),
            ticket=ticket,
            subject=ticket.subject,
            context=full_context,
            automatic=True,
            capped=False,
        ),
        app.clock.now(),
    )


def close_ticket(app: App, number_text: str, key: str) -> str | None:
    """The customer closes the ticket (status ``resolved``); agents are told, and the
    customer gets the ``resolved`` mail (with the rating links) like any resolution.

    Returns a flash code, or None when the link names no ticket.
    """
    now = app.clock.now()
    with _write_transaction(app):
        ticket = find_ticket(number_text, key, lock=True)
        if ticket is None:
            return None
        if ticket.status in DONE_STATUSES:
            return "already_closed"
        old_status = ticket.status
        tickets.set_status(ticket, "resolved", ticket.requester, now)
        tickets.touch(ticket, now)
        event = tickets.add_event(ticket, "closed_by_customer", ticket.requester, now, via=SOURCE)
        # The requester and CCs get the ``resolved`` mail with the rating links.
        queue_status_change(
            app,
            ticket,
            old_status,
            "resolved",
            now,
            idem_key=f"web-status:{ticket.id}:{event.id}",
            actor=ticket.requester,
        )
        language = app.settings.daemon.language
        _mail_agents(app, ticket, event.id, "closed", message_text=CLOSED_TEXT[language])
    return "closed"


def parse_stars(text: str) -> int | None:
    """The rating the form names (1-5), or None."""
    number = parse_number(text.strip())
    return number if number in RATING_STARS else None


def rate_ticket(app: App, number_text: str, key: str, stars_text: str, comment: str) -> str | None:
    """Record the customer's 1–5 rating of a resolved ticket; agents are told.

    Returns a flash code, or None when the link names no ticket. A new rating
    replaces the earlier one; each is an event.
    """
    now = app.clock.now()
    stars = parse_stars(stars_text)
    comment = comment.strip()[:MAX_RATING_COMMENT]
    with _write_transaction(app):
        ticket = find_ticket(number_text, key, lock=True)
        if ticket is None:
            return None
        if ticket.status not in DONE_STATUSES:
            return "rate_not_allowed"
        if stars is None:
            return "rate_invalid"
        ticket.rating = stars
        ticket.rating_comment = comment or None
        tickets.touch(ticket, now)
        event = tickets.add_event(
            ticket, "rated", ticket.requester, now, rating=stars, comment=comment, via=SOURCE
        )
        _mail_agents(app, ticket, event.id, "rating", rating=stars, rating_comment=comment)
    return "rated"
