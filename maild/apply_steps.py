"""The pieces every outcome handler of the apply stage shares.

``ApplyContext`` bundles the inputs of one apply (settings, decision, message, its
inbound row, the ticket, ``now``) with the mail it may queue; the functions below
write a thread entry, open a ticket, mail the agents. ``maild.apply`` (one handler
per outcome) and ``maild.agents`` (agent mail, SPEC §5) both build on this module,
and neither imports the other's internals.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from maild import business_time
from maild.app import App
from maild.config import Department
from maild.outbound import MailRequest, agent_recipients, queue_mail
from maild.parsers.autoreply import is_robot_address
from maild.parsers.subject import strip_prefixes, strip_token
from maild.policy.language import detect_language
from maild.policy.types import Classified, Decision
from maild.render import LANGUAGES, refusal_reason
from maild.storage import tickets
from maild.storage.customers import list_key, list_link
from maild.storage.models import Inbound, Outbox, ThreadEntry, Ticket, to_storage
from maild.storage.queries import customer_recipients, ticket_ccs
from maild.storage.stores import sha256_hex

NO_SUBJECT = {"pt_BR": "(sem assunto)", "en": "(no subject)"}


@dataclass(frozen=True)
class Applied:
    """What applying a decision did: the ticket the message is tied to, and the
    outcome recorded -- the decision's, unless applying found it could not be
    carried out (an agent's mail that applies nothing: ``agent_refused``)."""

    ticket: Ticket | None
    outcome: str
    reason: str | None = None  # why the outcome differs from the decision's


class ApplyContext:
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


def save_entry(ctx: ApplyContext, ticket: Ticket, kind: str) -> ThreadEntry:
    parsed = ctx.msg.parsed
    entry = tickets.add_entry(
        ticket,
        kind=kind,
        now=ctx.now,
        author=ctx.msg.sender,
        author_name=ctx.msg.sender_name,
        message_id=parsed.message_id,
        inbound=ctx.inbound,
        outcome=ctx.decision.outcome,
        text=ctx.msg.stripped_text,
        full_text=parsed.text,
    )
    for att in ctx.msg.attachments:
        if att.accepted:
            payload = att.payload
            store_file = ctx.app.attachment_store.put
            digest = store_file(payload) if ctx.store_files else sha256_hex(payload)
            tickets.add_attachment(
                entry,
                filename=att.filename,
                content_type=att.content_type,
                size=len(att.payload),
                sha256=digest,
                inline=att.inline,
                content_id=att.content_id,
            )
        else:
            tickets.add_refused(
                ctx.inbound, entry, att.filename, att.reason or "refused", att.reason_code or ""
            )
    return entry


def record_refused_without_entry(ctx: ApplyContext) -> None:
    for att in ctx.msg.refused_attachments:
        tickets.add_refused(
            ctx.inbound, None, att.filename, att.reason or "refused", att.reason_code or ""
        )


def attachments_context(ctx: ApplyContext, language: str | None = None) -> dict[str, Any]:
    language = language or ctx.customer_language
    return {
        "attachments": [
            {"filename": a.filename, "size": len(a.payload)} for a in ctx.msg.accepted_attachments
        ],
        "refused_attachments": [
            {"filename": a.filename, "reason": refusal_reason(a.reason_code, a.reason, language)}
            for a in ctx.msg.refused_attachments
        ],
    }


def refused_context(ctx: ApplyContext) -> list[dict[str, Any]]:
    return attachments_context(ctx)["refused_attachments"]


def mail_agents(ctx: ApplyContext, ticket: Ticket, event: str, **extra: Any) -> None:
    to = agent_recipients(ctx.settings, ticket, ctx.msg.sender)
    if not to:
        return
    context = {
        "event": event,
        "customer_name": ctx.msg.sender_name,
        "customer_email": ctx.msg.sender,
        "message_text": ctx.msg.stripped_text,
        "commands_help": True,
        "rating": None,
        "rating_comment": "",
        **attachments_context(ctx, ctx.language),
    }
    context.update(extra)
    ctx.mail(
        idem_key=ctx.idem("notify", event),
        template="agent_notification",
        to=to,
        department=ctx.department(ticket.department),
        ticket=ticket,
        subject=ticket.subject,
        context=context,
        automatic=True,
        capped=False,
        recipient_name="",
    )


def sla_context(ctx: ApplyContext) -> dict[str, Any]:
    """Expected first response, and whether we are outside business hours now."""
    try:
        cal = business_time.calendar_for(ctx.settings)
        due = business_time.due_for(cal, ctx.now, ctx.settings.sla.first_response)
        resolution = business_time.due_for(cal, ctx.now, ctx.settings.sla.resolution)
        outside = not business_time.is_open(cal, ctx.now)
        nxt = business_time.next_opening(cal, ctx.now) if outside else None
    except ValueError:
        return {
            "due": "",
            "due_at": None,
            "resolution_at": None,
            "outside_hours": False,
            "next_opening": "",
        }
    return {
        "due": business_time.format_due(due, ctx.customer_language),
        "due_at": due,
        "resolution_at": resolution,
        "outside_hours": outside,
        "next_opening": business_time.format_due(nxt, ctx.customer_language) if nxt else "",
    }


def opening_subject(subject: str, prefix: str) -> str:
    """A new ticket's subject: without reply prefixes or another ticket's token
    (a follow-up that opens a new ticket must not carry the old number)."""
    return " ".join(strip_prefixes(strip_token(subject, prefix)).split())[:500]


def create_ticket_for(
    ctx: ApplyContext, *, requester: str, requester_name: str, text: str | None = None
) -> Ticket:
    """Open a ticket for ``requester`` from the message in hand; confirm it and mail the agents."""
    msg = ctx.msg
    dept = ctx.department()
    sla = sla_context(ctx)
    ticket = tickets.create_ticket(
        digits=ctx.settings.tickets.number_digits,
        now=ctx.now,
        subject=opening_subject(msg.parsed.subject, ctx.settings.tickets.token_prefix)
        or NO_SUBJECT[ctx.customer_language],
        normalized_subject=msg.normalized_subject,
        department=dept.key,
        requester=requester,
        requester_name=requester_name,
        priority=msg.priority or "normal",
        language=ctx.customer_language,
        first_response_due=to_storage(sla["due_at"]) if sla["due_at"] else None,
        resolution_due=to_storage(sla["resolution_at"]) if sla["resolution_at"] else None,
    )
    tickets.add_event(
        ticket, "created", msg.sender, ctx.now, department=dept.key, priority=ticket.priority
    )
    left_out = [] if msg.is_agent else add_customer_ccs(ctx, ticket, msg.parsed.cc)
    entry = save_entry(ctx, ticket, "customer")
    if text is not None:
        entry.text = text
        entry.author = requester
        entry.author_name = requester_name
        entry.save()
    _confirm(ctx, ticket, sla, left_out)
    mail_agents(ctx, ticket, "created")
    return ticket


def _confirm(ctx: ApplyContext, ticket: Ticket, sla: dict[str, Any], left_out: list[str]) -> None:
    """The confirmation of a new ticket, and the notice of the CCs left out."""
    msg, dept = ctx.msg, ctx.department(ticket.department)
    # A new ticket's CCs are the ones just added from the message, if it had any.
    requester, ccs = customer_recipients(ticket) if msg.parsed.cc else (ticket.requester, ())
    ctx.mail(
        idem_key=ctx.idem("ack"),
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
            "list_link": list_link_for(ctx.app, ticket, ccs, ctx.now),
            **attachments_context(ctx),
        },
    )
    if left_out:
        ctx.mail(
            idem_key=ctx.idem("ccs_left_out"),
            template="notice_ccs_left_out",
            to=(requester,),
            department=dept,
            ticket=ticket,
            subject=ticket.subject,
            context={
                "limit": ctx.settings.limits.max_ccs_per_ticket,
                "left_out": left_out[:MAX_LISTED_LEFT_OUT],
                "more": max(0, len(left_out) - MAX_LISTED_LEFT_OUT),
            },
        )


