"""Parse raw RFC 5322 bytes into a ``ParsedMessage`` (pure, never raises).

Sole purpose: ``parse_message``. Whatever arrives (zero bytes, 8-bit garbage,
broken MIME, lying charset labels, absurdly deep nesting) yields a
``ParsedMessage`` with what could be recovered and a note in ``defects`` for
what was wrong, so that the pipeline can always decide and the raw bytes stay
the source of truth.

The stdlib ``email`` package with the ``compat32`` policy does the structural
work because it is the most tolerant parser available: it never validates
headers eagerly and keeps undecodable bytes as surrogate escapes, which the
parser then decodes itself (declared charset, then UTF-8, then Windows-1252).
mail-parser contributes its address and date header diagnostics, and its
date parser reads the obsolete forms the stdlib refuses.

This module reads the message as a whole; the parts it delegates to are, in
the order they are used: ``set_aside`` (large base64 bodies), ``headers``
(decoding header values), ``mime`` (walking the MIME tree, with ``body_text``
and ``legacy_mime``), ``header_fields`` (addresses, ids, the date) and
``charset`` (decoding text bytes).
"""

from __future__ import annotations

import email
from email.parser import BytesHeaderParser
from email.policy import compat32

from maild.parsers.charset import clean, tidy_text
from maild.parsers.header_fields import (
    address_notes,
    addresses,
    bare_addresses,
    first_message_id,
    header_date,
    message_ids,
    return_path,
)
from maild.parsers.headers import one_line, read_headers
from maild.parsers.html import html_to_text
from maild.parsers.mime import Body, collect_files, iter_parts, note_defects, walk
from maild.parsers.notes import Notes
from maild.parsers.set_aside import SET_ASIDE_THRESHOLD, restore_base64, set_aside_base64
from maild.parsers.types import ParsedMessage


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse ``raw`` into a ParsedMessage; never raises, notes problems in ``defects``."""
    try:
        raw = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else bytes(raw or b"")
    except Exception:
        raw = b""
    try:
        return _parse(raw)
    except Exception as exc:  # the contract: at worst a thin ParsedMessage, never an error
        return _fallback(raw, f"parser failure ({type(exc).__name__}); only headers recovered")


def _parse(raw: bytes) -> ParsedMessage:
    notes = Notes()
    if not raw.strip():
        notes.add("empty message")
    try:
        source, blobs = set_aside_base64(raw) if len(raw) > SET_ASIDE_THRESHOLD else (raw, {})
        msg = email.message_from_bytes(source, policy=compat32)
        del source
        if blobs:
            restore_base64(msg, blobs)
    except RecursionError:
        # Hostile nesting: keep the headers, and no body rather than raw MIME as "text".
        return _fallback(raw, "MIME structure nested too deeply to parse; only headers were read")
    headers, raw_headers = read_headers(msg, notes)
    body = Body()
    walk(msg, body, notes)
    html = "\n".join(body.html) if body.html else None
    collect_files(body, html, notes)
    # Decoding payloads is what reveals base64/QP damage, so defects are read last.
    for part in iter_parts(msg, notes):
        note_defects(part, notes)
    text = "\n".join(body.plain)
    from_html = False
    if not text.strip():
        if html:
            text = html_to_text(html)
            from_html = True
        elif body.tnef_text:
            text = "\n".join(body.tnef_text)
    address_notes(raw_headers, notes)
    return _assemble(raw, headers, raw_headers, text, html, body, notes, from_html=from_html)


def _fallback(raw: bytes, note: str) -> ParsedMessage:
    """Headers only, for input the MIME parser cannot take."""
    notes = Notes()
    notes.add(note)
    try:
        msg = BytesHeaderParser(policy=compat32).parsebytes(raw)
        headers, raw_headers = read_headers(msg, notes)
        return _assemble(raw, headers, raw_headers, "", None, Body(), notes)
    except Exception:
        return ParsedMessage(
            message_id=None,
            subject="",
            from_addr="",
            from_name="",
            defects=tuple(notes.items),
            size=len(raw),
        )


def _assemble(
    raw: bytes,
    headers: dict[str, tuple[str, ...]],
    raw_headers: dict[str, list[str]],
    text: str,
    html: str | None,
    body: Body,
    notes: Notes,
    *,
    from_html: bool = False,
) -> ParsedMessage:
    senders = addresses(raw_headers.get("from", [])[:1], notes, "from")
    from_name, from_addr = senders[0] if senders else ("", "")
    if "from" not in raw_headers:
        notes.add("no From header")
    elif not from_addr:
        notes.add("From header has no usable address")
    message_id = first_message_id(raw_headers.get("message-id", [])[:1])
    if message_id is None:
        notes.add("no Message-ID header")
    return ParsedMessage(
        message_id=message_id,
        subject=one_line(headers.get("subject", ("",))[0]),
        from_addr=from_addr,
        from_name=from_name,
        to=bare_addresses(raw_headers, "to", notes),
        cc=bare_addresses(raw_headers, "cc", notes),
        reply_to=bare_addresses(raw_headers, "reply-to", notes),
        delivered_to=bare_addresses(raw_headers, "delivered-to", notes),
        x_original_to=bare_addresses(raw_headers, "x-original-to", notes),
        return_path=return_path(raw_headers.get("return-path", [])),
        in_reply_to=message_ids(raw_headers.get("in-reply-to", [])),
        references=message_ids(raw_headers.get("references", [])),
        date=header_date(headers.get("date", (None,))[0], notes),
        text=tidy_text(text),
        html=clean(html) if html is not None else None,
        text_from_html=from_html,
        attachments=tuple(body.attachments),
        headers=headers,
        defects=tuple(notes.items),
        size=len(raw),
    )
