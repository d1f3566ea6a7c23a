"""A message over attachments.max_message_bytes: headers kept, sender told the limit."""

from __future__ import annotations

from maild.policy.types import TOO_LARGE, Classified, Decision, PolicyContext

name = "too-large"


def check(msg: Classified, ctx: PolicyContext) -> Decision | None:
    if msg.too_large:
        return Decision(TOO_LARGE, name, ticket=ctx.ticket)
    return None
