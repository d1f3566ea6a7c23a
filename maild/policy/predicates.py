"""The questions several rules ask, each answered in one place. Pure."""

from __future__ import annotations

from maild.policy.types import Classified, PolicyContext

# How a message can be matched to a ticket without naming it: a quoted footer, our
# Message-IDs in References, a "Re:" subject. A stranger's mail carrying them (a
# forward) gives no right to the ticket.
WEAK_THREAD_EVIDENCE = frozenset({"references", "footer", "subject"})


def on_weak_evidence(ctx: PolicyContext) -> bool:
    return ctx.ticket is not None and ctx.thread_via in WEAK_THREAD_EVIDENCE


def starts_new_ticket(msg: Classified, ctx: PolicyContext) -> bool:
    """A customer's follow-up on a resolved ticket of a department whose
    ``followup_on_resolved`` is ``new_ticket``: it opens a ticket of its own."""
    return (
        not msg.is_agent
        and ctx.ticket is not None
        and ctx.ticket.status == "resolved"
        and ctx.followup_policy == "new_ticket"
    )
