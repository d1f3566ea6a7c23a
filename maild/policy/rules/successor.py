"""Which ticket: a follow-up on a resolved ticket that starts a new one goes to the
ticket an earlier such follow-up opened, so further follow-ups thread there
instead of opening one ticket each."""

from __future__ import annotations

from dataclasses import replace

from maild.policy.predicates import starts_new_ticket
from maild.policy.types import Classified, PolicyContext

name = "successor"


def resolve(msg: Classified, ctx: PolicyContext) -> PolicyContext | None:
    if ctx.successor is None or not starts_new_ticket(msg, ctx):
        return None
    return replace(ctx, ticket=ctx.successor, thread_via="subject", successor=None)