def list_link_for(app: App, ticket: Ticket, ccs: tuple[str, ...], now: datetime) -> str:
    """The requester's ticket-list link (SPEC §12), for a mail to the requester alone.

    A mail that also goes to CCs carries no list link: it would show each CC the
    requester's other tickets. CCs ask for their own with "meus chamados"."""
    if ccs:
        return ""
    key = list_key(ticket.requester, now)
    return list_link(app.settings.daemon.base_url, key) if key else ""


# How many left-out addresses the notice and the ticket's event list by name: the
# rest is a count, so a Cc bomb does not become a mail (or a row) of its own size.
MAX_LISTED_LEFT_OUT = 20
MAX_RECORDED_LEFT_OUT = 200


def add_customer_ccs(ctx: ApplyContext, ticket: Ticket, addresses: Sequence[str]) -> list[str]:
    """Add ``addresses`` as the ticket's CCs up to ``limits.max_ccs_per_ticket``;
    return those left out (recorded on the ticket for agents to see).

    Our own addresses, agents and robots are never added and never count: a
    stranger's ``Cc:`` cannot make the desk write to more than the cap.
    """
    if not addresses:
        return []
    own = ctx.settings.own_addresses
    cap = ctx.settings.limits.max_ccs_per_ticket
    count = len(ticket_ccs(ticket))
    seen = {ticket.requester.lower()}
    left_out: list[str] = []
    for address in addresses:
        address = address.lower()
        if (
            not address
            or address in seen
            or _base_address(address) in own
            or ctx.settings.agent(address) is not None
            or is_robot_address(address)
        ):
            continue
        seen.add(address)
        if count >= cap:
            left_out.append(address)
        elif tickets.add_cc(ticket, address, ctx.msg.sender, ctx.now):
            count += 1
    if left_out:
        tickets.add_event(
            ticket,
            "ccs_left_out",
            ctx.msg.sender,
            ctx.now,
            limit=cap,
            count=len(left_out),
            addresses=left_out[:MAX_RECORDED_LEFT_OUT],
        )
    return left_out


def _base_address(address: str) -> str:
    """``suporte+592110@example.com`` -> ``suporte@example.com`` (our plus-addresses)."""
    local, at, domain = address.lower().partition("@")
    return f"{local.split('+', 1)[0]}{at}{domain}"
