"""Tests for parsers.subject: tokens, prefixes, normalization, plus-addresses, footer refs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from maild.parsers.subject import (
    extract_footer_ref,
    extract_plus_number,
    extract_token,
    format_footer_ref,
    format_subject,
    format_token,
    has_reply_prefix,
    normalize_subject,
    strip_prefixes,
    strip_token,
)


@pytest.mark.parametrize(
    ("subject", "prefix", "expected"),
    [
        ("[#592110] Não consigo emitir NF-e", "", 592110),
        ("Re: [#592110] x", "", 592110),
        ("RES: RES: [#592110] x", "", 592110),
        ("x [#592110]", "", 592110),
        ("x [ # 592110 ] y", "", 592110),
        ("[#592110] x [#111111]", "", 592110),
        ("no token here", "", None),
        ("#592110 without brackets", "", None),
        ("[#] empty", "", None),
        ("[ACME #592110] x", "ACME", 592110),
        ("[ACME#592110] x", "ACME", 592110),
        ("RE: [acme #592110] x", "ACME", 592110),
        ("[#592110] bare token with a prefix configured", "ACME", None),
        ("[ACME #592110] prefixed token without a prefix configured", "", None),
        ("[OTHER #592110] x", "ACME", None),
    ],
)
def test_extract_token(subject: str, prefix: str, expected: int | None) -> None:
    assert extract_token(subject, prefix) == expected


@pytest.mark.parametrize(
    ("subject", "prefix", "expected"),
    [
        ("Re: [#592110] x", "", "Re: x"),
        ("[#592110]", "", ""),
        ("a [ACME #1] b", "ACME", "a b"),
        ("a [#1] b", "ACME", "a [#1] b"),
    ],
)
def test_strip_token(subject: str, prefix: str, expected: str) -> None:
    assert strip_token(subject, prefix) == expected


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Re: x", True),
        ("RE: x", True),
        ("RES: x", True),
        ("Res: x", True),
        ("Fwd: x", True),
        ("FW: x", True),
        ("Fw: x", True),
        ("ENC: x", True),
        ("AW: x", True),
        ("WG: x", True),
        ("RV: x", True),
        ("TR: x", True),
        ("SV: x", True),
        ("VS: x", True),
        ("Antw: x", True),
        ("RE : x", True),
        ("Re:Re: x", True),
        ("Re[2]: x", True),
        ("RE (3): x", True),
        ("  re:x", True),
        ("[#592110] RE: x", True),
        ("Resposta automática: x", False),
        ("Relatório mensal", False),
        ("Reembolso: pedido 12", False),
        ("Tre: x", False),
        ("", False),
    ],
)
def test_has_reply_prefix(subject: str, expected: bool) -> None:
    assert has_reply_prefix(subject) is expected


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Re: x", "x"),
        ("Re:Re: Fwd: ENC: x", "x"),
        ("RE : RES: x", "x"),
        ("AW: WG: Antw: SV: VS: TR: RV: x", "x"),
        ("Re[2]: Fw(3): x", "x"),
        ("x Re: y", "x Re: y"),
        ("Re:", ""),
    ],
)
def test_strip_prefixes(subject: str, expected: str) -> None:
    assert strip_prefixes(subject) == expected


@pytest.mark.parametrize(
    ("subject", "prefix", "expected"),
    [
        ("RES: Não consigo emitir NF-e", "", "nao consigo emitir nf-e"),
        ("Re: [#592110] Não   consigo\temitir NF-e", "", "nao consigo emitir nf-e"),
        ("ENC: RE: [ACME #592110] RE: Ação   URGENTE", "ACME", "acao urgente"),
        ("Ｆｕｌｌｗｉｄｔｈ　ＴＥＸＴ", "", "fullwidth text"),
        ("Straße", "", "strasse"),
        ("", "", ""),
        ("Re: ", "", ""),
    ],
)
def test_normalize_subject(subject: str, prefix: str, expected: str) -> None:
    assert normalize_subject(subject, prefix) == expected


@pytest.mark.parametrize(
    ("number", "subject", "prefix", "expected"),
    [
        (592110, "Não consigo emitir NF-e", "", "[#592110] Não consigo emitir NF-e"),
        (592110, "Re: [#592110] x", "", "[#592110] x"),
        (592110, "RES: RES: [#592110] x", "", "[#592110] x"),
        (592110, "x [#592110]", "", "[#592110] x"),
        (592110, "", "", "[#592110]"),
        (592110, "Re:", "", "[#592110]"),
        (592110, "[#111111] other ticket", "", "[#592110] [#111111] other ticket"),
        (592110, "Re: [ACME #592110] x", "ACME", "[ACME #592110] x"),
        (592110, "x", "ACME", "[ACME #592110] x"),
    ],
)
def test_format_subject(number: int, subject: str, prefix: str, expected: str) -> None:
    assert format_subject(number, subject, prefix) == expected


def test_format_token() -> None:
    assert format_token(592110) == "[#592110]"
    assert format_token(592110, "ACME") == "[ACME #592110]"


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("suporte+592110@example.com", ("suporte@example.com", 592110)),
        ("Suporte+592110@Example.COM", ("suporte@example.com", 592110)),
        ("suporte@example.com", None),
        ("suporte+vendas@example.com", None),
        ("suporte+@example.com", None),
        ("+592110@example.com", None),
        ("not an address", None),
    ],
)
def test_extract_plus_number(address: str, expected: tuple[str, int] | None) -> None:
    assert extract_plus_number(address) == expected


@pytest.mark.parametrize(
    ("text", "prefix", "expected"),
    [
        ("Acme Suporte\nRef: MAILD-592110\n", "", 592110),
        ("Obrigado!\n\n> Acme Suporte\n> Ref: MAILD-592110\n", "", 592110),
        ("> > Ref:MAILD-592110", "", 592110),
        ("*Ref: MAILD-592110*", "", 592110),
        ("ref: maild-592110", "", 592110),
        ("Ref: MAILD-ACME-592110", "ACME", 592110),
        ("Ref: MAILD-592110", "ACME", None),
        ("Ref: 592110", "", None),
        ("nothing", "", None),
    ],
)
def test_extract_footer_ref(text: str, prefix: str, expected: int | None) -> None:
    assert extract_footer_ref(text, prefix) == expected


def test_format_footer_ref() -> None:
    assert format_footer_ref(592110) == "Ref: MAILD-592110"
    assert format_footer_ref(592110, "ACME") == "Ref: MAILD-ACME-592110"


numbers = st.integers(min_value=1, max_value=10**9)
prefixes = st.sampled_from(["", "ACME", "Help Desk"])
subjects = st.text(max_size=60)


@given(number=numbers, subject=subjects, prefix=prefixes)
def test_format_subject_round_trips(number: int, subject: str, prefix: str) -> None:
    formatted = format_subject(number, subject, prefix)
    assert extract_token(formatted, prefix) == number
    assert normalize_subject(formatted, prefix) == normalize_subject(subject, prefix)


@given(number=numbers, subject=subjects, prefix=prefixes)
def test_format_subject_is_idempotent(number: int, subject: str, prefix: str) -> None:
    once = format_subject(number, subject, prefix)
    assert format_subject(number, "Re: " + once, prefix) == once


@given(number=numbers, prefix=prefixes, quote=st.sampled_from(["", "> ", ">> ", "> > "]))
def test_footer_ref_round_trips(number: int, prefix: str, quote: str) -> None:
    text = f"Olá\n\n{quote}Acme\n{quote}{format_footer_ref(number, prefix)}\n"
    assert extract_footer_ref(text, prefix) == number
