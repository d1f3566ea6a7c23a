"""A token of a ticket the sender has no part in: refused without revealing anything."""

from __future__ import annotations

from maild.policy.access import may_post
from maild.policy.types import UNAUTHORIZED, Classified, Decision, PolicyContext

name = "unauthorized"


def check(msg: Classified, ctx: PolicyContext) -> Decision | None:
    if ctx.ticket is None or msg.is_agent:
        return None
    allowed, _ = may_post(msg.sender, ctx.ticket, ctx.allow_same_domain)
    if allowed:
        return None
    if ctx.thread_via in ("references", "footer", "subject"):
        # Weak evidence (a forwarded thread, a quoted footer): do not refuse a
        # stranger, treat the mail as a new opening instead.
        return None
    return Decision(UNAUTHORIZED, name, ticket=ctx.ticket)
