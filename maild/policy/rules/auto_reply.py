"""Auto-replies, out-of-office, list and bulk mail: recorded, never answered."""

from __future__ import annotations

from maild.policy.types import AUTO_REPLY_IGNORED, Classified, Decision, PolicyContext

name = "auto-reply"


def check(msg: Classified, ctx: PolicyContext) -> Decision | None:
    if msg.loop_reason:
        return Decision(AUTO_REPLY_IGNORED, name, ticket=ctx.ticket)
    return None
