"""The policy as a table: Classified + PolicyContext in, outcome (and rule) out.

Pure and fast: no database, no clock. Each row changes only what it names from
an ordinary customer message on an ordinary context.
"""

# ruff: noqa: E501  (the policy table reads best one row per line)

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from maild.parsers.types import ParsedMessage

from maild.policy import types as o
from maild.policy.access import may_post
from maild.policy.commands import check_commands
from maild.policy.table import RULES, THREAD_RULES, decide, thread
from maild.policy.types import CheckedAttachment, Classified, PolicyContext, TicketView
from tests.conftest import build_settings

CUSTOMER = "mariana@padaria.example.com.br"
PARSED = ParsedMessage(message_id="m1@c.example", subject="NF-e", from_addr=CUSTOMER, from_name="")
MSG = Classified(
    parsed=PARSED,
    department="suporte",
    sender=CUSTOMER,
    sender_name="Mariana",
    is_agent=False,
    token_number=None,
    plus_number=None,
    footer_number=None,
    reference_ids=(),
    has_reply_prefix=False,
    normalized_subject="nf-e",
    stripped_text="O sistema mostra erro 500.",
    priority=None,
    loop_reason=None,
)
CTX = PolicyContext(agent_may_act=True)  # agents of the ticket's department


def ticket(status: str = "open", requester: str = CUSTOMER, ccs: tuple[str, ...] = ()):
    return TicketView(
        number=592110, status=status, department="suporte", requester=requester, ccs=ccs
    )


SUCCESSOR = TicketView(number=600001, status="open", department="suporte", requester=CUSTOMER)

SETTINGS = build_settings(Path("/nonexistent-maild-test"))
GOOD_COMMANDS = check_commands("#priority alta\nOk.", "ana@example.com", SETTINGS)
BAD_COMMANDS = check_commands("#department nenhum\nOk.", "ana@example.com", SETTINGS)

PNG_OK = CheckedAttachment("a.png", "image/png", b"x", accepted=True)
PNG_BAD = CheckedAttachment("a.png", "image/png", b"MZ", accepted=False, reason="mismatch")

