"""Database units of work that read for the ticket page, each run in a worker thread.

Those that change a ticket (reply, close, rate) are in ``maild.web.actions``.

peewee is synchronous and its connections are per thread, so every function
here is called through ``run_db``: one worker thread, one
``connection_context()``, one unit of work. They return plain frozen data, never
lazy models, so rendering in the event loop never touches the database.

Customer-visible thread: ``customer`` and ``agent`` entries. Internal notes are
never shown; system entries are hidden too, because they are written for agents
(delivery reports, ignored auto-replies) and may name other addresses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from maild.app import App
from maild.config import Department
from maild.due_times import due_times
from maild.parsers.subject import format_token
from maild.render import LANGUAGES, PRIORITY_LABELS, STATUS_LABELS, refusal_reason
from maild.storage.binding import bound_database
from maild.storage.db import for_update
from maild.storage.models import Attachment, RefusedAttachment, ThreadEntry, Ticket, aware
from maild.storage.queries import thread
from maild.web.access import key_matches, parse_number, plausible_key
from maild.web.links import page_path

T = TypeVar("T")

VISIBLE_KINDS: tuple[str, ...] = ("customer", "agent")
DONE_STATUSES: tuple[str, ...] = ("resolved", "closed")

# Reply form modes: what a reply from the page does (mirrors the followup rule).
REPLY_APPEND = "append"
REPLY_REOPEN = "reopen"
REPLY_NEW_TICKET = "new_ticket"
# The requester is one of our agents: a reply from the page would carry the
# agent's authority (commands, relaying) to whoever holds the link, CCs included.
REPLY_BY_MAIL = "mail"


@dataclass(frozen=True)
class AttachmentView:
    id: int
    filename: str
    content_type: str
    size: int
    url: str


@dataclass(frozen=True)
class RefusedView:
    filename: str
    reason: str


@dataclass(frozen=True)
class EntryView:
    id: int
    kind: str
    author: str
    created_at: datetime
    text: str
    full_text: str
    attachments: tuple[AttachmentView, ...]
    refused: tuple[RefusedView, ...]

    @property
    def shows_full(self) -> bool:
        """Whether the whole message adds anything to the stripped text."""
        return bool(self.full_text.strip()) and self.full_text.strip() != self.text.strip()


@dataclass(frozen=True)
class PageView:
    number: int
    key: str
    path: str
    token: str
    subject: str
    status: str
    status_label: str
    priority: str
    priority_label: str
    department: str
    department_address: str
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    closed_at: datetime | None
    rating: int | None
    rating_comment: str
    entries: tuple[EntryView, ...]
    reply_mode: str | None  # None: replies are refused; the page offers a new ticket
    can_close: bool
    can_rate: bool
    language: str = "pt_BR"  # the ticket's: the page is shown in it
    first_response_due: datetime | None = None  # SPEC §11: shown while ahead
    resolution_due: datetime | None = None


def ticket_language(app: App, ticket: Ticket) -> str:
    return ticket.language if ticket.language in LANGUAGES else app.settings.daemon.language


@dataclass(frozen=True)
class FileData:
    filename: str
    content_type: str
    content: bytes


async def run_db(app: App, fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(app, *args)`` in a worker thread with its own connection."""

    def unit() -> T:
        with app.db.connection_context():
            return fn(app, *args)

    return await asyncio.to_thread(unit)


def find_ticket(number_text: str, key: str, *, lock: bool = False) -> Ticket | None:
    """The ticket the link names, or None for a wrong number or key alike.

    ``lock`` takes the row lock on PostgreSQL (SQLite's IMMEDIATE transaction
    already serializes writers), so two clicks cannot both close or rate.
    """
    number = parse_number(number_text)
    if number is None or not plausible_key(key):
        return None
    query = Ticket.select().where(Ticket.number == number)
    if lock:
        query = for_update(query, bound_database())
    ticket = query.first()
    if not key_matches(key, ticket.access_key if ticket is not None else None):
        return None
    return ticket


def find_ticket_language(app: App, number_text: str, key: str) -> str | None:
    """The language of the ticket the link names, or None (wrong link)."""
    ticket = find_ticket(number_text, key)
    return ticket_language(app, ticket) if ticket is not None else None


def department_of(app: App, ticket: Ticket) -> Department:
    return app.settings.department(ticket.department) or app.settings.default_department


