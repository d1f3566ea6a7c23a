"""A mail titled "meus chamados" / "my tickets" asks for the ticket list (SPEC §12):
no ticket is opened; the sender gets the link to their list."""

from __future__ import annotations

from maild.policy.types import TICKET_LIST_REQUESTED, Classified, Decision, PolicyContext

name = "my-tickets"

# Normalized subjects (accents removed, case folded): see parsers.subject.
LIST_SUBJECTS = frozenset(
    {"meus chamados", "meus tickets", "my tickets", "my requests", "lista de chamados"}
)


def check(msg: Classified, ctx: PolicyContext) -> Decision | None:
    if msg.is_agent or ctx.ticket is not None:
        return None
    if msg.normalized_subject.strip(" .!?:") in LIST_SUBJECTS:
        return Decision(TICKET_LIST_REQUESTED, name)
    return None
