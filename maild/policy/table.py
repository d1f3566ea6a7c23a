"""The policy: two ordered tables of rules; in each, the first that answers decides.

First, which ticket the message belongs to: the thread match found in the
database stands unless a ``THREAD_RULES`` module (``name``, ``resolve(msg, ctx)
-> PolicyContext | None``) answers with another context. Then the outcome: each
``RULES`` module has ``name`` and ``check(msg, ctx) -> Decision | None``. Rules
return values and never mutate anything. The order is the policy.
"""

from __future__ import annotations

from types import ModuleType

from maild.policy.rules import (
    agent_refused,
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
    stranger_thread,
    successor,
    too_large,
    unauthorized,
)
from maild.policy.types import Classified, Decision, PolicyContext

THREAD_RULES: tuple[ModuleType, ...] = (
    stranger_thread,
    successor,
)

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
    agent_refused,
    append,
    create,
)


def thread(msg: Classified, ctx: PolicyContext) -> PolicyContext:
    """``ctx`` with the ticket the message belongs to."""
    for rule in THREAD_RULES:
        resolved = rule.resolve(msg, ctx)
        if resolved is not None:
            return resolved
    return ctx


def decide(msg: Classified, ctx: PolicyContext) -> Decision:
    ctx = thread(msg, ctx)
    for rule in RULES:
        decision = rule.check(msg, ctx)
        if decision is not None:
            return decision
    raise AssertionError("the create rule always answers")  # pragma: no cover
