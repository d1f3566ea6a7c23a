"""A customer over limits.max_messages_per_sender_per_hour is held, not processed."""

from __future__ import annotations

from maild.policy.types import RATE_LIMITED, Classified, Decision, PolicyContext

name = "rate-limit"


def check(msg: Classified, ctx: PolicyContext) -> Decision | None:
    if not msg.is_agent and ctx.sender_recent_count >= ctx.max_per_hour:
        return Decision(RATE_LIMITED, name, ticket=ctx.ticket)  # its language for the notice
    return None
