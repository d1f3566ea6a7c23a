"""What the database knows about a message: the facts the policy decides on
(SPEC §3), looked up inside the message's transaction. No decision is taken here:
the choices (a stranger on weak evidence, the successor of a resolved ticket,
duplicates) are rules of ``maild.policy.table``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from maild.app import App
from maild.policy import access
from maild.policy import types as outcomes
from maild.policy.types import Classified, Decision, PolicyContext, TicketView
from maild.storage.customers import has_tickets, is_known
from maild.storage.db import advisory_xact_lock, for_update, is_postgres
from maild.storage.models import Inbound, Ticket, to_storage
from maild.storage.queries import ticket_ccs
from maild.storage.tickets import find_active_duplicate, find_by_message_ids, find_subject_thread


def dedupe_key(message_id: str | None, sha: str) -> str:
    return f"mid:{message_id}" if message_id else f"sha:{sha}"


@dataclass
class Facts:
    """The policy's context and the ticket rows it names, by number."""

    context: PolicyContext
    tickets: dict[int, Ticket] = field(default_factory=dict)

    def ticket_of(self, decision: Decision) -> Ticket | None:
        """The row of the ticket ``decision`` acts on."""
        return self.tickets[decision.ticket.number] if decision.ticket is not None else None


def find_thread(msg: Classified) -> tuple[Ticket | None, str | None]:
    """SPEC §3 threading order: token, references, plus-address, footer, subject."""
    if msg.token_number is not None:
        ticket = Ticket.get_or_none(Ticket.number == msg.token_number)
        if ticket is not None:
            return ticket, "token"
    if msg.reference_ids:
        ticket = find_by_message_ids(msg.reference_ids)
        if ticket is not None:
            return ticket, "references"
    if msg.plus_number is not None:
        ticket = Ticket.get_or_none(Ticket.number == msg.plus_number)
        if ticket is not None:
            return ticket, "plus"
    if msg.footer_number is not None:
        ticket = Ticket.get_or_none(Ticket.number == msg.footer_number)
        if ticket is not None:
            return ticket, "footer"
    if msg.has_reply_prefix and msg.sender:
        ticket = find_subject_thread(msg.normalized_subject, msg.sender, msg.department)
        if ticket is not None:
            return ticket, "subject"
    return None, None


def gather(
    app: App, msg: Classified, inbound: Inbound, now: datetime, bypass_rate_limit: bool
) -> Facts:
    """Look up everything the rules may ask about ``msg``."""
    settings = app.settings
    _serialize_openings(app, msg)
    facts = Facts(PolicyContext())
    ticket, via = find_thread(msg)
    ticket = facts_ticket(app, facts, ticket)
    dept = settings.department(ticket.department) if ticket is not None else None
    followup_policy = dept.followup_on_resolved if dept else "reject"
    successor = None
    if (
        ticket is not None
        and ticket.status == "resolved"
        and followup_policy == "new_ticket"  # the only policy that asks for one
        and msg.sender
        and not msg.is_agent
    ):
        found = find_subject_thread(msg.normalized_subject, msg.sender, ticket.department)
        successor = facts_ticket(app, facts, found)
    duplicate = None
    if not msg.has_reply_prefix and msg.sender and not msg.is_agent:
        found = find_active_duplicate(msg.normalized_subject, msg.sender, msg.department)
        duplicate = facts_ticket(app, facts, found, lock=False)
    known_only = settings.access.customers == "known"
    agent_may_act = False
    if msg.is_agent and ticket is not None:
        agent_may_act = access.agent_may_act(
            settings.agent(msg.sender), msg.sender, ticket.department, ticket.assignee
        )
    facts.context = PolicyContext(
        known_customers_only=known_only,
        sender_known=_sender_known(msg) if known_only and not msg.is_agent else True,
        already_seen=_already_seen(msg, inbound),
        ticket=_view(ticket),
        thread_via=via,
        duplicate_of=_view(duplicate),
        successor=_view(successor),
        sender_recent_count=0 if bypass_rate_limit else _recent_count(msg, inbound, now),
        max_per_hour=settings.limits.max_messages_per_sender_per_hour,
        allow_same_domain=settings.access.allow_same_domain,
        followup_policy=followup_policy,
        agent_may_act=agent_may_act,
    )
    return facts


def facts_ticket(
    app: App, facts: Facts, ticket: Ticket | None, *, lock: bool = True
) -> Ticket | None:
    """Remember ``ticket`` for the decision; on PostgreSQL read it again locked by
    this transaction, so that concurrent mail, agent replies and web posts never
    lose an update (SPEC §10). SQLite's IMMEDIATE transaction already holds the
    write lock."""
    if ticket is None:
        return None
    if ticket.number in facts.tickets:
        return facts.tickets[ticket.number]
    if lock and is_postgres(app.db):
        ticket = for_update(Ticket.select().where(Ticket.id == ticket.id), app.db).get()
    facts.tickets[ticket.number] = ticket
    return ticket


def _serialize_openings(app: App, msg: Classified) -> None:
    """On PostgreSQL, one transaction at a time per requester, department and
    normalized subject (SPEC §10): the duplicate-subject rule and subject threading
    then hold across instances, since the second transaction, once it has the lock,
    sees what the first committed. SQLite's IMMEDIATE transactions already serialize."""
    if msg.sender:
        name = f"opening:{msg.sender.lower()}:{msg.department}:{msg.normalized_subject}"
        advisory_xact_lock(app.db, name)


def _view(ticket: Ticket | None) -> TicketView | None:
    if ticket is None:
        return None
    return TicketView(
        number=ticket.number,
        status=ticket.status,
        department=ticket.department,
        requester=ticket.requester,
        ccs=tuple(ticket_ccs(ticket)),
    )


def _already_seen(msg: Classified, inbound: Inbound) -> bool:
    key = dedupe_key(msg.parsed.message_id, inbound.raw.sha256)
    return Inbound.select().where((Inbound.dedupe_key == key) & (Inbound.id != inbound.id)).exists()


def _recent_count(msg: Classified, inbound: Inbound, now: datetime) -> int:
    """Messages from this sender in the last hour (the rate limit's count)."""
    if not msg.sender:
        return 0
    since = to_storage(now - timedelta(hours=1))
    return (
        Inbound.select()
        .where(
            (Inbound.sender == msg.sender)
            & (Inbound.received_at > since)
            & (Inbound.id != inbound.id)
            & (Inbound.outcome != outcomes.DUPLICATE_MESSAGE)
        )
        .count()
    )


def _sender_known(msg: Classified) -> bool:
    """In the customer table (address or domain), or already on a ticket (SPEC §13)."""
    return bool(msg.sender) and (is_known(msg.sender) or has_tickets(msg.sender))