# (id, message changes, context changes, outcome, rule)
TABLE = [
    ("new opening", {}, {}, o.CREATED, "create"),
    ("already seen wins over all", {"too_large": True}, {"already_seen": True}, o.DUPLICATE_MESSAGE, "duplicate-message"),
    ("too large", {"too_large": True, "stripped_text": ""}, {}, o.TOO_LARGE, "too-large"),
    ("too large beats bounce", {"too_large": True, "is_bounce": True}, {}, o.TOO_LARGE, "too-large"),
    ("bounce", {"is_bounce": True, "sender": ""}, {}, o.BOUNCE, "bounce"),
    ("bounce beats auto-reply", {"is_bounce": True, "loop_reason": "robot-sender"}, {}, o.BOUNCE, "bounce"),
    ("no sender", {"sender": ""}, {}, o.QUARANTINED, "no-sender"),
    ("auto reply", {"loop_reason": "auto-submitted"}, {}, o.AUTO_REPLY_IGNORED, "auto-reply"),
    ("auto reply on a ticket", {"loop_reason": "ooo-subject"}, {"ticket": ticket("waiting_customer")}, o.AUTO_REPLY_IGNORED, "auto-reply"),
    ("auto reply beats rate limit", {"loop_reason": "list-id"}, {"sender_recent_count": 99}, o.AUTO_REPLY_IGNORED, "auto-reply"),
    ("rate limited at the limit", {}, {"sender_recent_count": 20, "max_per_hour": 20}, o.RATE_LIMITED, "rate-limit"),
    ("under the limit", {}, {"sender_recent_count": 19, "max_per_hour": 20}, o.CREATED, "create"),
    ("agents are not rate limited", {"is_agent": True}, {"sender_recent_count": 99, "ticket": ticket()}, o.APPENDED, "append"),
    ("stranger by token", {"sender": "x@gmail.com"}, {"ticket": ticket(), "thread_via": "token"}, o.UNAUTHORIZED, "unauthorized"),
    ("stranger by plus address", {"sender": "x@gmail.com"}, {"ticket": ticket(), "thread_via": "plus"}, o.UNAUTHORIZED, "unauthorized"),
    ("stranger by references opens new", {"sender": "x@gmail.com"}, {"ticket": ticket(), "thread_via": "references"}, o.CREATED, "create"),
    ("free-mail neighbour", {"sender": "y@gmail.com"}, {"ticket": ticket(requester="x@gmail.com"), "thread_via": "token"}, o.UNAUTHORIZED, "unauthorized"),
    ("same-domain colleague", {"sender": "joao@padaria.example.com.br"}, {"ticket": ticket(), "thread_via": "token"}, o.APPENDED, "append"),
    ("same domain off", {"sender": "joao@padaria.example.com.br"}, {"ticket": ticket(), "thread_via": "token", "allow_same_domain": False}, o.UNAUTHORIZED, "unauthorized"),
    ("cc may post", {"sender": "cc@gmail.com"}, {"ticket": ticket(ccs=("cc@gmail.com",)), "thread_via": "token"}, o.APPENDED, "append"),
    ("reply on open", {}, {"ticket": ticket(), "thread_via": "token"}, o.APPENDED, "append"),
    ("reply on waiting", {}, {"ticket": ticket("waiting_customer"), "thread_via": "subject"}, o.APPENDED, "append"),
    ("resolved, reject", {}, {"ticket": ticket("resolved"), "followup_policy": "reject"}, o.FOLLOWUP_REJECTED, "followup"),
    ("resolved, reopen", {}, {"ticket": ticket("resolved"), "followup_policy": "reopen"}, o.REOPENED, "followup"),
    ("resolved, reopen, empty", {"stripped_text": ""}, {"ticket": ticket("resolved"), "followup_policy": "reopen"}, o.EMPTY_REJECTED, "empty"),
    ("resolved, new ticket", {}, {"ticket": ticket("resolved"), "followup_policy": "new_ticket"}, o.CREATED, "create"),
    ("closed, reopen policy still rejects", {}, {"ticket": ticket("closed"), "followup_policy": "reopen"}, o.FOLLOWUP_REJECTED, "followup"),
    ("agent on resolved appends", {"is_agent": True}, {"ticket": ticket("resolved")}, o.APPENDED, "append"),
    ("empty opening", {"stripped_text": "  "}, {}, o.EMPTY_REJECTED, "empty"),
    ("empty but an accepted file", {"stripped_text": "", "attachments": (PNG_OK,)}, {}, o.CREATED, "create"),
    ("empty and only a refused file", {"stripped_text": "", "attachments": (PNG_BAD,)}, {}, o.EMPTY_REJECTED, "empty"),
    ("empty reply", {"stripped_text": ""}, {"ticket": ticket()}, o.EMPTY_REJECTED, "empty"),
    ("duplicate subject", {}, {"duplicate_of": ticket()}, o.DUPLICATE_SUBJECT_REJECTED, "duplicate-subject"),
    ("duplicate, empty subject", {"normalized_subject": ""}, {"duplicate_of": ticket()}, o.CREATED, "create"),
    ("duplicate by an agent", {"is_agent": True}, {"duplicate_of": ticket()}, o.CREATED, "create"),
    ("resolved, new ticket, its successor", {}, {"ticket": ticket("resolved"), "followup_policy": "new_ticket", "successor": SUCCESSOR}, o.APPENDED, "append"),
    ("resolved, reject, successor unused", {}, {"ticket": ticket("resolved"), "followup_policy": "reject", "successor": SUCCESSOR}, o.FOLLOWUP_REJECTED, "followup"),
    ("agent on resolved, successor unused", {"is_agent": True}, {"ticket": ticket("resolved"), "followup_policy": "new_ticket", "successor": SUCCESSOR}, o.APPENDED, "append"),
    ("stranger by footer on a closed ticket opens new", {"sender": "x@gmail.com"}, {"ticket": ticket("closed"), "thread_via": "footer"}, o.CREATED, "create"),
    ("stranger by subject, empty, learns nothing", {"sender": "x@gmail.com", "stripped_text": ""}, {"ticket": ticket(), "thread_via": "subject"}, o.EMPTY_REJECTED, "empty"),
    ("stranger by references, known-only, refused", {"sender": "x@gmail.com"}, {"ticket": ticket(), "thread_via": "references", "known_customers_only": True, "sender_known": False}, o.UNKNOWN_SENDER_REJECTED, "known-customer"),
    ("agent, token naming no ticket", {"is_agent": True, "token_number": 999999}, {}, o.AGENT_REFUSED, "agent-refused"),
    ("agent, token, ticket found otherwise", {"is_agent": True, "token_number": 999999}, {"ticket": ticket(), "thread_via": "references"}, o.AGENT_REFUSED, "agent-refused"),
    ("agent, other department", {"is_agent": True, "token_number": 592110}, {"ticket": ticket(), "thread_via": "token", "agent_may_act": False}, o.AGENT_REFUSED, "agent-refused"),
    ("agent, invalid command", {"is_agent": True, "commands": BAD_COMMANDS}, {"ticket": ticket(), "thread_via": "token"}, o.AGENT_REFUSED, "agent-refused"),
    ("agent, valid commands", {"is_agent": True, "commands": GOOD_COMMANDS}, {"ticket": ticket(), "thread_via": "token"}, o.APPENDED, "append"),
    ("agent opening without token", {"is_agent": True}, {}, o.CREATED, "create"),
    ("duplicate, new ticket after resolved", {}, {"ticket": ticket("resolved"), "followup_policy": "new_ticket", "duplicate_of": ticket()}, o.DUPLICATE_SUBJECT_REJECTED, "duplicate-subject"),
]  # fmt: skip


