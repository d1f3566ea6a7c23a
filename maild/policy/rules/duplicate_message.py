"""A message already ingested (same Message-ID, or same bytes) changes nothing."""

from __future__ import annotations

from maild.policy.types import DUPLICATE_MESSAGE, Classified, Decision, PolicyContext

name = "duplicate-message"


def check(msg: Classified, ctx: PolicyContext) -> Decision | None:
    if ctx.already_seen:
        return Decision(DUPLICATE_MESSAGE, name)
    return None
