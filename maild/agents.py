"""Agents by email (SPEC §5): carry out what an agent's mail asks for.

Sole purpose: inside the apply stage's transaction, turn one mail from an agent
into ticket changes and outbound mail:

* a reply on a ticket (``apply_agent_message``): the ``#command`` lines at the top
  are applied, each as an event with the agent as actor, and the rest is appended
  and relayed to requester + CCs, or kept internal with ``#note``. One invalid
  command applies nothing and relays nothing; the agent gets an error mail naming
  the line and the valid forms.
* an opening without a ticket reference (``apply_agent_opening``): a forward opens
  the ticket for the forwarded message's sender (``parsers.forward``), who gets the
  confirmation; anything else opens it for the agent.
* refusals: a token naming no ticket, or a ticket of a department the agent is not
  in (and not assigned to), change nothing and get an error mail.

Choices written down here:

* An agent may open tickets in any department (forwarding a customer's mail to
  ``financeiro@`` is a hand-off, not a mistake); acting on an existing ticket needs
  membership of its department or being its assignee.
* ``#department`` drops an assignee who is not in the new department, so the
  ticket's notifications go to the department that now owns it.
* The forwarded customer is the requester, the thread entry's author and the
  confirmation's addressee; the ``created`` event names the forwarding agent.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from maild.apply_steps import Applied, ApplyContext, create_ticket_for, list_link_for, save_entry
from maild.config import Agent, Settings
from maild.parsers.commands import VALID_FORMS
from maild.parsers.forward import Forward, extract_forward
from maild.parsers.subject import format_token, normalize_subject
from maild.policy import types as outcomes
from maild.policy.commands import Change, Problem
from maild.policy.rules.agent_refused import COMMAND, DEPARTMENT, UNKNOWN_TICKET
from maild.status_mail import queue_status_change
from maild.storage import tickets
from maild.storage.models import Event, Ticket
from maild.storage.queries import customer_recipients, customer_thread_refs

TEMPLATE_ERROR = "notice_agent_error"
EML_SUFFIX = ".eml"

# Kinds of error mail, passed to the template as ``error_kind``.
ERROR_COMMAND = COMMAND
ERROR_UNKNOWN_TICKET = UNKNOWN_TICKET
ERROR_DEPARTMENT = DEPARTMENT

_HELP_SUFFIX = "; valid commands:"

_MESSAGES: dict[str, dict[str, str]] = {
    "pt_BR": {
        "subject_line": "Assunto: {subject}",
        "unknown_ticket": (
            "o chamado {token} não existe; nada foi aplicado. Responda a partir da "
            "notificação do chamado certo, ou escreva sem número para abrir um novo."
        ),
        "department": (
            "o chamado {token} é do departamento {department}, do qual você não faz parte; "
            "nada foi aplicado."
        ),
        "unknown_agent": "agente desconhecido {value!r} (agentes: {known})",
        "ambiguous_agent": "{value!r} corresponde a mais de um agente ({matches})",
        "unknown_department": "departamento desconhecido {value!r} (departamentos: {known})",
        "also_invalid": "também inválidas: {lines}",
    },
    "en": {
        "subject_line": "Subject: {subject}",
        "unknown_ticket": (
            "ticket {token} does not exist; nothing was applied. Reply from the right "
            "ticket's notification, or write without a number to open a new one."
        ),
        "department": (
            "ticket {token} belongs to the {department} department, which you are not in; "
            "nothing was applied."
        ),
        "unknown_agent": "unknown agent {value!r} (agents: {known})",
        "ambiguous_agent": "{value!r} matches more than one agent ({matches})",
        "unknown_department": "unknown department {value!r} (departments: {known})",
        "also_invalid": "also invalid: {lines}",
    },
}


def agent_trust_warning(settings: Settings) -> str | None:
    """The start-up warning when agents are recognized by their From address alone."""
    if not settings.agents or settings.agents_auth.require != "from":
        return None
    return (
        "agents are trusted by their From address alone: anyone can forge "
        f"From: {settings.agents[0].email} and act as an agent; set "
        'agents_auth.require = "authentication-results" and '
        "agents_auth.trusted_authserv_id to the receiving server's authserv-id"
    )


# ---------------------------------------------------------------------------
# opening
# ---------------------------------------------------------------------------


def apply_agent_opening(ctx: ApplyContext) -> Ticket | Applied:
    """An agent wrote to a department address without a ticket reference.

    A forward opens the ticket for the forwarded message's sender; anything
    else opens it for the agent. (A token naming no ticket was refused by the
    policy: see ``refuse``.)
    """
    forward = _usable_forward(ctx)
    if forward is None:
        return create_ticket_for(ctx, requester=ctx.msg.sender, requester_name=ctx.msg.sender_name)
    return _open_for_forwarded_sender(ctx, forward)


def _usable_forward(ctx: ApplyContext) -> Forward | None:
    try:
        raw = ctx.app.raw_store.get(ctx.inbound.raw.sha256)
    except OSError:
        raw = b""  # a dry run keeps no raw bytes: inline forwards are still found
    forward = extract_forward(ctx.msg.parsed, raw)
    if forward is None:
        return None
    if forward.address in ctx.settings.own_addresses or forward.address == ctx.msg.sender:
        return None  # a forwarded notification of ours, or the agent's own mail
    return forward


def _open_for_forwarded_sender(ctx: ApplyContext, forward: Forward) -> Ticket:
    """Open the ticket as if the customer had written, but name the agent as its author."""
    agent = ctx.msg.sender
    subject = forward.subject or ctx.msg.parsed.subject
    attachments = ctx.msg.attachments
    if forward.attached:  # the forwarded .eml itself is not a file of the customer's
        attachments = tuple(a for a in attachments if not a.filename.lower().endswith(EML_SUFFIX))
    as_customer = copy.copy(ctx)
    as_customer.msg = dataclasses.replace(
        ctx.msg,
        parsed=dataclasses.replace(ctx.msg.parsed, subject=subject),
        normalized_subject=normalize_subject(subject, ctx.settings.tickets.token_prefix),
        sender=forward.address,
        sender_name=forward.name,
        stripped_text=forward.text,
        attachments=attachments,
    )
    ticket = create_ticket_for(
        as_customer, requester=forward.address, requester_name=forward.name, text=forward.text
    )
    # create_ticket_for names the message's sender as the actor; here that is the agent.
    created = Event.get((Event.ticket == ticket) & (Event.kind == "created"))
    created.actor = agent
    created.data = {**(created.data or {}), "forwarded_by": agent}
    created.save()
    return ticket


# ---------------------------------------------------------------------------
# reply on a ticket
# ---------------------------------------------------------------------------


def apply_agent_message(ctx: ApplyContext, ticket: Ticket) -> Ticket:
    """An agent's mail on ``ticket``: apply its commands, append it, relay it.
    (Mail that may apply nothing was refused by the policy: see ``refuse``.)"""
    checked = ctx.msg.commands
    assert checked is not None and not checked.problems
    agent = ctx.settings.agent(ctx.msg.sender)
    actor = ctx.msg.sender
    old_status = ticket.status
    status_set = False
    for change in checked.changes:
        status_set = _apply_change(ctx, ticket, change, actor) or status_set

    body = checked.body
    has_files = bool(ctx.msg.accepted_attachments)
    if body or has_files:
        entry = save_entry(ctx, ticket, "note" if checked.internal else "agent")
        entry.text = body
        entry.save()
    relay = (bool(body) or has_files) and not checked.internal
    if relay and not status_set:
        tickets.set_status(ticket, "waiting_customer", actor, ctx.now)
    tickets.touch(ticket, ctx.now)
    if relay:
        _relay(ctx, ticket, body, agent)
    # A command changed the status: the customer hears of it (resolved asks for a
    # rating) -- unless a relayed reply leaves it waiting, which says so already.
    relayed_waiting = relay and ticket.status == "waiting_customer"
    if status_set and ticket.status != old_status and not relayed_waiting:
        queue_status_change(
            ctx.app, ticket, old_status, ticket.status, ctx.now, ctx.idem("status"), actor
        )
    return ticket


def _short(message: str) -> str:
    """A parser message without its list of valid forms (the template lists them)."""
    return message.split(_HELP_SUFFIX, 1)[0]


def _text(ctx: ApplyContext, key: str, **values: Any) -> str:
    table = _MESSAGES.get(ctx.language, _MESSAGES["en"])
    return table[key].format(**values)


def _apply_change(ctx: ApplyContext, ticket: Ticket, change: Change, actor: str) -> bool:
    """Apply one validated change with its event; True when it set the status."""
    value = change.value
    if change.kind == "status" and value:
        tickets.set_status(ticket, value, actor, ctx.now)
        return True
    if change.kind == "priority" and value:
        tickets.set_priority(ticket, value, actor, ctx.now)
    elif change.kind == "assign":
        _assign(ctx, ticket, value, actor)
    elif change.kind == "department" and value and ticket.department != value:
        tickets.add_event(
            ticket, "department_changed", actor, ctx.now, old=ticket.department, new=value
        )
        ticket.department = value
        assignee = ctx.settings.agent(ticket.assignee) if ticket.assignee else None
        if assignee is not None and value not in assignee.departments:
            _assign(ctx, ticket, None, actor)
    return False


def _assign(ctx: ApplyContext, ticket: Ticket, value: str | None, actor: str) -> None:
    if ticket.assignee == value:
        return
    tickets.add_event(ticket, "assigned", actor, ctx.now, old=ticket.assignee, new=value)
    ticket.assignee = value


def _relay(ctx: ApplyContext, ticket: Ticket, body: str, agent: Agent | None) -> None:
    requester, ccs = customer_recipients(ticket)
    in_reply_to, references = customer_thread_refs(ticket)
    ctx.mail(
        idem_key=ctx.idem("relay"),
        template="agent_reply",
        to=(requester,),
        cc=ccs,
        department=ctx.department(ticket.department),
        ticket=ticket,
        subject=ticket.subject,
        automatic=False,
        recipient_name=ticket.requester_name,
        in_reply_to=in_reply_to,
        references=references,
        context={
            "message_text": body,
            "list_link": list_link_for(ctx.app, ticket, ccs, ctx.now),
            "agent_name": agent.name if agent else ctx.msg.sender_name,
            "attachments": [
                {"filename": a.filename, "size": len(a.payload)}
                for a in ctx.msg.accepted_attachments
            ],
        },
    )


# ---------------------------------------------------------------------------
# error mail to the agent
# ---------------------------------------------------------------------------


def refuse(ctx: ApplyContext, ticket: Ticket | None, reason: str) -> Applied:
    """Nothing is applied (the policy's ``agent-refused`` rule): the agent gets an
    error mail, and the record says ``agent_refused`` and why."""
    if reason == ERROR_UNKNOWN_TICKET:
        assert ctx.msg.token_number is not None
        _refuse_unknown_ticket(ctx, ctx.msg.token_number)
        return Applied(None, outcomes.AGENT_REFUSED, reason)
    assert ticket is not None
    if reason == ERROR_DEPARTMENT:
        _refuse_department(ctx, ticket)
    else:
        assert ctx.msg.commands is not None
        errors = [(p.line, _problem_text(ctx, p)) for p in ctx.msg.commands.problems]
        _refuse_commands(ctx, ticket, errors)
    return Applied(ticket, outcomes.AGENT_REFUSED, reason)


def _problem_text(ctx: ApplyContext, problem: Problem) -> str:
    if problem.key is None:
        return _short(problem.text)
    return _text(ctx, problem.key, **problem.values)


def _refuse_commands(ctx: ApplyContext, ticket: Ticket, errors: list[tuple[str, str]]) -> None:
    (line, message), rest = errors[0], errors[1:]
    if rest:
        others = ", ".join(repr(other) for other, _ in rest)
        message = f"{message}; {_text(ctx, 'also_invalid', lines=others)}"
    tickets.add_event(
        ticket, "agent_command_error", ctx.msg.sender, ctx.now, line=line, error=message
    )
    _error_mail(ctx, ticket, ERROR_COMMAND, line, message)


def _refuse_unknown_ticket(ctx: ApplyContext, number: int) -> None:
    token = format_token(number, ctx.settings.tickets.token_prefix)
    line = _text(ctx, "subject_line", subject=ctx.msg.parsed.subject)
    _error_mail(ctx, None, ERROR_UNKNOWN_TICKET, line, _text(ctx, "unknown_ticket", token=token))


def _refuse_department(ctx: ApplyContext, ticket: Ticket) -> None:
    dept = ctx.settings.department(ticket.department)
    token = format_token(ticket.number, ctx.settings.tickets.token_prefix)
    message = _text(
        ctx, "department", token=token, department=dept.name if dept else ticket.department
    )
    tickets.add_event(ticket, "agent_refused", ctx.msg.sender, ctx.now, reason=ERROR_DEPARTMENT)
    line = _text(ctx, "subject_line", subject=ctx.msg.parsed.subject)
    # ticket=None: the agent has no business with this ticket, so no link to it.
    _error_mail(ctx, None, ERROR_DEPARTMENT, line, message)


def _error_mail(
    ctx: ApplyContext, ticket: Ticket | None, kind: str, line: str, message: str
) -> None:
    ctx.mail(
        idem_key=ctx.idem("agent-error"),
        template=TEMPLATE_ERROR,
        to=(ctx.msg.sender,),
        department=ctx.department(ticket.department if ticket else None),
        ticket=ticket,
        subject=ticket.subject if ticket else ctx.msg.parsed.subject,
        automatic=True,
        capped=False,
        link_entitled=ticket is not None,
        recipient_name=ctx.msg.sender_name,
        context={
            "error_kind": kind,
            "error_line": line,
            "error_message": message,
            "valid_forms": list(VALID_FORMS),
            "original_subject": ctx.msg.parsed.subject,
        },
    )
