"""A fresh opening whose subject equals the sender's active ticket is refused."""

from __future__ import annotations

from maild.policy.types import DUPLICATE_SUBJECT_REJECTED, Classified, Decision, PolicyContext

name = "duplicate-subject"


def check(msg: Classified, ctx: PolicyContext) -> Decision | None:
    if ctx.ticket is not None and not _starts_new(ctx):
        return None
    if ctx.duplicate_of is not None and msg.normalized_subject and not msg.is_agent:
        return Decision(DUPLICATE_SUBJECT_REJECTED, name, ticket=ctx.duplicate_of)
    return None


def _starts_new(ctx: PolicyContext) -> bool:
    return (
        ctx.ticket is not None
        and ctx.ticket.status == "resolved"
        and ctx.followup_policy == "new_ticket"
    )
