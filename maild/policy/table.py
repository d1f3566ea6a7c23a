"""The policy: an ordered table of rules; the first that answers decides.

Each rule is a module with ``name`` and ``check(msg, ctx) -> Decision | None``;
rules return values and never mutate anything. The order is the policy.
"""

from __future__ import annotations

from types import ModuleType

from maild.policy.rules import (
    append,
    auto_reply,
    bounce,
    create,
    duplicate_message,
    duplicate_subject,
    empty,
    followup,
    known_customer,
    my_tickets,
    no_sender,
    rate_limit,
    too_large,
    unauthorized,
)
from maild.policy.types import Classified, Decision, PolicyContext

RULES: tuple[ModuleType, ...] = (
    duplicate_message,
    too_large,
    bounce,
    no_sender,
    auto_reply,
    rate_limit,
    unauthorized,
    followup,
    known_customer,
    my_tickets,
    empty,
    duplicate_subject,
    append,
    create,
)


def decide(msg: Classified, ctx: PolicyContext) -> Decision:
    for rule in RULES:
        decision = rule.check(msg, ctx)
        if decision is not None:
            return decision
    raise AssertionError("the create rule always answers")  # pragma: no cover
