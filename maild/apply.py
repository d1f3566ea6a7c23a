"""Carry out a policy decision inside the message's transaction: one handler per outcome.

The ticket change, its thread entry, attachments, events and every outbound
mail the outcome causes are written here, all in the caller's transaction, so a
crash leaves either all of it or none of it. The steps the handlers share are in
``maild.apply_steps``; an agent's mail is carried out by ``maild.agents``.
"""

from __future__ import annotations

from datetime import datetime

from maild.agents import apply_agent_message, apply_agent_opening, refuse
from maild.app import App
from maild.apply_steps import (
    Applied,
    ApplyContext,
    add_customer_ccs,
    attachments_context,
    create_ticket_for,
    mail_agents,
    record_refused_without_entry,
    refused_context,
    save_entry,
)
from maild.parsers.subject import strip_token
from maild.policy import types as outcomes
from maild.policy.types import Classified, Decision
from maild.storage import tickets
from maild.storage.customers import list_key, list_link, tickets_query
from maild.storage.models import Inbound, Outbox, Ticket
from maild.storage.outbox import mark_bounced, start_cooldown
from maild.storage.queries import notice_due


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
    result = handler(ApplyContext(app, decision, msg, inbound, ticket, now, store_files))
    if isinstance(result, Applied):
        return result
    return Applied(result, decision.outcome)


# ---------------------------------------------------------------------------
# one handler per outcome
# ---------------------------------------------------------------------------


def _created(ctx: ApplyContext) -> Ticket | Applied | None:
    msg = ctx.msg
    if msg.is_agent:
        return apply_agent_opening(ctx)
    return create_ticket_for(ctx, requester=msg.sender, requester_name=msg.sender_name)


def _add_sender_as_cc(ctx: ApplyContext, ticket: Ticket) -> None:
    """A colleague who posts becomes a CC, within the same cap as any other."""
    if ctx.decision.add_sender_as_cc:
        add_customer_ccs(ctx, ticket, (ctx.msg.sender,))


def _appended(ctx: ApplyContext) -> Ticket | Applied | None:
    ticket = ctx.ticket
    assert ticket is not None
    if ctx.msg.is_agent:
        return apply_agent_message(ctx, ticket)
    _add_sender_as_cc(ctx, ticket)
    save_entry(ctx, ticket, "customer")
    tickets.set_status(ticket, "open", ctx.msg.sender, ctx.now)
    tickets.touch(ticket, ctx.now)
    _mail_refused_files(ctx, ticket)
    mail_agents(ctx, ticket, "appended")
    return ticket


def _mail_refused_files(ctx: ApplyContext, ticket: Ticket) -> None:
    """Tell the sender which files of an added message were refused, and why."""
    if ctx.msg.refused_attachments and ctx.can_auto_reply():
        ctx.mail(
            idem_key=ctx.idem("refused"),
            template="notice_refused_attachments",
            to=(ctx.msg.sender,),
            department=ctx.department(ticket.department),
            ticket=ticket,
            subject=ticket.subject,
            context=attachments_context(ctx),
        )


def _reopened(ctx: ApplyContext) -> Ticket | None:
    ticket = ctx.ticket
    assert ticket is not None
    _add_sender_as_cc(ctx, ticket)
    save_entry(ctx, ticket, "customer")
    tickets.set_status(ticket, "open", ctx.msg.sender, ctx.now)
    tickets.add_event(ticket, "reopened", ctx.msg.sender, ctx.now)
    tickets.touch(ticket, ctx.now)
    _mail_refused_files(ctx, ticket)
    mail_agents(ctx, ticket, "reopened")
    return ticket


def _followup_rejected(ctx: ApplyContext) -> Ticket | None:
    ticket = ctx.ticket
    assert ticket is not None
    tickets.add_event(ticket, "followup_rejected", ctx.msg.sender, ctx.now, status=ticket.status)
    record_refused_without_entry(ctx)
    ctx.notice(
        "notice_followup_rejected",
        ticket,
        policy="closed" if ticket.status == "closed" else "reject",
        new_ticket_address=ctx.department(ticket.department).addresses[0],
        refused_attachments=refused_context(ctx),
    )
    return ticket


def _duplicate_subject(ctx: ApplyContext) -> Ticket | None:
    ticket = ctx.ticket
    assert ticket is not None
    tickets.add_event(
        ticket,
        "duplicate_subject_rejected",
        ctx.msg.sender,
        ctx.now,
        message_id=ctx.msg.parsed.message_id,
    )
    record_refused_without_entry(ctx)
    ctx.notice("notice_duplicate_subject", ticket, refused_attachments=refused_context(ctx))
    return ticket


def _empty(ctx: ApplyContext) -> Ticket | None:
    record_refused_without_entry(ctx)
    ctx.notice(
        "notice_empty",
        ctx.ticket,
        subject=ctx.msg.parsed.subject,
        original_subject=ctx.msg.parsed.subject,
        refused_attachments=refused_context(ctx),
    )
    return ctx.ticket


def _unauthorized(ctx: ApplyContext) -> Ticket | None:
    ticket = ctx.ticket
    assert ticket is not None
    tickets.add_event(ticket, "unauthorized_attempt", ctx.msg.sender, ctx.now)
    # Echo the sender's subject without the token: the notice must not even
    # repeat the number of a ticket the sender has no part in.
    subject = strip_token(ctx.msg.parsed.subject, ctx.settings.tickets.token_prefix)
    ctx.notice("notice_unauthorized", None, subject=subject, original_subject=subject)
    return None  # the record must not tie the stranger's message to the ticket


