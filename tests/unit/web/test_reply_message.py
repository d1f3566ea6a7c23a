"""The web reply form's message reaches the pipeline with the requester's address intact."""

from __future__ import annotations

from datetime import UTC, datetime

from maild.parsers.message import parse_message

from maild.web.reply import build_reply


def test_non_ascii_address_and_name_survive_the_round_trip() -> None:
    raw = build_reply(
        requester="zeca@exämple.com.br",
        requester_name="Zeca Ürsula",
        department_address="suporte@example.com",
        number=592110,
        subject="Não imprime",
        token_prefix="",
        text="Olá,\r\nainda não funciona.",
        message_id_domain="example.com",
        now=datetime(2026, 11, 24, 13, 0, tzinfo=UTC),
    )

    parsed = parse_message(raw)

    assert parsed.from_addr == "zeca@exämple.com.br"
    assert parsed.from_name == "Zeca Ürsula"
    assert parsed.subject == "[#592110] Não imprime"
    assert parsed.text.strip() == "Olá,\nainda não funciona."
    assert parsed.header("x-maild-source") == "web"
