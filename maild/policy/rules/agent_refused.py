"""Agent mail that can apply nothing (SPEC §5): a token naming no ticket, a ticket
of a department the agent is not in (nor assigned to), or an invalid command.
The agent gets an error mail; the ticket is not touched."""

from __future__ import annotations

from maild.policy.types import AGENT_REFUSED, Classified, Decision, PolicyContext

name = "agent-refused"

UNKNOWN_TICKET = "unknown_ticket"
DEPARTMENT = "department"
COMMAND = "command"


def check(msg: Classified, ctx: PolicyContext) -> Decision | None:
    if not msg.is_agent:
        return None
    if msg.token_number is not None and ctx.thread_via != "token":
        # Threading found no ticket by the token (maybe one by other means).
        return Decision(AGENT_REFUSED, name, reason=UNKNOWN_TICKET)
    if ctx.ticket is None:
        return None  # an opening
    if not ctx.agent_may_act:
        return Decision(AGENT_REFUSED, name, ticket=ctx.ticket, reason=DEPARTMENT)
    if msg.commands is not None and msg.commands.problems:
        return Decision(AGENT_REFUSED, name, ticket=ctx.ticket, reason=COMMAND)
    return None
