"""A message matched to a ticket it may post to is added to the thread."""

from __future__ import annotations

from maild.policy.access import may_post
from maild.policy.types import APPENDED, Classified, Decision, PolicyContext

name = "append"


def check(msg: Classified, ctx: PolicyContext) -> Decision | None:
    ticket = ctx.ticket
    if ticket is None:
        return None
    if ticket.status == "resolved" and ctx.followup_policy == "new_ticket" and not msg.is_agent:
        return None
    if msg.is_agent:
        return Decision(APPENDED, name, ticket=ticket)
    allowed, becomes_cc = may_post(msg.sender, ticket, ctx.allow_same_domain)
    if not allowed:
        return None  # weak thread evidence from a stranger: open a new ticket
    return Decision(APPENDED, name, ticket=ticket, add_sender_as_cc=becomes_cc)
