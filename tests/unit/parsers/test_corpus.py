"""Every .eml under tests/fixtures/ parses without error into a well-formed ParsedMessage."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from maild.parsers.message import parse_message
from maild.parsers.types import AttachmentPart, ParsedMessage

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
CORPUS = sorted(FIXTURES.rglob("*.eml"))
_BAD_CHARS = re.compile("[\x00\ud800-\udfff]")


def _clean(value: str) -> bool:
    return not _BAD_CHARS.search(value)


def test_corpus_is_not_empty() -> None:
    assert len(CORPUS) >= 35


@pytest.mark.parametrize("path", CORPUS, ids=[str(p.relative_to(FIXTURES)) for p in CORPUS])
def test_fixture_parses_into_a_well_formed_message(path: Path) -> None:
    raw = path.read_bytes()
    msg = parse_message(raw)
    assert isinstance(msg, ParsedMessage)
    assert msg.size == len(raw)
    assert isinstance(msg.subject, str) and "\n" not in msg.subject and _clean(msg.subject)
    assert _clean(msg.text) and "\r" not in msg.text
    assert msg.html is None or _clean(msg.html)
    assert _clean(msg.from_name)
    assert msg.from_addr == "" or ("@" in msg.from_addr and msg.from_addr == msg.from_addr.lower())
    for field in (msg.to, msg.cc, msg.reply_to, msg.delivered_to, msg.x_original_to):
        assert all("@" in a and a == a.lower() and not a.startswith("<") for a in field)
    for msg_id in (msg.message_id, *msg.in_reply_to, *msg.references):
        assert msg_id is None or (msg_id and "<" not in msg_id and ">" not in msg_id)
    assert msg.return_path is None or "<" not in msg.return_path
    assert msg.date is None or msg.date.tzinfo is not None
    for name, values in msg.headers.items():
        assert name == name.lower() and isinstance(values, tuple)
        assert all(isinstance(v, str) and _clean(v) for v in values)
    for part in msg.attachments:
        assert isinstance(part, AttachmentPart) and isinstance(part.payload, bytes)
        assert part.content_type == part.content_type.lower() and "/" in part.content_type
        assert part.content_id is None or "<" not in part.content_id
    assert all(isinstance(d, str) and d for d in msg.defects)
    if raw.strip() and b"\nFrom:" not in b"\n" + raw and b"\nfrom:" not in b"\n" + raw.lower():
        assert msg.defects  # a message without a From header is always reported
