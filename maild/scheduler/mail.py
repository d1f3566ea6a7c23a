"""The scheduler's mail: each step's message rendered into the outbox, in the step's
transaction, under the step's own key (SPEC §11). Nothing is sent from here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from maild.app import App
from maild.business_time import add_business_time, calendar_for, format_due, parse_duration
from maild.config import Agent
from maild.due_times import policy_for, ticket_state
from maild.outbound import MailRequest, agent_recipients, queue_customer_update, queue_mail
from maild.parsers.subject import format_token
from maild.render import PRIORITY_LABELS, STATUS_LABELS
from maild.scheduler.plan import Step, effective_due
from maild.storage.models import ACTIVE_STATUSES, Outbox, ThreadEntry, Ticket, aware
from maild.storage.queries import (
    customer_recipients,
    rating_links,
    ticket_link,
)


def _local(app: App, value: datetime | None) -> str:
    if value is None:
        return ""
    cal = calendar_for(app.settings)
    return format_due(value.astimezone(cal.tz), app.settings.daemon.language)


def _department(app: App, ticket: Ticket) -> Any:
    settings = app.settings
    return settings.department(ticket.department) or settings.default_department


def sla_mail(
    app: App, ticket: Ticket, template: str, kind: str, step: Step, now: datetime
) -> Outbox | None:
    """A warning (``sla_warning``) or a breach (``sla_escalation``) to the assignee or
    the department's agents; a breach also goes to ``sla.escalate_to``."""
    to = agent_recipients(app.settings, ticket, exclude="")
    if template == "sla_escalation":
        to = tuple(dict.fromkeys((*to, *app.settings.sla.escalate_to)))
    if not to:
        return None
    return queue_mail(
        app.settings,
        app.renderer,
        MailRequest(
            idem_key=step.key,
            template=template,
            to=to,
            department=_department(app, ticket),
            subject=ticket.subject,
            ticket=ticket,
            context={"sla": kind, "due": _local(app, step.due)},
            automatic=True,
            capped=False,
        ),
        now,
    )


def _customer_mail(
    app: App, ticket: Ticket, template: str, key: str, now: datetime, context: dict[str, Any]
) -> Outbox | None:
    return queue_customer_update(
        app.settings,
        app.renderer,
        ticket,
        customer_recipients(ticket),
        idem_key=key,
        template=template,
        department=_department(app, ticket),
        context=context,
        now=now,
    )


def customer_reminder(app: App, ticket: Ticket, step: Step, now: datetime) -> Outbox | None:
    """'We are waiting for your answer', with the day it will be resolved without one."""
    cal = calendar_for(app.settings)
    resolve_at = add_business_time(cal, now, parse_duration(app.settings.tickets.autoresolve_after))
    return _customer_mail(
        app, ticket, "customer_reminder", step.key, now, {"autoresolve_on": _local(app, resolve_at)}
    )


def autoresolved(app: App, ticket: Ticket, step: Step, now: datetime) -> Outbox | None:
    links = rating_links(app.settings.daemon.base_url, ticket)
    return _customer_mail(app, ticket, "autoresolved", step.key, now, {"rating_links": links})


def rating_reminder(app: App, ticket: Ticket, step: Step, now: datetime) -> Outbox | None:
    links = rating_links(app.settings.daemon.base_url, ticket)
    return _customer_mail(app, ticket, "rating_reminder", step.key, now, {"rating_links": links})


def digest_tickets(app: App, agent: Agent, now: datetime) -> list[dict[str, Any]]:
    """An agent's active tickets (assigned to them, or unassigned in their departments):
    breached first, then in order of arrival, each with its next due time."""
    policy = policy_for(app)
    language = app.settings.daemon.language
    query = (
        Ticket.select()
        .where(
            Ticket.status.in_(ACTIVE_STATUSES)
            & (
                (Ticket.assignee == agent.email)
                | (Ticket.assignee.is_null() & Ticket.department.in_(list(agent.departments)))
            )
        )
        .order_by(Ticket.created_at, Ticket.id)
    )
    rows: list[tuple[bool, int, dict[str, Any]]] = []
    for index, ticket in enumerate(query):
        met = (
            ThreadEntry.select()
            .where((ThreadEntry.ticket == ticket) & (ThreadEntry.kind == "agent"))
            .exists()
        )
        state = ticket_state(ticket, met)
        dues = []
        if not met:
            dues.append(effective_due(policy, state.first_response_due, state, now))
        dues.append(effective_due(policy, state.resolution_due, state, now))
        upcoming = min((d for d in dues if d is not None), default=None)
        breached = upcoming is not None and upcoming <= now
        dept = app.settings.department(ticket.department)
        item = {
            "number": ticket.number,
            "subject": ticket.subject,
            "status_label": STATUS_LABELS[language].get(ticket.status, ticket.status),
            "priority_label": PRIORITY_LABELS[language].get(ticket.priority, ticket.priority),
            "department": dept.name if dept else ticket.department,
            "created_at": _local(app, aware(ticket.created_at)),
            "due": _local(app, upcoming),
            "breached": breached,
            "link": ticket_link(app.settings.daemon.base_url, ticket),
        }
        rows.append((not breached, index, item))
    return [item for _b, _i, item in sorted(rows, key=lambda r: (r[0], r[1]))]


def digest(app: App, agent: Agent, key: str, now: datetime) -> int:
    """The morning digest to one agent; returns how many tickets it lists (0: no mail)."""
    items = digest_tickets(app, agent, now)
    if not items:
        return 0

    prefix = app.settings.tickets.token_prefix
    for item in items:
        item["token"] = format_token(item["number"], prefix)
    department = app.settings.department(agent.departments[0]) if agent.departments else None
    subject = {"pt_BR": "Seus chamados em aberto", "en": "Your open tickets"}[
        app.settings.daemon.language
    ]
    queue_mail(
        app.settings,
        app.renderer,
        MailRequest(
            idem_key=key,
            template="agent_digest",
            to=(agent.email,),
            department=department or app.settings.default_department,
            subject=f"{subject} ({len(items)})",
            ticket=None,
            context={
                "agent_name": agent.name,
                "date": _local(app, now),
                "tickets": items,
                "breached_count": sum(1 for i in items if i["breached"]),
            },
            automatic=True,
            capped=False,
            link_entitled=False,
        ),
        now,
    )
    return len(items)
