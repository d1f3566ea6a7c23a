"""A delivery status notification marks our outbox row bounced; never reopens."""

from __future__ import annotations

from maild.policy.types import BOUNCE, Classified, Decision, PolicyContext

name = "bounce"


def check(msg: Classified, ctx: PolicyContext) -> Decision | None:
    if msg.is_bounce:
        return Decision(BOUNCE, name, ticket=ctx.ticket)
    return None
