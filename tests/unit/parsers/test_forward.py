"""Tests for parsers.forward: the original sender and text of forwarded mail."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from maild.parsers.forward import (
    Forward,
    extract_forward,
    extract_forwarded_sender,
    extract_forwarded_text,
)
from maild.parsers.message import parse_message
from maild.parsers.types import ParsedMessage

MAIL = Path(__file__).resolve().parents[2] / "fixtures" / "mail"

# fixture, address, name, subject, first line of the text, last line, attached
FORWARDS = [
    (
        "forward-gmail-en.eml",
        "maria.souza@example.org",
        "Maria Souza",
        "Boleto com valor errado",
        "Bom dia Pedro,",
        "Maria",
        False,
    ),
    (
        "forward-gmail-ptbr-html-only.eml",
        "claudia.reis@example.org",
        "Cláudia Reis",
        "Nota fiscal não chegou",
        "Oi Pedro,",
        "Cláudia",
        False,
    ),
    (
        "forward-outlook-ptbr.eml",
        "marcos.teixeira@example.org",
        "Marcos Teixeira",
        "Cobrança duplicada no cartão",
        "Prezados,",
        "Marcos Teixeira",
        False,
    ),
    (
        "forward-outlook-en-original-message.eml",
        "carlos.lima@example.net",
        "Carlos Lima",
        "Invoice 2231 overdue?",
        "Hi Pedro,",
        "Carlos Lima",
        False,
    ),
    (
        "forward-outlook-bold-plain.eml",
        "renata.alves@example.net",
        "Renata Alves",
        "Password reset link expired",
        "Hello,",
        "Renata",
        False,
    ),
    (
        "forward-outlook-desktop-ptbr-block.eml",
        "joao.pereira@example.net",
        "João Pereira",
        "Boleto vencido",
        "Bom dia,",
        "Compras",
        False,
    ),
    (
        "forward-apple-mail-ptbr.eml",
        "otavio.nunes@example.org",
        "Otávio Nunes",
        "Pedido 4471 não entregue",
        "Olá, meu pedido 4471 ainda não chegou e o rastreio não atualiza desde quinta.",
        "Otávio",
        False,
    ),
    (
        "forward-apple-mail-en.eml",
        "daniel.lee@example.net",
        "Lee, Daniel",
        "Wrong size delivered",
        "Hi,",
        "Daniel",
        False,
    ),
    (
        "forward-thunderbird-ptbr.eml",
        "helena.costa@example.net",
        "Helena Costa",
        "Acesso ao portal",
        "Boa tarde,",
        "Helena",
        False,
    ),
    (
        "forward-attached-rfc822.eml",
        "sofia.ramos@example.org",
        "Sofia Ramos",
        "Solicitação de 2ª via",
        "Boa tarde, preciso da segunda via da fatura de fevereiro.",
        "Sofia",
        True,
    ),
    (
        "forward-attached-eml-octet-stream.eml",
        "rafael.gomes@example.org",
        "Rafael Gonçalves Gomes",
        "Contrato assinado",
        "Pedro, segue o contrato assinado. Quando começa a vigência?",
        "Rafael",
        True,
    ),
]

NOT_FORWARDS = [
    "forward-outlook-exchange-no-address.eml",  # only a display name: unusable
    *sorted(p.name for p in MAIL.glob("reply-*.eml")),  # RE: with Outlook blocks
    "bounce-postfix-dsn.eml",  # multipart/report quotes our own mail
    "bounce-gmail-dsn.eml",
    "dsn-bounce-postfix.eml",
    "gmail-en-alternative-qp.eml",
    "outlook-desktop-en-qp.eml",
    "empty.eml",
]


def read(name: str) -> tuple[ParsedMessage, bytes]:
    raw = (MAIL / name).read_bytes()
    return parse_message(raw), raw


@pytest.mark.parametrize(
    ("name", "address", "sender_name", "subject", "first", "last", "attached"),
    FORWARDS,
    ids=[row[0] for row in FORWARDS],
)
def test_forward_fixture(
    name: str,
    address: str,
    sender_name: str,
    subject: str,
    first: str,
    last: str,
    attached: bool,
) -> None:
    parsed, raw = read(name)
    forward = extract_forward(parsed, raw)
    assert forward is not None
    assert (forward.address, forward.name) == (address, sender_name)
    assert forward.subject == subject
    lines = forward.text.splitlines()
    assert lines[0] == first
    assert lines[-1] == last
    assert forward.attached is attached
    assert extract_forwarded_sender(parsed, raw) == (address, sender_name)
    assert extract_forwarded_text(parsed, raw) == forward.text


@pytest.mark.parametrize("name", NOT_FORWARDS)
def test_not_a_forward(name: str) -> None:
    parsed, raw = read(name)
    assert extract_forward(parsed, raw) is None
    assert extract_forwarded_sender(parsed, raw) is None
    assert extract_forwarded_text(parsed, raw) is None


def test_the_agents_own_comment_is_not_part_of_the_forwarded_text() -> None:
    parsed, raw = read("forward-gmail-en.eml")
    text = extract_forwarded_text(parsed, raw) or ""
    assert "Please open a ticket" not in text
    assert "Forwarded message" not in text
    assert "From:" not in text


def test_attached_message_id_is_kept() -> None:
    parsed, raw = read("forward-attached-rfc822.eml")
    forward = extract_forward(parsed, raw)
    assert forward is not None and forward.message_id == "b7e1c2d3@mail.example.org"


def message(text: str, subject: str = "Fwd: pedido") -> ParsedMessage:
    return ParsedMessage(
        message_id="x@example.com",
        subject=subject,
        from_addr="ana@example.com",
        from_name="Ana",
        text=text,
    )


OUTLOOK_BLOCK = (
    "Veja abaixo.\n\n-----Original Message-----\n"
    "From: Carla <carla@example.net>\nSent: Monday\nTo: Ana\nSubject: pedido\n\nOi\n"
)
GMAIL_MARKER = (
    "---------- Forwarded message ---------\nFrom: Carla <carla@example.net>\n"
    "Date: Mon\nSubject: pedido\nTo: Ana <ana@example.com>\n\nOi\n"
)

SYNTHETIC: list[tuple[str, str, str, tuple[str, str] | None]] = [
    ("outlook block, forward subject", OUTLOOK_BLOCK, "FW: pedido", ("carla@example.net", "Carla")),
    ("outlook block, plain subject", OUTLOOK_BLOCK, "pedido", ("carla@example.net", "Carla")),
    ("outlook block, reply subject", OUTLOOK_BLOCK, "RE: pedido", None),
    ("outlook block, reply with token", OUTLOOK_BLOCK, "[#592110] RES: pedido", None),
    ("explicit marker, reply subject", GMAIL_MARKER, "Re: pedido", ("carla@example.net", "Carla")),
    ("quoted marker", "> " + GMAIL_MARKER.replace("\n", "\n> "), "Fwd: pedido", None),
    (
        "mailto in angle brackets",
        "-----Mensagem original-----\nDe: Carla Dias <mailto:Carla@Example.NET>\n"
        "Enviada em: segunda\nAssunto: pedido\n\nOi\n",
        "ENC: pedido",
        ("carla@example.net", "Carla Dias"),
    ),
    (
        "bare address",
        "Begin forwarded message:\n\nFrom: carla@example.net\nSubject: x\n\nOi\n",
        "Fwd: x",
        ("carla@example.net", ""),
    ),
    (
        "marker without header block",
        "---------- Forwarded message ---------\n\nOi, sem cabeçalho\n",
        "Fwd: x",
        None,
    ),
    ("a From: line in prose", "From: my experience this fails.\nThanks\n", "ajuda", None),
]


@pytest.mark.parametrize(
    ("text", "subject", "expected"),
    [row[1:] for row in SYNTHETIC],
    ids=[row[0] for row in SYNTHETIC],
)
def test_inline_rules(text: str, subject: str, expected: tuple[str, str] | None) -> None:
    assert extract_forwarded_sender(message(text, subject), b"") == expected


def test_wrapped_recipient_list_stays_in_the_header_block() -> None:
    text = (
        "-----Original Message-----\nFrom: Carla <carla@example.net>\nSent: Monday\n"
        "To: Ana <ana@example.com>; Bruno <bruno@example.com>;\n"
        " Carlos <carlos@example.com>\nSubject: pedido\nCorpo sem linha em branco\n"
    )
    forward = extract_forward(message(text, "FW: pedido"), b"")
    assert forward is not None
    assert forward.subject == "pedido"
    assert forward.text == "Corpo sem linha em branco"


@pytest.mark.parametrize(
    "raw",
    [b"", b"\x00\xff garbage", b"Content-Type: multipart/mixed; boundary=x\n\n--x\n"],
)
def test_never_raises(raw: bytes) -> None:
    assert extract_forward(parse_message(raw), raw) is None


def test_forward_is_frozen(fixture_bytes: Callable[[str], bytes]) -> None:
    raw = fixture_bytes("forward-gmail-en.eml")
    forward = extract_forward(parse_message(raw), raw)
    assert isinstance(forward, Forward)
    with pytest.raises(AttributeError):
        forward.address = "x@example.com"  # type: ignore[misc]
