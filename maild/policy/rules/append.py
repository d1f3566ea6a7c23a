"""A message matched to a ticket it may post to is added to the thread."""

from __future__ import annotations

from maild.policy.access import may_post
from maild.policy.predicates import starts_new_ticket
from maild.policy.types import APPENDED, Classified, Decision, PolicyContext

name = "append"


def check(msg: Classified, ctx: PolicyContext) -> Decision | None:
    ticket = ctx.ticket
    if ticket is None:
        return None
    if starts_new_ticket(msg, ctx):
        return None  # the create rule answers
    if msg.is_agent:
        return Decision(APPENDED, name, ticket=ticket)
    # Whoever may not post was answered before: unauthorized, or (weak evidence)
    # no ticket at all.
    _, becomes_cc = may_post(msg.sender, ticket, ctx.allow_same_domain)
    return Decision(APPENDED, name, ticket=ticket, add_sender_as_cc=becomes_cc)
