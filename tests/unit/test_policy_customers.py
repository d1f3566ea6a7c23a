"""The known-customer and my-tickets rules as a table, and the language detector.

Pure: no database, no clock."""

from __future__ import annotations

from dataclasses import replace

import pytest
from maild.parsers.types import ParsedMessage

from maild.policy import types as o
from maild.policy.language import detect_language, detect_text_language
from maild.policy.table import decide
from tests.unit.test_policy import CTX, MSG, ticket

KNOWN_ONLY = {"known_customers_only": True}
STRANGER = {"known_customers_only": True, "sender_known": False}

TABLE = [
    ("anyone mode: a stranger opens", {}, {"sender_known": False}, o.CREATED, "create"),
    ("known mode, known sender", {}, KNOWN_ONLY, o.CREATED, "create"),
    ("known mode, stranger", {}, STRANGER, o.UNKNOWN_SENDER_REJECTED, "known-customer"),
    ("an agent is never refused", {"is_agent": True}, STRANGER, o.CREATED, "create"),
    (
        "a reply on a ticket is not an opening",
        {},
        STRANGER | {"ticket": ticket()},
        o.APPENDED,
        "append",
    ),
    (
        "auto-replies stay silent",
        {"loop_reason": "auto-submitted"},
        STRANGER,
        o.AUTO_REPLY_IGNORED,
        "auto-reply",
    ),
    ("rate limit first", {}, STRANGER | {"sender_recent_count": 20}, o.RATE_LIMITED, "rate-limit"),
    (
        "stranger before empty",
        {"stripped_text": ""},
        STRANGER,
        o.UNKNOWN_SENDER_REJECTED,
        "known-customer",
    ),
    (
        "meus chamados",
        {"normalized_subject": "meus chamados"},
        {},
        o.TICKET_LIST_REQUESTED,
        "my-tickets",
    ),
    ("my tickets", {"normalized_subject": "my tickets"}, {}, o.TICKET_LIST_REQUESTED, "my-tickets"),
    (
        "meus chamados, empty body",
        {"normalized_subject": "meus chamados", "stripped_text": ""},
        {},
        o.TICKET_LIST_REQUESTED,
        "my-tickets",
    ),
    (
        "meus chamados by a stranger in known mode",
        {"normalized_subject": "meus chamados"},
        STRANGER,
        o.UNKNOWN_SENDER_REJECTED,
        "known-customer",
    ),
    (
        "meus chamados on a ticket is a reply",
        {"normalized_subject": "meus chamados"},
        {"ticket": ticket()},
        o.APPENDED,
        "append",
    ),
    (
        "an agent's 'meus chamados' opens a ticket",
        {"normalized_subject": "meus chamados", "is_agent": True},
        {},
        o.CREATED,
        "create",
    ),
]


@pytest.mark.parametrize(
    ("msg_changes", "ctx_changes", "outcome", "rule"),
    [row[1:] for row in TABLE],
    ids=[row[0] for row in TABLE],
)
def test_policy_table(msg_changes, ctx_changes, outcome, rule) -> None:
    decision = decide(replace(MSG, **msg_changes), replace(CTX, **ctx_changes))
    assert (decision.outcome, decision.rule) == (outcome, rule)


AVAILABLE = ("pt_BR", "en")


@pytest.mark.parametrize(
    ("headers", "text", "expected"),
    [
        ({"content-language": ("en-US",)}, "", "en"),
        ({"content-language": ("pt-BR",)}, "Hello, please help me with the printer", "pt_BR"),
        ({"accept-language": ("de-DE, en;q=0.8, pt;q=0.9",)}, "", "pt_BR"),
        ({"accept-language": ("fr, de",)}, "", None),
        (
            {"content-language": ("fr",)},
            "Hello, I cannot print and the screen is blank. Thanks",
            "en",
        ),
        ({}, "Bom dia, não consigo emitir a nota. Por favor, me ajudem.", "pt_BR"),
        ({}, "ok obrigado", None),  # too little to tell
        ({}, "the de que and para", None),  # no clear lead
    ],
)
def test_detect_language(headers, text, expected) -> None:
    parsed = ParsedMessage(
        message_id="m@x", subject="", from_addr="a@b.example", from_name="", headers=headers
    )
    assert detect_language(parsed, text, AVAILABLE) == expected


def test_only_available_languages_are_chosen() -> None:
    assert (
        detect_text_language("Hello, please help me with the printer. Thanks", ("pt_BR",)) is None
    )
