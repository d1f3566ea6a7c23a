"""Follow-ups on resolved or closed tickets, by the department's policy."""

from __future__ import annotations

from maild.policy.access import may_post
from maild.policy.types import (
    FOLLOWUP_REJECTED,
    REOPENED,
    Classified,
    Decision,
    PolicyContext,
)

name = "followup"


def check(msg: Classified, ctx: PolicyContext) -> Decision | None:
    ticket = ctx.ticket
    if ticket is None or msg.is_agent:
        return None
    if ticket.status == "closed":
        return Decision(FOLLOWUP_REJECTED, name, ticket=ticket)
    if ticket.status == "resolved":
        if ctx.followup_policy == "reopen":
            if msg.is_empty:
                return None  # let the empty rule answer
            _, becomes_cc = may_post(msg.sender, ticket, ctx.allow_same_domain)
            return Decision(REOPENED, name, ticket=ticket, add_sender_as_cc=becomes_cc)
        if ctx.followup_policy == "reject":
            return Decision(FOLLOWUP_REJECTED, name, ticket=ticket)
        # new_ticket: a new ticket (predicates.starts_new_ticket; the create rule)
    return None