def _auto_reply(ctx: ApplyContext) -> Ticket | None:
    ticket = ctx.ticket
    if ticket is not None:
        tickets.add_entry(
            ticket,
            kind="system",
            now=ctx.now,
            author=ctx.msg.sender,
            author_name=ctx.msg.sender_name,
            message_id=ctx.msg.parsed.message_id,
            inbound=ctx.inbound,
            outcome=outcomes.AUTO_REPLY_IGNORED,
            text=f"Automatic reply ignored ({ctx.msg.loop_reason}): {ctx.msg.parsed.subject}",
            full_text=ctx.msg.parsed.text,
        )
    return ticket


def _bounce(ctx: ApplyContext) -> Ticket | None:
    msg = ctx.msg
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
    ticket = ticket or ctx.ticket
    recipients = msg.bounce_recipients or (tuple(row.recipients) if row is not None else ())
    if msg.bounce_permanent:
        for address in recipients:
            start_cooldown(address, ctx.now, reason=f"bounce {msg.bounce_message_id or ''}")
    if ticket is not None:
        note = "Delivery failed" if msg.bounce_permanent else "Delivery delayed"
        tickets.add_entry(
            ticket,
            kind="system",
            now=ctx.now,
            author=msg.sender,
            message_id=msg.parsed.message_id,
            inbound=ctx.inbound,
            outcome=outcomes.BOUNCE,
            text=f"{note} for {', '.join(recipients) or 'unknown recipient'}"
            + (f" (outbox {row.id})" if row is not None else ""),
            full_text=msg.parsed.text,
        )
        tickets.add_event(
            ticket,
            "bounce",
            "system",
            ctx.now,
            recipients=list(recipients),
            outbox=row.id if row else None,
        )
        if msg.bounce_permanent:
            mail_agents(ctx, ticket, "bounce")
    return ticket


def _unknown_sender(ctx: ApplyContext) -> Ticket | None:
    record_refused_without_entry(ctx)
    if ctx.can_auto_reply() and notice_due(f"unknown:{ctx.msg.sender}", ctx.now):
        ctx.notice(
            "notice_unknown_sender",
            capped=False,  # one per window already
            subject=ctx.msg.parsed.subject,
            original_subject=ctx.msg.parsed.subject,
        )
    return None


def _ticket_list(ctx: ApplyContext) -> Ticket | None:
    """The link to the sender's ticket list, to the From address only (SPEC §12)."""
    address = ctx.msg.parsed.from_addr
    if not address or not ctx.can_auto_reply():
        return None
    key = list_key(address, ctx.now)
    if key is None:
        return None
    ctx.mail(
        idem_key=ctx.idem("list"),
        template="ticket_list",
        to=(address,),
        department=ctx.department(),
        language=ctx.customer_language,
        context={
            "list_link": list_link(ctx.settings.daemon.base_url, key),
            "ticket_count": tickets_query(address).count(),
        },
    )
    return None


def _rate_limited(ctx: ApplyContext) -> Ticket | None:
    if ctx.can_auto_reply() and notice_due(ctx.msg.sender, ctx.now):
        # Already one per window: the per-recipient cap of automatic mail (10 an hour,
        # below the 20 messages that trigger this) would otherwise swallow it, and a
        # sender held for flooding would never learn why.
        ctx.notice(
            "notice_rate_limited",
            capped=False,
            limit=ctx.settings.limits.max_messages_per_sender_per_hour,
        )
    return None


def _too_large(ctx: ApplyContext) -> Ticket | None:
    limit = ctx.settings.attachments.max_message_bytes
    if ctx.inbound.raw.size <= limit:
        limit = ctx.settings.limits.max_header_bytes  # it was its headers that were too large
    ctx.notice(
        "notice_too_large",
        limit_bytes=limit,
        size_bytes=ctx.inbound.raw.size,
        original_subject=ctx.msg.parsed.subject,
    )
    return None


def _duplicate_message(ctx: ApplyContext) -> Ticket | None:
    original = (
        Inbound.select()
        .where(
            Inbound.dedupe_key.is_null(False) & (Inbound.message_id == ctx.msg.parsed.message_id)
        )
        .first()
        if ctx.msg.parsed.message_id
        else None
    )
    if original is not None and original.ticket_id:
        return Ticket.get_by_id(original.ticket_id)
    return None


def _quarantined(ctx: ApplyContext) -> Ticket | None:
    return None


def _agent_refused(ctx: ApplyContext) -> Applied:
    assert ctx.decision.reason is not None
    return refuse(ctx, ctx.ticket, ctx.decision.reason)


_HANDLERS = {
    outcomes.QUARANTINED: _quarantined,
    outcomes.CREATED: _created,
    outcomes.APPENDED: _appended,
    outcomes.REOPENED: _reopened,
    outcomes.FOLLOWUP_REJECTED: _followup_rejected,
    outcomes.DUPLICATE_SUBJECT_REJECTED: _duplicate_subject,
    outcomes.EMPTY_REJECTED: _empty,
    outcomes.UNAUTHORIZED: _unauthorized,
    outcomes.AUTO_REPLY_IGNORED: _auto_reply,
    outcomes.BOUNCE: _bounce,
    outcomes.RATE_LIMITED: _rate_limited,
    outcomes.TOO_LARGE: _too_large,
    outcomes.DUPLICATE_MESSAGE: _duplicate_message,
    outcomes.UNKNOWN_SENDER_REJECTED: _unknown_sender,
    outcomes.TICKET_LIST_REQUESTED: _ticket_list,
    outcomes.AGENT_REFUSED: _agent_refused,
}
