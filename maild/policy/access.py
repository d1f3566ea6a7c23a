"""Who may post to a ticket (SPEC §3 Access). Pure."""

from __future__ import annotations

from maild.config import Agent, is_free_mail
from maild.policy.types import TicketView


def domain_of(address: str) -> str:
    return address.rsplit("@", 1)[-1].lower() if "@" in address else ""


def may_post(sender: str, ticket: TicketView, allow_same_domain: bool) -> tuple[bool, bool]:
    """(allowed, becomes_cc) for a customer sender on ``ticket``."""
    sender = sender.lower()
    if sender == ticket.requester or sender in ticket.ccs:
        return True, False
    if allow_same_domain:
        domain = domain_of(sender)
        if domain and domain == domain_of(ticket.requester) and not is_free_mail(domain):
            return True, True
    return False, False


def agent_may_act(agent: Agent | None, sender: str, department: str, assignee: str | None) -> bool:
    """An agent acts on a ticket of their department, or one assigned to them (SPEC §5)."""
    if agent is None:
        return False
    return department in agent.departments or assignee == sender
