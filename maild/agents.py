"""Agents by email (SPEC §5): a reply from an agent is appended and relayed to
the customer; command lines at its top are applied first, atomically."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from parsers.commands import parse_commands
from storage import tickets as store
from storage.models import Ticket

if TYPE_CHECKING:
    from maild.apply import _Ctx

STATUS_BY_COMMAND = {"close": "resolved"}


def _resolve_assignee(c: _Ctx, value: str) -> str | None:
    value = value.strip()
    if value.lower() == "me":
        return c.msg.sender
    agent = c.settings.agent(value)
    if agent is not None:
        return agent.email
    for candidate in c.settings.agents:
        if candidate.name.casefold() == value.casefold():
            return candidate.email
    return None


def apply_agent_opening(c: _Ctx) -> Ticket:
    """An agent wrote to a department address without a ticket reference.

    A forward opens the ticket for the forwarded message's sender; anything
    else opens it for the agent.
    """
    from maild.apply import create_ticket_for

    return create_ticket_for(c, requester=c.msg.sender, requester_name=c.msg.sender_name)


def apply_agent_message(c: _Ctx, ticket: Ticket) -> Ticket:
    from maild.apply import _save_entry, customer_recipients

    parsed_cmds = parse_commands(c.msg.stripped_text)
    errors = [(e.line, e.message) for e in parsed_cmds.errors]
    changes: list[tuple[str, Any]] = []
    internal = False
    for cmd in parsed_cmds.commands:
        if cmd.name == "note":
            internal = True
        elif cmd.name == "close":
            changes.append(("status", "resolved"))
        elif cmd.name == "status":
            changes.append(("status", cmd.value))
        elif cmd.name == "priority":
            changes.append(("priority", cmd.value))
        elif cmd.name == "assign":
            who = _resolve_assignee(c, cmd.value or "")
            if who is None:
                errors.append((cmd.line, f"unknown agent {cmd.value!r}"))
            else:
                changes.append(("assign", who))
        elif cmd.name == "department":
            if c.settings.department(cmd.value or "") is None:
                known = ", ".join(d.key for d in c.settings.departments)
                errors.append((cmd.line, f"unknown department {cmd.value!r} (known: {known})"))
            else:
                changes.append(("department", cmd.value))
    if errors:
        line, message = errors[0]
        store.add_event(
            ticket, "agent_command_error", c.msg.sender, c.now, line=line, error=message
        )
        c.mail(
            idem_key=c.idem("agent-error"),
            template="notice_agent_error",
            to=(c.msg.sender,),
            department=c.department(ticket.department),
            ticket=ticket,
            subject=ticket.subject,
            automatic=True,
            capped=False,
            context={
                "error_line": line,
                "error_message": message,
                "valid_forms": VALID_FORMS,
                "original_subject": c.msg.parsed.subject,
            },
        )
        return ticket

    body = parsed_cmds.body.strip()
    actor = c.msg.sender
    status_set = False
    for kind, value in changes:
        if kind == "status":
            store.set_status(ticket, value, actor, c.now)
            status_set = True
        elif kind == "priority":
            store.set_priority(ticket, value, actor, c.now)
        elif kind == "assign" and ticket.assignee != value:
            store.add_event(ticket, "assigned", actor, c.now, old=ticket.assignee, new=value)
            ticket.assignee = value
        elif kind == "department" and ticket.department != value:
            store.add_event(
                ticket, "department_changed", actor, c.now, old=ticket.department, new=value
            )
            ticket.department = value

    relay = bool(body) and not internal
    if body or c.msg.accepted_attachments:
        entry_kind = "note" if internal else "agent"
        entry = _save_entry(c, ticket, entry_kind)
        entry.text = body
        entry.save()
    if relay and not status_set:
        store.set_status(ticket, "waiting_customer", actor, c.now)
    store.touch(ticket, c.now)
    if relay:
        requester, ccs = customer_recipients(ticket)
        agent = c.settings.agent(c.msg.sender)
        c.mail(
            idem_key=c.idem("relay"),
            template="agent_reply",
            to=(requester,),
            cc=ccs,
            department=c.department(ticket.department),
            ticket=ticket,
            subject=ticket.subject,
            automatic=False,
            recipient_name=ticket.requester_name,
            in_reply_to=_last_customer_message_id(ticket),
            references=(),
            context={
                "message_text": body,
                "agent_name": agent.name if agent else c.msg.sender_name,
                "attachments": [
                    {"filename": a.filename, "size": len(a.payload)}
                    for a in c.msg.accepted_attachments
                ],
            },
        )
    return ticket


def _last_customer_message_id(ticket: Ticket) -> str | None:
    from storage.models import ThreadEntry

    entry = (
        ThreadEntry.select()
        .where(
            (ThreadEntry.ticket == ticket)
            & (ThreadEntry.kind == "customer")
            & ThreadEntry.message_id.is_null(False)
        )
        .order_by(ThreadEntry.id.desc())
        .first()
    )
    return entry.message_id if entry else None


VALID_FORMS = [
    "#status open|in_progress|waiting|resolved|closed",
    "#priority low|normal|high|urgent (baixa|media|alta|urgente)",
    "#assign <agent email or name>|me",
    "#department <key>",
    "#note",
    "#close",
]
