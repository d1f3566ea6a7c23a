"""Read the structured header fields: addresses, Message-IDs, Return-Path, the Date."""

from __future__ import annotations

import email.utils
import re
from datetime import UTC, datetime

from maild.parsers.charset import clean
from maild.parsers.headers import decode_header_value, one_line
from maild.parsers.notes import Notes
from mailparser.dates import parse_mail_date
from mailparser.utils import get_addresses

# Address headers longer than this are cut before parsing (parsing cost grows with length).
MAX_ADDRESS_HEADER_CHARS = 65536
ADDRESS_HEADERS = ("from", "sender", "reply-to", "to", "cc")
_LOOSE_ANGLE_ADDR = re.compile(r"<\s*([^<>\s@\"]+@[^<>\s@\"]+?)\s*>")
_LOOSE_BARE_ADDR = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_ANGLE_ID = re.compile(r"<([^<>\s]+)>")


def addresses(values: list[str], notes: Notes, name: str) -> list[tuple[str, str]]:
    """(decoded display name, lowercased bare address) pairs with an @ in the address."""
    result: list[tuple[str, str]] = []
    for value in values:
        if len(value) > MAX_ADDRESS_HEADER_CHARS:
            notes.add(f"{name} header too long; only its start was read")
            value = value[:MAX_ADDRESS_HEADER_CHARS]
        found: list[tuple[str, str]] = []
        for display, addr in email.utils.getaddresses([value]):
            addr = clean(addr).strip().strip("<>").strip().lower()
            if "@" not in addr or any(ch.isspace() for ch in addr):
                continue
            found.append((one_line(decode_header_value(display)), addr))
        if not found:
            # Text after the address, stray brackets, an encoded word in the wrong
            # place: the strict parser gives up, but the address is there to read.
            found = _loose_addresses(value)
            if found:
                notes.add(f"{name} header is malformed; its address was read loosely")
        result.extend(found)
    return result


def _loose_addresses(value: str) -> list[tuple[str, str]]:
    angled = _LOOSE_ANGLE_ADDR.search(value)
    if angled:
        display = value[: angled.start()].strip().strip("\"'").strip()
        return [(one_line(decode_header_value(display)), clean(angled.group(1)).lower())]
    bare = _LOOSE_BARE_ADDR.search(value)
    return [("", clean(bare.group(0)).lower())] if bare else []


def bare_addresses(raw_headers: dict[str, list[str]], name: str, notes: Notes) -> tuple[str, ...]:
    """The distinct bare addresses of every ``name`` header, in order."""
    seen: dict[str, None] = {}
    for _, addr in addresses(raw_headers.get(name, []), notes, name):
        seen.setdefault(addr, None)
    return tuple(seen)


def return_path(values: list[str]) -> str | None:
    """The Return-Path address; "" for the null sender (``<>``) or no usable address;
    None without the header."""
    if not values:
        return None
    value = values[0].strip()
    if value in ("", "<>"):
        return ""
    addr = email.utils.parseaddr(value)[1].strip().lower()
    return addr if "@" in addr else ""


def message_ids(values: list[str]) -> tuple[str, ...]:
    """The distinct Message-IDs in the values, in order, without angle brackets."""
    found: dict[str, None] = {}
    for value in values:
        ids = _ANGLE_ID.findall(value)
        if not ids:
            ids = [t.strip("<>") for t in re.split(r"[\s,]+", value) if "@" in t]
        for msg_id in ids:
            cleaned = clean(msg_id).strip()
            if cleaned:
                found.setdefault(cleaned, None)
    return tuple(found)


def first_message_id(values: list[str]) -> str | None:
    """The first Message-ID of the header, else its whole token; None without one."""
    if not values:
        return None
    ids = message_ids(values)
    if ids:
        return ids[0]
    token = values[0].strip().strip("<>").strip()
    return clean(token) or None


def header_date(value: str | None, notes: Notes) -> datetime | None:
    """The Date header as an aware datetime: stdlib first (keeps the sender's offset),
    then mail-parser, which also reads obsolete forms; its diagnostics become notes."""
    if not value:
        return None
    parsed: datetime | None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        parsed = None
    try:
        result = parse_mail_date(value)
        reasons, recovered = tuple(result.reasons), result.value
    except Exception:
        reasons, recovered = (), None
    for reason in reasons:
        notes.add(f"Date header: {reason}")
    if parsed is None:
        parsed = recovered if isinstance(recovered, datetime) else None
        if parsed is None:
            notes.add("Date header could not be parsed")
            return None
    # "-0000" means UTC with the origin's zone unknown (RFC 5322 §3.3): keep it aware.
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def address_notes(raw_headers: dict[str, list[str]], notes: Notes) -> None:
    """Add mail-parser's diagnostics of ambiguous or broken address headers."""
    for name in ADDRESS_HEADERS:
        for value in raw_headers.get(name, [])[:1]:
            diagnostics: list[dict[str, object]] = []
            try:
                get_addresses(value[:MAX_ADDRESS_HEADER_CHARS], defects=diagnostics)
            except Exception:  # a diagnostics helper failing is not a defect of the mail
                continue
            for diagnostic in diagnostics:
                notes.add(f"{name} header: {diagnostic.get('reason', 'unparseable address')}")
