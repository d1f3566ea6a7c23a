"""Which ticket: a stranger matched only by weak evidence belongs to no ticket.

A quoted footer or our References in a stranger's mail (a forward) is no right to
the ticket: the mail is a new opening and learns nothing of the ticket.
"""

from __future__ import annotations

from dataclasses import replace

from maild.policy.access import may_post
from maild.policy.predicates import on_weak_evidence
from maild.policy.types import Classified, PolicyContext

name = "stranger-thread"


def resolve(msg: Classified, ctx: PolicyContext) -> PolicyContext | None:
    if msg.is_agent or not on_weak_evidence(ctx):
        return None
    assert ctx.ticket is not None
    allowed, _ = may_post(msg.sender, ctx.ticket, ctx.allow_same_domain)
    if allowed:
        return None
    return replace(ctx, ticket=None, thread_via=None, successor=None)
