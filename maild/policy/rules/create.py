"""Everything else opens a new ticket."""

from __future__ import annotations

from maild.policy.types import CREATED, Classified, Decision, PolicyContext

name = "create"


def check(msg: Classified, ctx: PolicyContext) -> Decision | None:
    return Decision(CREATED, name)
