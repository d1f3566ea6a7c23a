"""Carry out a policy decision inside the message's transaction.

The ticket change, its thread entry, attachments, events and every outbound
mail the outcome causes are written here, all in the caller's transaction, so a
crash leaves either all of it or none of it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from maild.app import App
from maild.config import Department, Settings
from maild.outbound import MailRequest, queue_mail
from maild.parsers.autoreply import is_robot_address
from maild.parsers.subject import strip_prefixes, strip_token
from maild.policy import types as o
from maild.policy.types import Classified, Decision
from maild.storage import tickets as store
from maild.storage.models import Inbound, Outbox, ThreadEntry, Ticket
from maild.storage.outbox import mark_bounced, start_cooldown
from maild.storage.queries import customer_recipients, ticket_ccs

NO_SUBJECT = {"pt_BR": "(sem assunto)", "en": "(no subject)"}


@dataclass(frozen=True)
class Applied:
    """What applying a decision did: the ticket the message is tied to, and the
    outcome recorded -- the decision's, unless applying found it could not be
    carried out (an agent's mail that applies nothing: ``agent_refused``)."""

    ticket: Ticket | None
    outcome: str
    reason: str | None = None  # why the outcome differs from the decision's


def apply_decision(
    app: App,
    decision: Decision,
    msg: Classified,
    inbound: Inbound,
    ticket: Ticket | None,
    now: datetime,
    *,
    store_files: bool = True,
) -> Applied:
    handler = _HANDLERS[decision.outcome]
    result = handler(_Ctx(app, decision, msg, inbound, ticket, now, store_files))
    if isinstance(result, Applied):
        return result
    return Applied(result, decision.outcome)


class _Ctx:
    """The inputs of one apply, bundled for the small handlers below."""

    def __init__(
        self,
        app: App,
        decision: Decision,
        msg: Classified,
        inbound: Inbound,
        ticket: Ticket | None,
        now: datetime,
        store_files: bool,
    ) -> None:
        self.app = app
        self.settings = app.settings
        self.decision = decision
        self.msg = msg
        self.inbound = inbound
        self.ticket = ticket
        self.now = now
        self.store_files = store_files

    @property
    def language(self) -> str:
        """The desk's language: what agents read."""
        return self.settings.daemon.language

    @functools.cached_property
    def customer_language(self) -> str:
        """The language the customer is answered in: the ticket's, else the one the
        message is written in (among the shipped ones), else the desk's."""
        from maild.policy.language import detect_language
        from maild.render import LANGUAGES

        if self.ticket is not None and self.ticket.language in LANGUAGES:
            return self.ticket.language
        detected = detect_language(self.msg.parsed, self.msg.stripped_text, LANGUAGES)
        return detected or self.language

    def department(self, key: str | None = None) -> Department:
        dept = self.settings.department(key or self.msg.department)
        return dept or self.settings.default_department

    def idem(self, kind: str, suffix: str = "") -> str:
        base = f"{kind}:{self.inbound.id}"
        return f"{base}:{suffix}" if suffix else base

    def reply_refs(self) -> tuple[str | None, tuple[str, ...]]:
        parsed = self.msg.parsed
        refs = tuple(parsed.references)
        if parsed.message_id:
            refs = (*refs, parsed.message_id)
        return parsed.message_id, refs

    def mail(self, **kwargs: Any) -> Outbox | None:
        in_reply_to, refs = self.reply_refs()
        kwargs.setdefault("in_reply_to", in_reply_to)
        kwargs.setdefault("references", refs)
        kwargs.setdefault("subject", self.msg.parsed.subject)
        kwargs.setdefault("recipient_name", self.msg.sender_name)
        return queue_mail(self.settings, self.app.renderer, MailRequest(**kwargs), self.now)

    def notice(
        self,
        template: str,
        ticket: Ticket | None = None,
        *,
        subject: str | None = None,
        capped: bool = True,
        **context: Any,
    ) -> None:
        """One notice to the sender about what became of their message; never to an
        auto-responder. The link is included only when a ticket is named."""
        if not self.can_auto_reply():
            return
        extra: dict[str, Any] = {}
        if subject is not None or ticket is not None:
            extra["subject"] = subject if subject is not None else ticket.subject  # type: ignore[union-attr]
        self.mail(
            idem_key=self.idem("notice"),
            template=template,
            to=(self.msg.sender,),
            department=self.department(ticket.department if ticket is not None else None),
            ticket=ticket,
            link_entitled=ticket is not None,
            context=context,
            language=self.customer_language,
            capped=capped,
            **extra,
        )

    def can_auto_reply(self) -> bool:
        return bool(self.msg.sender) and self.msg.loop_reason is None


# ---------------------------------------------------------------------------
# shared pieces
# ---------------------------------------------------------------------------


def _save_entry(c: _Ctx, ticket: Ticket, kind: str) -> ThreadEntry:
    parsed = c.msg.parsed
    entry = store.add_entry(
        ticket,
        kind=kind,
        now=c.now,
        author=c.msg.sender,
        author_name=c.msg.sender_name,
        message_id=parsed.message_id,
        inbound=c.inbound,
        outcome=c.decision.outcome,
        text=c.msg.stripped_text,
        full_text=parsed.text,
    )
    for att in c.msg.attachments:
        if att.accepted:
            digest = c.app.attachment_store.put(att.payload) if c.store_files else _sha(att.payload)
            store.add_attachment(
                entry,
                filename=att.filename,
                content_type=att.content_type,
                size=len(att.payload),
                sha256=digest,
                inline=att.inline,
                content_id=att.content_id,
            )
        else:
            store.add_refused(
                c.inbound, entry, att.filename, att.reason or "refused", att.reason_code or ""
            )
    return entry


def _sha(data: bytes) -> str:
    from maild.storage.stores import sha256_hex

    return sha256_hex(data)


def _record_refused_without_entry(c: _Ctx) -> None:
    for att in c.msg.refused_attachments:
        store.add_refused(
            c.inbound, None, att.filename, att.reason or "refused", att.reason_code or ""
        )


def _attachments_ctx(c: _Ctx, language: str | None = None) -> dict[str, Any]:
    language = language or c.customer_language
    return {
        "attachments": [
            {"filename": a.filename, "size": len(a.payload)} for a in c.msg.accepted_attachments
        ],
        "refused_attachments": [
            {"filename": a.filename, "reason": refusal_reason(a.reason_code, a.reason, language)}
            for a in c.msg.refused_attachments
        ],
    }


REFUSAL_REASONS = {
    "pt_BR": {
        "extension_not_allowed": "tipo de arquivo não aceito",
        "content_mismatch": "o conteúdo não corresponde à extensão do arquivo",
        "too_large": "arquivo maior que o limite",
        "empty": "arquivo vazio",
        "bad_filename": "nome de arquivo inválido",
    },
    "en": {
        "extension_not_allowed": "file type not accepted",
        "content_mismatch": "the content does not match the file extension",
        "too_large": "file larger than the limit",
        "empty": "empty file",
        "bad_filename": "invalid file name",
    },
}


def refusal_reason(code: str | None, fallback: str | None, language: str) -> str:
    """The reason a file was refused, in the mail's language."""
    return REFUSAL_REASONS.get(language, {}).get(code or "", fallback or "refused")


def _refused_ctx(c: _Ctx) -> list[dict[str, Any]]:
    return _attachments_ctx(c)["refused_attachments"]


def agent_recipients(settings: Settings, ticket: Ticket, exclude: str) -> tuple[str, ...]:
    """Who hears of a ticket's news: its assignee, else the department's agents
    (also when the assignee is no longer an agent in settings.toml), never the
    person whose action it is (``exclude``)."""
    if ticket.assignee and settings.agent(ticket.assignee) is not None:
        to: tuple[str, ...] = (ticket.assignee,)
    else:
        to = tuple(a.email for a in settings.agents_of(ticket.department))
    return tuple(a for a in to if a != exclude)


def _notify_agents(c: _Ctx, ticket: Ticket, event: str, **extra: Any) -> None:
    to = agent_recipients(c.settings, ticket, c.msg.sender)
    if not to:
        return
    context = {
        "event": event,
        "customer_name": c.msg.sender_name,
        "customer_email": c.msg.sender,
        "message_text": c.msg.stripped_text,
        "commands_help": True,
        "rating": None,
        "rating_comment": "",
        **_attachments_ctx(c, c.language),
    }
    context.update(extra)
    c.mail(
        idem_key=c.idem("notify", event),
        template="agent_notification",
        to=to,
        department=c.department(ticket.department),
        ticket=ticket,
        subject=ticket.subject,
        context=context,
        automatic=True,
        capped=False,
        recipient_name="",
    )


def _sla(c: _Ctx) -> dict[str, Any]:
    """Expected first response, and whether we are outside business hours now."""
    from maild import business_time as bt

    try:
        cal = bt.calendar_for(c.settings)
        due = bt.due_for(cal, c.now, c.settings.sla.first_response)
        resolution = bt.due_for(cal, c.now, c.settings.sla.resolution)
        outside = not bt.is_open(cal, c.now)
        nxt = bt.next_opening(cal, c.now) if outside else None
    except ValueError:
        return {
            "due": "",
            "due_at": None,
            "resolution_at": None,
            "outside_hours": False,
            "next_opening": "",
        }
    return {
        "due": bt.format_due(due, c.customer_language),
        "due_at": due,
        "resolution_at": resolution,
        "outside_hours": outside,
        "next_opening": bt.format_due(nxt, c.customer_language) if nxt else "",
    }


# ---------------------------------------------------------------------------
# one handler per outcome
# ---------------------------------------------------------------------------


def _created(c: _Ctx) -> Ticket | Applied | None:
    msg = c.msg
    if msg.is_agent:
        from maild.agents import apply_agent_opening

        return apply_agent_opening(c)
    return create_ticket_for(c, requester=msg.sender, requester_name=msg.sender_name)


def opening_subject(subject: str, prefix: str) -> str:
    """A new ticket's subject: without reply prefixes or another ticket's token
    (a follow-up that opens a new ticket must not carry the old number)."""
    return " ".join(strip_prefixes(strip_token(subject, prefix)).split())[:500]


def create_ticket_for(
    c: _Ctx, *, requester: str, requester_name: str, text: str | None = None
) -> Ticket:
    """Open a ticket for ``requester`` from the message in hand, confirm and notify."""
    msg = c.msg
    dept = c.department()
    sla = _sla(c)
    from maild.storage.models import to_storage

    ticket = store.create_ticket(
        digits=c.settings.tickets.number_digits,
        now=c.now,
        subject=opening_subject(msg.parsed.subject, c.settings.tickets.token_prefix)
        or NO_SUBJECT[c.customer_language],
        normalized_subject=msg.normalized_subject,
        department=dept.key,
        requester=requester,
        requester_name=requester_name,
        priority=msg.priority or "normal",
        language=c.customer_language,
        first_response_due=to_storage(sla["due_at"]) if sla["due_at"] else None,
        resolution_due=to_storage(sla["resolution_at"]) if sla["resolution_at"] else None,
    )
    store.add_event(
        ticket, "created", msg.sender, c.now, department=dept.key, priority=ticket.priority
    )
    left_out = [] if msg.is_agent else add_customer_ccs(c, ticket, msg.parsed.cc)
    entry = _save_entry(c, ticket, "customer")
    if text is not None:
        entry.text = text
        entry.author = requester
        entry.author_name = requester_name
        entry.save()
    requester, ccs = customer_recipients(ticket)
    c.mail(
        idem_key=c.idem("ack"),
        template="confirmation",
        to=(requester,),
        cc=ccs,
        department=dept,
        ticket=ticket,
        subject=ticket.subject,
        context={
            "due": sla["due"],
            "outside_hours": sla["outside_hours"],
            "next_opening": sla["next_opening"],
            "list_link": list_link_for(c.app, ticket, ccs, c.now),
            **_attachments_ctx(c),
        },
    )
    if left_out:
        c.mail(
            idem_key=c.idem("ccs_left_out"),
            template="notice_ccs_left_out",
            to=(requester,),
            department=dept,
            ticket=ticket,
            subject=ticket.subject,
            context={
                "limit": c.settings.limits.max_ccs_per_ticket,
                "left_out": left_out[:MAX_LISTED_LEFT_OUT],
                "more": max(0, len(left_out) - MAX_LISTED_LEFT_OUT),
            },
        )
    _notify_agents(c, ticket, "created")
    return ticket


def list_link_for(app: App, ticket: Ticket, ccs: tuple[str, ...], now: datetime) -> str:
    """The requester's ticket-list link (SPEC §12), for a mail to the requester alone.

    A mail that also goes to CCs carries no list link: it would show each CC the
    requester's other tickets. CCs ask for their own with "meus chamados"."""
    from maild.storage.customers import list_key, list_link

    if ccs:
        return ""
    key = list_key(ticket.requester, now)
    return list_link(app.settings.daemon.base_url, key) if key else ""


# How many left-out addresses the notice and the ticket's event list by name: the
# rest is a count, so a Cc bomb does not become a mail (or a row) of its own size.
MAX_LISTED_LEFT_OUT = 20
MAX_RECORDED_LEFT_OUT = 200


def add_customer_ccs(c: _Ctx, ticket: Ticket, addresses: Sequence[str]) -> list[str]:
    """Add ``addresses`` as the ticket's CCs up to ``limits.max_ccs_per_ticket``;
    return those left out (recorded on the ticket for agents to see).

    Our own addresses, agents and robots are never added and never count: a
    stranger's ``Cc:`` cannot make the desk write to more than the cap.
    """
    own = c.settings.own_addresses
    cap = c.settings.limits.max_ccs_per_ticket
    count = len(ticket_ccs(ticket))
    seen = {ticket.requester.lower()}
    left_out: list[str] = []
    for address in addresses:
        address = address.lower()
        if (
            not address
            or address in seen
            or _base_address(address) in own
            or c.settings.agent(address) is not None
            or is_robot_address(address)
        ):
            continue
        seen.add(address)
        if count >= cap:
            left_out.append(address)
        elif store.add_cc(ticket, address, c.msg.sender, c.now):
            count += 1
    if left_out:
        store.add_event(
            ticket,
            "ccs_left_out",
            c.msg.sender,
            c.now,
            limit=cap,
            count=len(left_out),
            addresses=left_out[:MAX_RECORDED_LEFT_OUT],
        )
    return left_out


def _add_sender_as_cc(c: _Ctx, ticket: Ticket) -> None:
    """A colleague who posts becomes a CC, within the same cap as any other."""
    if c.decision.add_sender_as_cc:
        add_customer_ccs(c, ticket, (c.msg.sender,))


def _base_address(address: str) -> str:
    """``suporte+592110@example.com`` -> ``suporte@example.com`` (our plus-addresses)."""
    local, at, domain = address.lower().partition("@")
    return f"{local.split('+', 1)[0]}{at}{domain}"


def _appended(c: _Ctx) -> Ticket | Applied | None:
    ticket = c.ticket
    assert ticket is not None
    if c.msg.is_agent:
        from maild.agents import apply_agent_message

        return apply_agent_message(c, ticket)
    _add_sender_as_cc(c, ticket)
    _save_entry(c, ticket, "customer")
    store.set_status(ticket, "open", c.msg.sender, c.now)
    store.touch(ticket, c.now)
    _notify_refused(c, ticket)
    _notify_agents(c, ticket, "appended")
    return ticket


def _notify_refused(c: _Ctx, ticket: Ticket) -> None:
    """Tell the sender which files of an added message were refused, and why."""
    if c.msg.refused_attachments and c.can_auto_reply():
        c.mail(
            idem_key=c.idem("refused"),
            template="notice_refused_attachments",
            to=(c.msg.sender,),
            department=c.department(ticket.department),
            ticket=ticket,
            subject=ticket.subject,
            context=_attachments_ctx(c),
        )


def _reopened(c: _Ctx) -> Ticket | None:
    ticket = c.ticket
    assert ticket is not None
    _add_sender_as_cc(c, ticket)
    _save_entry(c, ticket, "customer")
    store.set_status(ticket, "open", c.msg.sender, c.now)
    store.add_event(ticket, "reopened", c.msg.sender, c.now)
    store.touch(ticket, c.now)
    _notify_refused(c, ticket)
    _notify_agents(c, ticket, "reopened")
    return ticket


def _followup_rejected(c: _Ctx) -> Ticket | None:
    ticket = c.ticket
    assert ticket is not None
    store.add_event(ticket, "followup_rejected", c.msg.sender, c.now, status=ticket.status)
    _record_refused_without_entry(c)
    c.notice(
        "notice_followup_rejected",
        ticket,
        policy="closed" if ticket.status == "closed" else "reject",
        new_ticket_address=c.department(ticket.department).addresses[0],
        refused_attachments=_refused_ctx(c),
    )
    return ticket


def _duplicate_subject(c: _Ctx) -> Ticket | None:
    ticket = c.ticket
    assert ticket is not None
    store.add_event(
        ticket,
        "duplicate_subject_rejected",
        c.msg.sender,
        c.now,
        message_id=c.msg.parsed.message_id,
    )
    _record_refused_without_entry(c)
    c.notice("notice_duplicate_subject", ticket, refused_attachments=_refused_ctx(c))
    return ticket


def _empty(c: _Ctx) -> Ticket | None:
    _record_refused_without_entry(c)
    c.notice(
        "notice_empty",
        c.ticket,
        subject=c.msg.parsed.subject,
        original_subject=c.msg.parsed.subject,
        refused_attachments=_refused_ctx(c),
    )
    return c.ticket


def _unauthorized(c: _Ctx) -> Ticket | None:
    ticket = c.ticket
    assert ticket is not None
    store.add_event(ticket, "unauthorized_attempt", c.msg.sender, c.now)
    # Echo the sender's subject without the token: the notice must not even
    # repeat the number of a ticket the sender has no part in.
    subject = strip_token(c.msg.parsed.subject, c.settings.tickets.token_prefix)
    c.notice("notice_unauthorized", None, subject=subject, original_subject=subject)
    return None  # the record must not tie the stranger's message to the ticket


def _auto_reply(c: _Ctx) -> Ticket | None:
    ticket = c.ticket
    if ticket is not None:
        store.add_entry(
            ticket,
            kind="system",
            now=c.now,
            author=c.msg.sender,
            author_name=c.msg.sender_name,
            message_id=c.msg.parsed.message_id,
            inbound=c.inbound,
            outcome=o.AUTO_REPLY_IGNORED,
            text=f"Automatic reply ignored ({c.msg.loop_reason}): {c.msg.parsed.subject}",
            full_text=c.msg.parsed.text,
        )
    return ticket


def _bounce(c: _Ctx) -> Ticket | None:
    msg = c.msg
    row = None
    if msg.bounce_message_id:
        # A delay notice means the remote MTA is still trying: note it on the
        # ticket, but only a permanent failure marks our row bounced.
        if msg.bounce_permanent:
            row = mark_bounced(msg.bounce_message_id)
        else:
            row = Outbox.get_or_none(Outbox.message_id == msg.bounce_message_id)
    ticket = None
    if row is not None and row.ticket_id:
        ticket = Ticket.get_by_id(row.ticket_id)
    ticket = ticket or c.ticket
    recipients = msg.bounce_recipients or (tuple(row.recipients) if row is not None else ())
    if msg.bounce_permanent:
        for address in recipients:
            start_cooldown(address, c.now, reason=f"bounce {msg.bounce_message_id or ''}")
    if ticket is not None:
        note = "Delivery failed" if msg.bounce_permanent else "Delivery delayed"
        store.add_entry(
            ticket,
            kind="system",
            now=c.now,
            author=msg.sender,
            message_id=msg.parsed.message_id,
            inbound=c.inbound,
            outcome=o.BOUNCE,
            text=f"{note} for {', '.join(recipients) or 'unknown recipient'}"
            + (f" (outbox {row.id})" if row is not None else ""),
            full_text=msg.parsed.text,
        )
        store.add_event(
            ticket,
            "bounce",
            "system",
            c.now,
            recipients=list(recipients),
            outbox=row.id if row else None,
        )
        if msg.bounce_permanent:
            _notify_agents(c, ticket, "bounce")
    return ticket


def _unknown_sender(c: _Ctx) -> Ticket | None:
    from maild.pipeline import notice_due

    _record_refused_without_entry(c)
    if c.can_auto_reply() and notice_due(f"unknown:{c.msg.sender}", c.now):
        c.notice(
            "notice_unknown_sender",
            capped=False,  # one per window already
            subject=c.msg.parsed.subject,
            original_subject=c.msg.parsed.subject,
        )
    return None


def _ticket_list(c: _Ctx) -> Ticket | None:
    """The link to the sender's ticket list, to the From address only (SPEC §12)."""
    from maild.storage.customers import list_key, list_link, tickets_query

    address = c.msg.parsed.from_addr
    if not address or not c.can_auto_reply():
        return None
    key = list_key(address, c.now)
    if key is None:
        return None
    c.mail(
        idem_key=c.idem("list"),
        template="ticket_list",
        to=(address,),
        department=c.department(),
        language=c.customer_language,
        context={
            "list_link": list_link(c.settings.daemon.base_url, key),
            "ticket_count": tickets_query(address).count(),
        },
    )
    return None


def _rate_limited(c: _Ctx) -> Ticket | None:
    from maild.pipeline import rate_notice_due

    if c.can_auto_reply() and rate_notice_due(c.msg.sender, c.now):
        # Already one per window: the per-recipient cap of automatic mail (10 an hour,
        # below the 20 messages that trigger this) would otherwise swallow it, and a
        # sender held for flooding would never learn why.
        c.notice(
            "notice_rate_limited",
            capped=False,
            limit=c.settings.limits.max_messages_per_sender_per_hour,
        )
    return None


def _too_large(c: _Ctx) -> Ticket | None:
    limit = c.settings.attachments.max_message_bytes
    if c.inbound.raw.size <= limit:
        limit = c.settings.limits.max_header_bytes  # it was its headers that were too large
    c.notice(
        "notice_too_large",
        limit_bytes=limit,
        size_bytes=c.inbound.raw.size,
        original_subject=c.msg.parsed.subject,
    )
    return None


def _duplicate_message(c: _Ctx) -> Ticket | None:
    original = (
        Inbound.select()
        .where(Inbound.dedupe_key.is_null(False) & (Inbound.message_id == c.msg.parsed.message_id))
        .first()
        if c.msg.parsed.message_id
        else None
    )
    if original is not None and original.ticket_id:
        return Ticket.get_by_id(original.ticket_id)
    return None


def _quarantined(c: _Ctx) -> Ticket | None:
    return None


_HANDLERS = {
    o.QUARANTINED: _quarantined,
    o.CREATED: _created,
    o.APPENDED: _appended,
    o.REOPENED: _reopened,
    o.FOLLOWUP_REJECTED: _followup_rejected,
    o.DUPLICATE_SUBJECT_REJECTED: _duplicate_subject,
    o.EMPTY_REJECTED: _empty,
    o.UNAUTHORIZED: _unauthorized,
    o.AUTO_REPLY_IGNORED: _auto_reply,
    o.BOUNCE: _bounce,
    o.RATE_LIMITED: _rate_limited,
    o.TOO_LARGE: _too_large,
    o.DUPLICATE_MESSAGE: _duplicate_message,
    o.UNKNOWN_SENDER_REJECTED: _unknown_sender,
    o.TICKET_LIST_REQUESTED: _ticket_list,
}
