"""No text after stripping and no accepted attachment: ask for a description."""

from __future__ import annotations

from maild.policy.types import EMPTY_REJECTED, Classified, Decision, PolicyContext

name = "empty"


def check(msg: Classified, ctx: PolicyContext) -> Decision | None:
    if msg.is_empty and not msg.is_agent:
        return Decision(EMPTY_REJECTED, name, ticket=ctx.ticket)
    return None
