"""Mutation fuzzing of real-looking mail (hypothesis, bounded).

Each example takes a fixture from tests/fixtures/ (mail/, replies/, legacy/) and
damages it the way mail is damaged in transit and by old clients: random bytes
flipped, inserted or cut, charset labels misspelled or made up, base64 bodies and
encoded words broken, raw 8-bit bytes in headers, undecodable IDNA domains. Then:

- the pure stages (parse, strip, classify) never raise;
- the whole pipeline answers with an outcome of the vocabulary, and never
  ``quarantined``: a tolerant parser absorbs every one of these encodings.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from maild.parsers.message import parse_message
from maild.parsers.strip import strip_message

from maild.config import Settings
from maild.pipeline import ingest
from maild.policy.classify import classify
from maild.policy.types import OUTCOMES, QUARANTINED
from tests.conftest import build_settings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CORPUS = [
    p.read_bytes()
    for folder in ("mail", "replies", "legacy")
    for p in sorted((FIXTURES / folder).glob("*.eml"))
    if p.stat().st_size < 64 * 1024  # keep each example fast
]

# Encoding damage must never cost a mail its sender: start from mails that have one.
WITH_SENDER = [raw for raw in CORPUS if parse_message(raw).from_addr]
CHARSET_LABELS = [
    b"utf8", b"latin1", b"UTF-7", b"x-unknown", b"garbage-42", b"iso-8859-99", b"unicode",
    b"idna", b"rot13", b"unicode_escape", b'"', b"", b"utf-16", b"cp65001", b"big5-hkscs",
]  # fmt: skip
ENCODED_WORDS = [
    b"=?utf-8?B?w6k=?=", b"=?utf-8?B?!!broken*?=", b"=?iso-8859-1?Q?caf\xe9?=",
    b"=?utf-7?Q?+AOk-?=", b"=?garbage?Q?x=FF?=", b"=?utf-8?Q?=C3?=", b"=?utf-8?B?w6?=",
    b"=??Q?x?=", b"=?utf-8*pt?B?w6k=?=",
]  # fmt: skip
DOMAINS = [
    b"xn--zz--invalid.example",
    b"xn--.example",
    b"xn--mller-kva.example",
    b"\xc3\xa9.example",
]
_CHARSET = re.compile(rb"charset=\"?[^\s\";]*\"?", re.IGNORECASE)
_DOMAIN = re.compile(rb"@[A-Za-z0-9.-]+")
_B64_LINE = re.compile(rb"^[A-Za-z0-9+/]{20,}={0,2}\r?$", re.MULTILINE)
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_LINE_END = re.compile(rb"\r?\n")


ENCODING_DAMAGE = ("charset", "word", "idna", "b64")
ANY_DAMAGE = ("flip", "insert", "cut", *ENCODING_DAMAGE)


@st.composite
def mutated(draw: st.DrawFn, kinds: tuple[str, ...] = ANY_DAMAGE) -> bytes:
    corpus = CORPUS if kinds != ENCODING_DAMAGE else WITH_SENDER
    raw = bytearray(draw(st.sampled_from(corpus)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(kinds))
        if kind == "charset" and _CHARSET.search(raw):
            label = draw(st.sampled_from(CHARSET_LABELS))
            matches = list(_CHARSET.finditer(raw))
            m = matches[draw(st.integers(0, len(matches) - 1))]
            raw[m.start() : m.end()] = b"charset=" + label
        elif kind == "word" and b"\n" in raw:
            # at the end of a header value, where clients write encoded words
            end = _HEADER_END.search(raw)
            limit = end.start() if end else len(raw)
            ends = [m.start() for m in _LINE_END.finditer(raw, 0, limit)] or [limit]
            at = ends[draw(st.integers(0, len(ends) - 1))]
            raw[at:at] = b" " + draw(st.sampled_from(ENCODED_WORDS))
        elif kind == "idna" and _DOMAIN.search(raw):
            matches = list(_DOMAIN.finditer(raw))
            m = matches[draw(st.integers(0, len(matches) - 1))]
            raw[m.start() : m.end()] = b"@" + draw(st.sampled_from(DOMAINS))
        elif kind == "b64" and _B64_LINE.search(raw):
            matches = list(_B64_LINE.finditer(raw))
            m = matches[draw(st.integers(0, len(matches) - 1))]
            raw[m.start() : m.start() + draw(st.integers(1, 8))] = draw(
                st.sampled_from([b"!", b"=", b"====", b"\xff", b""])
            )
        elif kind in ("flip", "insert", "cut") and raw:
            at = draw(st.integers(0, len(raw) - 1))
            if kind == "flip":
                raw[at] = draw(st.integers(0, 255))
            elif kind == "insert":
                raw[at:at] = draw(st.binary(min_size=1, max_size=8))
            else:
                raw[at : at + draw(st.integers(1, 64))] = b""
    return bytes(raw)


@pytest.fixture(scope="module")
def fuzz_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return build_settings(tmp_path_factory.mktemp("fuzz"))


@settings(max_examples=300, deadline=None)
@given(raw=mutated())
def test_pure_stages_never_raise(raw: bytes, fuzz_settings: Settings) -> None:
    parsed = parse_message(raw)
    strip_message(parsed)
    classify(parsed, raw, fuzz_settings)


FUZZ_INGEST = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")
@FUZZ_INGEST
@given(raw=mutated(ENCODING_DAMAGE))
def test_never_quarantined_for_an_encoding(app, raw: bytes) -> None:
    result = ingest(app, raw)
    assert result.outcome in (*OUTCOMES, "duplicate_message")
    assert result.outcome != QUARANTINED, result


@pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")
@FUZZ_INGEST
@given(raw=mutated())
def test_random_damage_quarantines_only_without_a_sender(app, raw: bytes) -> None:
    result = ingest(app, raw)
    assert result.outcome in (*OUTCOMES, "duplicate_message")
    if result.outcome == QUARANTINED:  # the bytes that named the sender were destroyed
        assert result.detail == "no-sender", result
        parsed = parse_message(raw)
        assert not (parsed.from_addr or parsed.reply_to or parsed.return_path)