def reply_mode(status: str, followup_policy: str, requester_is_agent: bool = False) -> str | None:
    """What a customer reply does on a ticket in ``status`` (SPEC §3 follow-ups)."""
    if requester_is_agent:
        return REPLY_BY_MAIL
    if status == "closed":
        return None
    if status == "resolved":
        return {"reopen": REPLY_REOPEN, "new_ticket": REPLY_NEW_TICKET}.get(followup_policy)
    return REPLY_APPEND


def _author(app: App, entry: ThreadEntry, department: Department) -> str:
    if entry.kind == "agent":
        agent = app.settings.agent(entry.author) if entry.author else None
        return entry.author_name or (agent.name if agent else "") or department.name
    return entry.author_name or entry.author


def _entry_view(app: App, ticket: Ticket, entry: ThreadEntry, department: Department) -> EntryView:
    language = ticket_language(app, ticket)
    attachments = tuple(
        AttachmentView(
            id=a.id,
            filename=a.filename,
            content_type=a.content_type,
            size=a.size,
            url=f"{page_path(ticket)}/a/{a.id}/{_url_name(a.filename)}",
        )
        for a in Attachment.select().where(Attachment.entry == entry).order_by(Attachment.id)
    )
    refused = tuple(
        RefusedView(r.filename, refusal_reason(r.reason_code, r.reason, language))
        for r in RefusedAttachment.select()
        .where(RefusedAttachment.entry == entry)
        .order_by(RefusedAttachment.id)
    )
    return EntryView(
        id=entry.id,
        kind=entry.kind,
        author=_author(app, entry, department),
        created_at=aware(entry.created_at),  # type: ignore[arg-type]
        text=entry.text,
        # An agent's whole message holds their commands, signature and the quoted
        # internal notification: customers see only what was relayed (SPEC §3, §6).
        full_text=entry.full_text if entry.kind == "customer" else entry.text,
        attachments=attachments,
        refused=refused,
    )


def _url_name(filename: str) -> str:
    from urllib.parse import quote

    return quote(filename, safe="") or "file"


def load_page(app: App, number_text: str, key: str) -> PageView | None:
    ticket = find_ticket(number_text, key)
    if ticket is None:
        return None
    settings = app.settings
    language = ticket_language(app, ticket)
    department = department_of(app, ticket)
    entries = tuple(
        _entry_view(app, ticket, entry, department)
        for entry in thread(ticket, include_notes=False)
        if entry.kind in VISIBLE_KINDS
    )
    return PageView(
        number=ticket.number,
        key=ticket.access_key,
        path=page_path(ticket),
        token=format_token(ticket.number, settings.tickets.token_prefix),
        subject=ticket.subject,
        status=ticket.status,
        status_label=STATUS_LABELS[language].get(ticket.status, ticket.status),
        priority=ticket.priority,
        priority_label=PRIORITY_LABELS[language].get(ticket.priority, ticket.priority),
        department=department.name,
        department_address=department.addresses[0],
        created_at=aware(ticket.created_at),  # type: ignore[arg-type]
        updated_at=aware(ticket.updated_at),  # type: ignore[arg-type]
        resolved_at=aware(ticket.resolved_at),
        closed_at=aware(ticket.closed_at),
        rating=ticket.rating,
        rating_comment=ticket.rating_comment or "",
        entries=entries,
        reply_mode=reply_mode(
            ticket.status,
            department.followup_on_resolved,
            settings.agent(ticket.requester) is not None,
        ),
        can_close=ticket.status not in DONE_STATUSES,
        can_rate=ticket.status in DONE_STATUSES,
        language=language,
        **_due_times(app, ticket),
    )


def _due_times(app: App, ticket: Ticket) -> dict[str, datetime | None]:
    first, resolution = due_times(app, ticket, app.clock.now())
    return {"first_response_due": first, "resolution_due": resolution}


def load_attachment(app: App, number_text: str, key: str, attachment_text: str) -> FileData | None:
    """A file of a customer-visible entry of the linked ticket, or None."""
    ticket = find_ticket(number_text, key)
    attachment_id = parse_number(attachment_text)
    if ticket is None or attachment_id is None:
        return None
    row = (
        Attachment.select(Attachment, ThreadEntry)
        .join(ThreadEntry)
        .where(
            (Attachment.id == attachment_id)
            & (ThreadEntry.ticket == ticket)
            & (ThreadEntry.kind.in_(VISIBLE_KINDS))
        )
        .first()
    )
    if row is None:
        return None
    try:
        content = app.attachment_store.get(row.sha256)
    except OSError:
        return None
    return FileData(row.filename, row.content_type, content)


def ping(app: App) -> None:
    """Raise unless the database answers ``SELECT 1``."""
    app.db.execute_sql("SELECT 1").fetchone()