@pytest.mark.parametrize(
    "msg_changes, ctx_changes, outcome, rule",
    [pytest.param(*row[1:], id=row[0]) for row in TABLE],
)
def test_policy_table(msg_changes, ctx_changes, outcome, rule):
    decision = decide(replace(MSG, **msg_changes), replace(CTX, **ctx_changes))
    assert (decision.outcome, decision.rule) == (outcome, rule)


def test_decisions_name_the_ticket_they_act_on():
    t = ticket()
    assert decide(MSG, replace(CTX, ticket=t, thread_via="token")).ticket == t
    assert decide(MSG, replace(CTX, duplicate_of=t)).ticket == t
    colleague = replace(MSG, sender="joao@padaria.example.com.br")
    decision = decide(colleague, replace(CTX, ticket=t, thread_via="token"))
    assert decision.add_sender_as_cc
    assert not decide(MSG, replace(CTX, ticket=t)).add_sender_as_cc


def test_thread_rules_choose_the_ticket_the_decision_names():
    resolved = replace(CTX, ticket=ticket("resolved"), followup_policy="new_ticket")
    assert decide(MSG, replace(resolved, successor=SUCCESSOR)).ticket == SUCCESSOR
    stranger = replace(MSG, sender="x@gmail.com", stripped_text="")
    weak = replace(CTX, ticket=ticket(), thread_via="footer")
    assert decide(stranger, weak).ticket is None  # the notice names no ticket
    assert thread(stranger, replace(weak, thread_via="token")).ticket == ticket()


def test_every_rule_has_a_kebab_case_name_and_create_is_last():
    names = [rule.name for rule in (*THREAD_RULES, *RULES)]
    assert len(set(names)) == len(names)
    assert all(n == n.lower() and "_" not in n for n in names)
    assert names[-1] == "create"


@pytest.mark.parametrize(
    "sender, requester, ccs, same_domain, expected",
    [
        (CUSTOMER, CUSTOMER, (), True, (True, False)),
        ("MARIANA@padaria.example.com.br", CUSTOMER, (), True, (True, False)),
        ("cc@x.example", CUSTOMER, ("cc@x.example",), False, (True, False)),
        ("joao@padaria.example.com.br", CUSTOMER, (), True, (True, True)),
        ("joao@padaria.example.com.br", CUSTOMER, (), False, (False, False)),
        ("b@gmail.com", "a@gmail.com", (), True, (False, False)),
        ("b@uol.com.br", "a@uol.com.br", (), True, (False, False)),
        ("b@yahoo.com.br", "a@yahoo.com.br", (), True, (False, False)),
        ("a@sub.padaria.example.com.br", CUSTOMER, (), True, (False, False)),
    ],
)
def test_may_post(sender, requester, ccs, same_domain, expected):
    view = TicketView(592110, "open", "suporte", requester, ccs)
    assert may_post(sender, view, same_domain) == expected
