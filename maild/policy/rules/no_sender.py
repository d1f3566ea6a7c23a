"""A message with no From, Reply-To or Return-Path cannot be answered or owned:
it is quarantined for a person to look at, never dropped."""

from __future__ import annotations

from maild.policy.types import QUARANTINED, Classified, Decision, PolicyContext

name = "no-sender"


def check(msg: Classified, ctx: PolicyContext) -> Decision | None:
    if not msg.sender and not msg.is_bounce and not msg.too_large:
        return Decision(QUARANTINED, name)
    return None
