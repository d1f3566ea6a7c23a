"""With ``[access] customers = "known"``, a stranger may not open a ticket (SPEC §13).

Known are the addresses and domains of the ``customer`` table, and whoever is
already requester or CC of a ticket; agents are never refused here.
"""

from __future__ import annotations

from maild.policy.types import UNKNOWN_SENDER_REJECTED, Classified, Decision, PolicyContext

name = "known-customer"


def check(msg: Classified, ctx: PolicyContext) -> Decision | None:
    if msg.is_agent or ctx.ticket is not None or not ctx.known_customers_only:
        return None
    if ctx.sender_known:
        return None
    return Decision(UNKNOWN_SENDER_REJECTED, name)
