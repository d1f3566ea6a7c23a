"""A token of a ticket the sender has no part in: refused without revealing anything.

(A stranger matched by weak evidence only never gets here: see stranger_thread.)"""

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
    return Decision(UNAUTHORIZED, name, ticket=ctx.ticket)
