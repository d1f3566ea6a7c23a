"""A text part's payload as text: charset fallbacks, line ends, format=flowed."""

from __future__ import annotations

from email.message import Message

from maild.parsers.charset import decode_bytes
from maild.parsers.notes import Notes


def part_text(part: Message, notes: Notes) -> str:
    """The part's text with LF line ends, format=flowed joined; charset problems noted."""
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    declared = part.get_content_charset()
    text, note = decode_bytes(data, declared)
    if note:
        notes.add(f"{part.get_content_type()} body: {note}")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if str(part.get_param("format") or "").lower() == "flowed":
        text = _unflow(text, delsp=str(part.get_param("delsp") or "").lower() == "yes")
    return text


def _unflow(text: str, *, delsp: bool) -> str:
    """Join format=flowed soft line breaks (RFC 3676), keeping quote depth."""
    out: list[str] = []
    pending: str | None = None
    pending_depth = 0
    for line in text.split("\n"):
        stripped = line.lstrip(">")
        depth = len(line) - len(stripped)
        if stripped.startswith(" "):
            stripped = stripped[1:]
        flowed = stripped.endswith(" ") and stripped != "-- "
        if flowed and delsp:
            stripped = stripped[:-1]
        if pending is not None and depth == pending_depth:
            pending += stripped
        else:
            if pending is not None:
                out.append(_quoted(pending, pending_depth))
            pending, pending_depth = stripped, depth
        if not flowed:
            out.append(_quoted(pending, pending_depth))
            pending = None
    if pending is not None:
        out.append(_quoted(pending, pending_depth))
    return "\n".join(out)


def _quoted(text: str, depth: int) -> str:
    return (">" * depth + " " + text) if depth and text else (">" * depth + text)
