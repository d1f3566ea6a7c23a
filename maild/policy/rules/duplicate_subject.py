"""A fresh opening whose subject equals the sender's active ticket is refused."""

from __future__ import annotations

from maild.policy.predicates import starts_new_ticket
from maild.policy.types import DUPLICATE_SUBJECT_REJECTED, Classified, Decision, PolicyContext

name = "duplicate-subject"


def check(msg: Classified, ctx: PolicyContext) -> Decision | None:
    opens_ticket = ctx.ticket is None or starts_new_ticket(msg, ctx)
    if not opens_ticket or msg.is_agent:
        return None
    if ctx.duplicate_of is not None and msg.normalized_subject:
        return Decision(DUPLICATE_SUBJECT_REJECTED, name, ticket=ctx.duplicate_of)
    return None
