"""Decode raw header values: unfolding, RFC 2047 encoded words, stray 8-bit bytes."""

from __future__ import annotations

import base64
import binascii
import re
from email.message import Message

from maild.parsers.charset import SURROGATE, clean, codec_for, decode_bytes
from maild.parsers.notes import Notes

_NOT_BASE64 = re.compile(r"[^A-Za-z0-9+/=\s]")
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([qQbB])\?([^?]*?)\?=")
_FOLD = re.compile(r"\r?\n(?=[ \t])|\r\n?|\n")
_QP_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")


def decode_header_value(value: str) -> str:
    """Decode one raw header value: unfold, RFC 2047 words, stray 8-bit bytes; never raises."""
    try:
        return decode_header(str(value), Notes(), "")
    except Exception:
        return clean(str(value))


def read_headers(
    msg: Message, notes: Notes
) -> tuple[dict[str, tuple[str, ...]], dict[str, list[str]]]:
    """Decoded values per lowercased name, and the raw (unfolded, 8-bit decoded) values."""
    decoded: dict[str, list[str]] = {}
    raw: dict[str, list[str]] = {}
    for name, value in msg.raw_items():
        key = clean(_unsurrogate(str(name), notes, "")).strip().lower()
        if not key:
            continue
        text = str(value)
        raw.setdefault(key, []).append(_unsurrogate(unfold(text), notes, key))
        decoded.setdefault(key, []).append(decode_header(text, notes, key))
    return {k: tuple(v) for k, v in decoded.items()}, raw


def decode_header(value: str, notes: Notes, name: str) -> str:
    """Decode one header value, noting raw 8-bit bytes and undecodable words under ``name``."""
    text = _unsurrogate(unfold(value), notes, name)
    if "=?" not in text:
        return clean(text).strip()
    # Collect (bytes, charset) for encoded words and (str, None) for plain runs, so
    # adjacent words in one charset are joined before decoding: senders split a
    # multi-byte character across two words.
    chunks: list[tuple[bytes | str, str | None]] = []
    pos = 0
    for match in _ENCODED_WORD.finditer(text):
        charset, encoding, payload = match.groups()
        data = _decode_word(encoding, payload, charset)
        between = text[pos : match.start()]
        after_word = bool(chunks) and isinstance(chunks[-1][0], bytes)
        # Whitespace between two encoded words is not text (RFC 2047 §6.2), unless
        # the second is shown as written.
        if between and not (after_word and not between.strip() and data is not None):
            chunks.append((between, None))
        if data is None:
            chunks.append((match.group(0), None))
            notes.add(f"undecodable encoded word in {name or 'a'} header")
        else:
            label = charset.split("*", 1)[0]
            if chunks and isinstance(chunks[-1][0], bytes) and chunks[-1][1] == label:
                chunks[-1] = (chunks[-1][0] + data, label)
            else:
                chunks.append((data, label))
        pos = match.end()
    chunks.append((text[pos:], None))
    out: list[str] = []
    for chunk, label in chunks:
        if isinstance(chunk, str):
            out.append(chunk)
            continue
        decoded, note = decode_bytes(chunk, label)
        if note:
            notes.add(f"{name or 'a'} header: {note}")
        out.append(decoded)
    return clean("".join(out)).strip()


def _decode_word(encoding: str, payload: str, charset: str = "") -> bytes | None:
    try:
        if encoding in "bB":
            if _NOT_BASE64.search(payload):
                return None  # shown as written rather than decoded into garbage
            compact = re.sub(r"[^A-Za-z0-9+/]", "", payload)
            return base64.b64decode(compact + "=" * (-len(compact) % 4))
        text = payload.replace("_", " ")
        if not text.isascii():
            # Raw 8-bit bytes inside the word (Eudora): already read as text by the
            # header pass; written back in the word's own charset so that it decodes once.
            codec = codec_for(charset.split("*", 1)[0]) or "utf-8"
            text = text.encode(codec, "replace").decode("latin-1")
        data = text.encode("latin-1", "replace")
        return _QP_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), data)
    except (binascii.Error, ValueError, UnicodeError, LookupError):
        return None


def unfold(value: str) -> str:
    """The header value on one line (RFC 5322 unfolding)."""
    return _FOLD.sub("", value) if "\n" in value or "\r" in value else value


def _unsurrogate(text: str, notes: Notes, name: str) -> str:
    """Undo the parser's surrogate escapes of raw 8-bit header bytes."""
    if not SURROGATE.search(text):
        return text
    try:
        data = text.encode("utf-8", "surrogateescape")
    except UnicodeError:
        return SURROGATE.sub("\ufffd", text)
    decoded, _ = decode_bytes(data, None)
    if name:
        notes.add(f"raw 8-bit bytes in {name} header")
    return decoded


def one_line(value: str) -> str:
    """Whitespace runs collapsed to single spaces, ends trimmed."""
    return " ".join(value.split())
