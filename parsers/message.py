"""Parse raw RFC 5322 bytes into a ``ParsedMessage`` (pure, never raises).

Sole purpose: ``parse_message``. Whatever arrives (zero bytes, 8-bit garbage,
broken MIME, lying charset labels, absurdly deep nesting) yields a
``ParsedMessage`` with what could be recovered and a note in ``defects`` for
what was wrong, so that the pipeline can always decide and the raw bytes stay
the source of truth.

The stdlib ``email`` package with the ``compat32`` policy does the structural
work because it is the most tolerant parser available: it never validates
headers eagerly and keeps undecodable bytes as surrogate escapes, which this
module then decodes itself (declared charset, then UTF-8, then Windows-1252).
mail-parser contributes its address and date header diagnostics, and its
date parser reads the obsolete forms the stdlib refuses.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import email
import email.utils
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from urllib.parse import unquote

from maild.parsers.attachments import guess_content_type
from maild.parsers.html import html_to_text
from maild.parsers.types import AttachmentPart, ParsedMessage
from mailparser.dates import parse_mail_date
from mailparser.utils import get_addresses
from tnefparse.tnef import TNEF

# Deeper MIME trees than this are not walked (a real client nests a handful).
MAX_MIME_DEPTH = 64
# Address headers longer than this are cut before parsing (parsing cost grows with length).
MAX_ADDRESS_HEADER_CHARS = 65536

TNEF_TYPES = frozenset({"application/ms-tnef", "application/vnd.ms-tnef"})
TNEF_FILENAME = "winmail.dat"
BODY_TYPES = frozenset({"text/plain", "text/html"})
# Leaf parts of these major types are files even without a name or a disposition.
FILE_MAINTYPES = frozenset({"image", "application", "audio", "video", "font", "model"})
# Cryptographic signatures travel as parts but are not files the sender meant to share.
SIGNATURE_TYPES = frozenset(
    {"application/pkcs7-signature", "application/x-pkcs7-signature", "application/pgp-signature"}
)
ADDRESS_HEADERS = ("from", "sender", "reply-to", "to", "cc")
REPORT_TYPE = "multipart/report"
# The machine-readable parts of delivery and read reports: not files anyone attached.
REPORT_PART_TYPES = frozenset({"text/rfc822-headers", "text/rfc822-header"})
ATTACHED_MESSAGE_TYPES = frozenset({"message/rfc822", "message/global"})
# AppleDouble's header part (Mac metadata and resource fork): not a file of the sender's.
APPLEFILE_TYPES = frozenset({"application/applefile"})
_APPLESINGLE_MAGIC = 0x00051600
_APPLE_DATA_FORK = 1
_APPLE_REAL_NAME = 3
_EML_NAME_UNSAFE = re.compile(r'[\\/:*?"<>|\x00-\x1f]+')
# Content-Description holding a file name (Outlook 2000, Eudora): "report.pdf".
_DESCRIPTION_NAME = re.compile(r"^[^/\\:*?\"<>|\r\n]{1,200}\.[A-Za-z][A-Za-z0-9]{1,4}$")
# uuencoded files inside a text body (Eudora, Pine, old Outlook Express).
_UU_BLOCK = re.compile(
    r"^begin(?:-base64)? [0-7]{3,4} (?P<name>[^\n]+?)[ \t]*\n"
    r"(?P<data>(?:.*\n)*?)(?:end|====)[ \t]*(?:\n|$)",
    re.MULTILINE,
)

_WESTERN_SINGLE_BYTE = frozenset({"ascii", "iso8859-1", "cp1252", "iso8859-15"})
# Labels real mailers use that Python's codec registry does not know (or knows wrongly).
_CHARSET_ALIASES = {
    "ks_c_5601-1987": "cp949",
    "iso-8859-8-i": "iso-8859-8",
    "x-mac-roman": "mac_roman",
    "macintosh": "mac_roman",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "x-sjis": "shift_jis",
    "unicode-1-1-utf-7": "utf-7",
    "ansi": "cp1252",
    "windows-1252": "cp1252",
}
# Labels that mean "unknown" rather than naming a charset.
_NO_CHARSET = frozenset({"unknown-8bit", "x-unknown", "unknown", "default", "none", ""})
# Registered codecs that are not charsets a mail could legitimately be written in.
_FORBIDDEN_CODECS = frozenset(
    {"unicode_escape", "raw_unicode_escape", "idna", "punycode", "undefined", "mbcs", "oem"}
)

_NOT_BASE64 = re.compile(r"[^A-Za-z0-9+/=\s]")
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([qQbB])\?([^?]*?)\?=")
_FOLD = re.compile(r"\r?\n(?=[ \t])|\r\n?|\n")
_QP_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")
_LOOSE_ANGLE_ADDR = re.compile(r"<\s*([^<>\s@\"]+@[^<>\s@\"]+?)\s*>")
_LOOSE_BARE_ADDR = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_ANGLE_ID = re.compile(r"<([^<>\s]+)>")
_CID_REF = re.compile(r"""cid:([^"'\s>)]+)""", re.IGNORECASE)
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass
class _Notes:
    """Ordered, de-duplicated defect notes collected while parsing one message."""

    items: list[str] = field(default_factory=list)

    def add(self, note: str) -> None:
        if note not in self.items:
            self.items.append(note)


@dataclass
class _Body:
    """Body texts and attachments gathered from the MIME tree."""

    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    tnef_text: list[str] = field(default_factory=list)
    files: list[tuple[Message, str, str, str | None, str | None]] = field(default_factory=list)
    attachments: list[AttachmentPart] = field(default_factory=list)


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


# The stdlib's feed parser keeps one string per line while it reads a body: a 14 MB
# message of 76-character base64 lines peaks near 120 MB. Above this size, large
# base64 bodies are decoded straight from the raw bytes and the parser only sees
# a short placeholder in their place.
SET_ASIDE_THRESHOLD = 1 << 20
SET_ASIDE_MIN_BODY = 64 << 10
_B64_CTE = re.compile(rb"(?im)^content-transfer-encoding:[ \t]*base64[ \t]*\r?$")
_BLANK_LINE = re.compile(rb"\n\r?\n")
_PLACEHOLDER = "MAILDBLOB{}X"


def _set_aside_base64(raw: bytes) -> tuple[bytes, dict[str, bytes]]:
    """``raw`` with its large base64 bodies replaced by placeholders, and their bytes.

    A base64 body runs from the blank line ending its part's header block to the
    next line starting with ``--`` (a boundary: ``-`` is not in the base64
    alphabet) or the end of the message. A body that does not decode cleanly is
    left in place for the parser to report.
    """
    out: list[bytes] = []
    blobs: dict[str, bytes] = {}
    pos = 0
    for match in _B64_CTE.finditer(raw):
        if match.start() < pos:
            continue
        blank = _BLANK_LINE.search(raw, match.end())
        if blank is None:
            break
        start = blank.end()
        end = raw.find(b"\n--", start)
        if end == -1:
            end = len(raw)
        if end - start < SET_ASIDE_MIN_BODY:
            continue
        try:
            decoded = binascii.a2b_base64(memoryview(raw)[start:end], strict_mode=False)
        except (binascii.Error, ValueError):
            continue
        token = _PLACEHOLDER.format(len(blobs))
        blobs[token] = decoded
        out.append(raw[pos:start])
        out.append(token.encode() + b"\r\n")
        pos = end
    if not blobs:
        return raw, {}
    out.append(raw[pos:])
    return b"".join(out), blobs


def _restore_base64(msg: Message, blobs: dict[str, bytes]) -> None:
    """Put the set-aside bodies back as already-decoded payloads."""
    for part in msg.walk():
        if part.is_multipart():
            continue
        payload = part.get_payload()
        if isinstance(payload, str):
            data = blobs.get(payload.strip())
            if data is not None:
                part.set_payload(data)
                # Decoded already: get_payload(decode=True) must hand the bytes back as they are.
                del part["Content-Transfer-Encoding"]
                part["Content-Transfer-Encoding"] = "binary"


def decode_header_value(value: str) -> str:
    """Decode one raw header value: unfold, RFC 2047 words, stray 8-bit bytes; never raises."""
    try:
        return _decode_header(str(value), _Notes(), "")
    except Exception:
        return _clean(str(value))


def decode_text(data: bytes, declared: str | None) -> str:
    """Decode body bytes with the fallback chain (declared charset, UTF-8, Windows-1252);
    never raises, whatever the label says (``idna``, ``rot13``, garbage)."""
    try:
        return _decode_bytes(data, declared)[0]
    except Exception:
        return _clean(data.decode("cp1252", "replace"))


# --- whole message ---------------------------------------------------------------------------


def _parse(raw: bytes) -> ParsedMessage:
    notes = _Notes()
    if not raw.strip():
        notes.add("empty message")
    try:
        source, blobs = _set_aside_base64(raw) if len(raw) > SET_ASIDE_THRESHOLD else (raw, {})
        msg = email.message_from_bytes(source, policy=compat32)
        del source
        if blobs:
            _restore_base64(msg, blobs)
    except RecursionError:
        # Hostile nesting: keep the headers, and no body rather than raw MIME as "text".
        return _fallback(raw, "MIME structure nested too deeply to parse; only headers were read")
    headers, raw_headers = _headers(msg, notes)
    body = _Body()
    _walk(msg, body, notes)
    html = "\n".join(body.html) if body.html else None
    _collect_files(body, html, notes)
    # Decoding payloads is what reveals base64/QP damage, so defects are read last.
    for part in _iter_parts(msg, notes):
        _note_defects(part, notes)
    text = "\n".join(body.plain)
    from_html = False
    if not text.strip():
        if html:
            text = html_to_text(html)
            from_html = True
        elif body.tnef_text:
            text = "\n".join(body.tnef_text)
    _address_notes(raw_headers, notes)
    return _assemble(raw, headers, raw_headers, text, html, body, notes, from_html=from_html)


def _fallback(raw: bytes, note: str) -> ParsedMessage:
    """Headers only, for input the MIME parser cannot take."""
    notes = _Notes()
    notes.add(note)
    try:
        msg = BytesHeaderParser(policy=compat32).parsebytes(raw)
        headers, raw_headers = _headers(msg, notes)
        return _assemble(raw, headers, raw_headers, "", None, _Body(), notes)
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
    body: _Body,
    notes: _Notes,
    *,
    from_html: bool = False,
) -> ParsedMessage:
    senders = _addresses(raw_headers.get("from", [])[:1], notes, "from")
    from_name, from_addr = senders[0] if senders else ("", "")
    if "from" not in raw_headers:
        notes.add("no From header")
    elif not from_addr:
        notes.add("From header has no usable address")
    message_id = _first_id(raw_headers.get("message-id", [])[:1])
    if message_id is None:
        notes.add("no Message-ID header")
    return ParsedMessage(
        message_id=message_id,
        subject=_one_line(headers.get("subject", ("",))[0]),
        from_addr=from_addr,
        from_name=from_name,
        to=_bare(raw_headers, "to", notes),
        cc=_bare(raw_headers, "cc", notes),
        reply_to=_bare(raw_headers, "reply-to", notes),
        delivered_to=_bare(raw_headers, "delivered-to", notes),
        x_original_to=_bare(raw_headers, "x-original-to", notes),
        return_path=_return_path(raw_headers.get("return-path", [])),
        in_reply_to=_ids(raw_headers.get("in-reply-to", [])),
        references=_ids(raw_headers.get("references", [])),
        date=_date(headers.get("date", (None,))[0], notes),
        text=_tidy_text(text),
        html=_clean(html) if html is not None else None,
        text_from_html=from_html,
        attachments=tuple(body.attachments),
        headers=headers,
        defects=tuple(notes.items),
        size=len(raw),
    )


# --- headers ---------------------------------------------------------------------------------


def _headers(
    msg: Message, notes: _Notes
) -> tuple[dict[str, tuple[str, ...]], dict[str, list[str]]]:
    """Decoded values per lowercased name, and the raw (unfolded, 8-bit decoded) values."""
    decoded: dict[str, list[str]] = {}
    raw: dict[str, list[str]] = {}
    for name, value in msg.raw_items():
        key = _clean(_unsurrogate(str(name), notes, "")).strip().lower()
        if not key:
            continue
        text = str(value)
        raw.setdefault(key, []).append(_unsurrogate(_unfold(text), notes, key))
        decoded.setdefault(key, []).append(_decode_header(text, notes, key))
    return {k: tuple(v) for k, v in decoded.items()}, raw


def _decode_header(value: str, notes: _Notes, name: str) -> str:
    text = _unsurrogate(_unfold(value), notes, name)
    if "=?" not in text:
        return _clean(text).strip()
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
        decoded, note = _decode_bytes(chunk, label)
        if note:
            notes.add(f"{name or 'a'} header: {note}")
        out.append(decoded)
    return _clean("".join(out)).strip()


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
            codec = _codec(charset.split("*", 1)[0]) or "utf-8"
            text = text.encode(codec, "replace").decode("latin-1")
        data = text.encode("latin-1", "replace")
        return _QP_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), data)
    except (binascii.Error, ValueError, UnicodeError, LookupError):
        return None


def _unfold(value: str) -> str:
    return _FOLD.sub("", value) if "\n" in value or "\r" in value else value


def _unsurrogate(text: str, notes: _Notes, name: str) -> str:
    """Undo the parser's surrogate escapes of raw 8-bit header bytes."""
    if not _SURROGATE.search(text):
        return text
    try:
        data = text.encode("utf-8", "surrogateescape")
    except UnicodeError:
        return _SURROGATE.sub("\ufffd", text)
    decoded, _ = _decode_bytes(data, None)
    if name:
        notes.add(f"raw 8-bit bytes in {name} header")
    return decoded


def _one_line(value: str) -> str:
    return " ".join(value.split())


def _addresses(values: list[str], notes: _Notes, name: str) -> list[tuple[str, str]]:
    """(decoded display name, lowercased bare address) pairs with an @ in the address."""
    result: list[tuple[str, str]] = []
    for value in values:
        if len(value) > MAX_ADDRESS_HEADER_CHARS:
            notes.add(f"{name} header too long; only its start was read")
            value = value[:MAX_ADDRESS_HEADER_CHARS]
        found: list[tuple[str, str]] = []
        for display, addr in email.utils.getaddresses([value]):
            addr = _clean(addr).strip().strip("<>").strip().lower()
            if "@" not in addr or any(ch.isspace() for ch in addr):
                continue
            found.append((_one_line(decode_header_value(display)), addr))
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
        return [(_one_line(decode_header_value(display)), _clean(angled.group(1)).lower())]
    bare = _LOOSE_BARE_ADDR.search(value)
    return [("", _clean(bare.group(0)).lower())] if bare else []


def _bare(raw_headers: dict[str, list[str]], name: str, notes: _Notes) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for _, addr in _addresses(raw_headers.get(name, []), notes, name):
        seen.setdefault(addr, None)
    return tuple(seen)


def _return_path(values: list[str]) -> str | None:
    if not values:
        return None
    value = values[0].strip()
    if value in ("", "<>"):
        return ""
    addr = email.utils.parseaddr(value)[1].strip().lower()
    return addr if "@" in addr else ""


def _ids(values: list[str]) -> tuple[str, ...]:
    found: dict[str, None] = {}
    for value in values:
        ids = _ANGLE_ID.findall(value)
        if not ids:
            ids = [t.strip("<>") for t in re.split(r"[\s,]+", value) if "@" in t]
        for msg_id in ids:
            cleaned = _clean(msg_id).strip()
            if cleaned:
                found.setdefault(cleaned, None)
    return tuple(found)


def _first_id(values: list[str]) -> str | None:
    if not values:
        return None
    ids = _ids(values)
    if ids:
        return ids[0]
    token = values[0].strip().strip("<>").strip()
    return _clean(token) or None


def _date(value: str | None, notes: _Notes) -> datetime | None:
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


# --- MIME tree -------------------------------------------------------------------------------


def _iter_parts(msg: Message, notes: _Notes) -> Iterator[Message]:
    """Every part of the message itself, depth first; attached messages are not entered."""
    stack: list[tuple[Message, int]] = [(msg, 0)]
    while stack:
        part, depth = stack.pop()
        yield part
        if part.get_content_maintype() == "message" or not part.is_multipart():
            continue
        if depth >= MAX_MIME_DEPTH:
            notes.add(f"MIME tree deeper than {MAX_MIME_DEPTH} levels; the rest was ignored")
            continue
        children = [p for p in part.get_payload() if isinstance(p, Message)]
        stack.extend((child, depth + 1) for child in reversed(children))


def _walk(msg: Message, body: _Body, notes: _Notes) -> None:
    report = msg.get_content_type() == REPORT_TYPE
    for part in _iter_parts(msg, notes):
        try:
            if part.get_content_type() in ATTACHED_MESSAGE_TYPES and not report:
                _attached_message(part, body)
                continue
            if part.get_content_maintype() == "message" or part.is_multipart():
                continue
            _leaf(part, body, notes)
        except Exception as exc:  # one broken part must not cost the others
            notes.add(f"a MIME part could not be read ({type(exc).__name__})")


def _attached_message(part: Message, body: _Body) -> None:
    """A ``message/rfc822`` part is a file the sender attached: kept as ``<subject>.eml``."""
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        inner = payload[0]
        data = inner.as_bytes(policy=compat32)
        subject = _one_line(decode_header_value(str(inner.get("subject") or "")))
    else:
        data = part.get_payload(decode=True) or b""
        subject = ""
    safe = " ".join(_EML_NAME_UNSAFE.sub(" ", subject).split())[:80].strip(" .")
    name = _filename(part) or safe or "message"
    if not name.lower().endswith(".eml"):
        name += ".eml"
    body.attachments.append(
        AttachmentPart(filename=name, content_type="message/rfc822", payload=bytes(data))
    )


def _note_defects(part: Message, notes: _Notes) -> None:
    for defect in getattr(part, "defects", ()):
        doc = (type(defect).__doc__ or "").strip().splitlines()
        detail = f": {doc[0]}" if doc else ""
        notes.add(f"{type(defect).__name__} in {part.get_content_type()}{detail}")


def _leaf(part: Message, body: _Body, notes: _Notes) -> None:
    ctype = part.get_content_type()
    disposition = part.get_content_disposition()
    filename = _filename(part)
    content_id = _content_id(part)
    if ctype.startswith("multipart/"):
        # A multipart without a usable boundary arrives as one opaque leaf.
        ctype = "text/plain"
    if ctype in BODY_TYPES and disposition != "attachment" and not filename:
        text = _part_text(part, notes)
        if ctype == "text/plain" and "begin " in text:
            text = _uudecode_files(text, body, notes)
        (body.html if ctype == "text/html" else body.plain).append(text)
        return
    if ctype in SIGNATURE_TYPES or ctype in REPORT_PART_TYPES:
        return
    if ctype in APPLEFILE_TYPES:
        _applefile(part, body, notes)
        return
    if ctype in TNEF_TYPES or filename.lower() == TNEF_FILENAME:
        _unpack_tnef(part, body, notes)
        return
    body.files.append((part, ctype, filename, disposition, content_id))


def _collect_files(body: _Body, html: str | None, notes: _Notes) -> None:
    referenced = {unquote(ref).strip("<>").lower() for ref in _CID_REF.findall(html or "")}
    for part, ctype, filename, disposition, content_id in body.files:
        cited = content_id is not None and content_id.lower() in referenced
        is_file = (
            bool(filename)
            or disposition == "attachment"
            or cited
            or ctype.split("/", 1)[0] in FILE_MAINTYPES
            or ctype not in BODY_TYPES  # text/csv, text/calendar... never dropped unsaid
        )
        if not is_file:
            continue
        try:
            payload = part.get_payload(decode=True)
        except Exception as exc:  # one broken part must not cost the others
            notes.add(f"an attachment could not be decoded ({type(exc).__name__})")
            payload = b""
        body.attachments.append(
            AttachmentPart(
                filename=filename,
                content_type=ctype,
                payload=payload if isinstance(payload, bytes) else b"",
                content_id=content_id,
                inline=disposition == "inline" or cited,
            )
        )


def _filename(part: Message) -> str:
    """Content-Disposition filename, else Content-Type name, else a Content-Description
    that is a file name (Outlook 2000 and Eudora name some files only there)."""
    try:
        name = part.get_filename()
    except Exception:
        name = None
    if not name:
        try:
            name = part.get_param("name", header="content-type")
        except Exception:
            name = None
        if isinstance(name, tuple):  # RFC 2231 (charset, language, value)
            name = email.utils.collapse_rfc2231_value(name)
    if name:
        return _one_line(decode_header_value(str(name)))
    description = _one_line(decode_header_value(str(part.get("content-description") or "")))
    return description if _DESCRIPTION_NAME.match(description) else ""


def _uudecode_files(text: str, body: _Body, notes: _Notes) -> str:
    """Move uuencoded files out of a text body into attachments; the text without them."""

    def take(match: re.Match[str]) -> str:
        name = _one_line(match.group("name")).strip("\"'") or "attachment"
        data = bytearray()
        for line in match.group("data").split("\n"):
            if not line or line in ("`", " "):
                continue
            try:
                data += binascii.a2b_uu(line)
            except binascii.Error:
                try:  # some encoders pad lines short: decode by the declared length
                    nbytes = (((ord(line[0]) - 32) & 63) * 4 + 5) // 3
                    data += binascii.a2b_uu(line[:nbytes])
                except (binascii.Error, IndexError, ValueError):
                    notes.add("a uuencoded file had a damaged line")
        ctype = guess_content_type(name)
        body.attachments.append(
            AttachmentPart(filename=name, content_type=ctype, payload=bytes(data))
        )
        return ""

    return _UU_BLOCK.sub(take, text)


def _applefile(part: Message, body: _Body, notes: _Notes) -> None:
    """AppleDouble's header part is metadata (its data fork is its own part); an
    AppleSingle part carries the file itself, which is taken out."""
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    if len(data) < 26 or int.from_bytes(data[0:4], "big") != _APPLESINGLE_MAGIC:
        return
    count = int.from_bytes(data[24:26], "big")
    name, fork = _filename(part), None
    for index in range(min(count, 64)):
        entry = data[26 + 12 * index : 38 + 12 * index]
        if len(entry) < 12:
            break
        kind = int.from_bytes(entry[0:4], "big")
        offset = int.from_bytes(entry[4:8], "big")
        length = int.from_bytes(entry[8:12], "big")
        if kind == _APPLE_DATA_FORK:
            fork = data[offset : offset + length]
        elif kind == _APPLE_REAL_NAME:
            name = _decode_bytes(data[offset : offset + length], "mac_roman")[0] or name
    if fork is None:
        notes.add("AppleSingle part without a data fork")
        return
    body.attachments.append(
        AttachmentPart(
            filename=_one_line(name), content_type=guess_content_type(name), payload=fork
        )
    )


def _content_id(part: Message) -> str | None:
    value = part.get("content-id")
    if value is None:
        return None
    cid = _clean(_unfold(str(value))).strip().strip("<>").strip()
    return cid or None


def _part_text(part: Message, notes: _Notes) -> str:
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    declared = part.get_content_charset()
    text, note = _decode_bytes(data, declared)
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


def _unpack_tnef(part: Message, body: _Body, notes: _Notes) -> None:
    """Outlook's winmail.dat: its files become attachments, its body a last-resort text."""
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tnef = TNEF(data, do_checksum=False)
        files = [(_tnef_name(a), a.data) for a in tnef.attachments]
        texts = [t for t in (_tnef_text(tnef.body), _tnef_html(tnef.htmlbody)) if t.strip()]
    except Exception as exc:
        notes.add(f"winmail.dat (TNEF) could not be unpacked ({type(exc).__name__})")
        body.attachments.append(
            AttachmentPart(
                filename=_filename(part) or TNEF_FILENAME,
                content_type=part.get_content_type(),
                payload=data,
            )
        )
        return
    for name, content in files:
        ctype = guess_content_type(name)
        content_bytes = content if isinstance(content, bytes) else str(content).encode()
        body.attachments.append(
            AttachmentPart(filename=name, content_type=ctype, payload=content_bytes)
        )
    body.tnef_text.extend(texts[:1])


def _tnef_name(attachment: object) -> str:
    name = attachment.long_filename()  # type: ignore[attr-defined]
    if isinstance(name, bytes):
        name, _ = _decode_bytes(name, None)
    return _one_line(_clean(str(name)).strip("\x00"))


def _tnef_text(value: object) -> str:
    if isinstance(value, bytes):
        return _tidy_text(_decode_bytes(value.rstrip(b"\x00"), None)[0])
    return _tidy_text(str(value)) if value else ""


def _tnef_html(value: object) -> str:
    if isinstance(value, bytes):
        value = _decode_bytes(value.rstrip(b"\x00"), None)[0]
    return html_to_text(str(value)) if value else ""


def _address_notes(raw_headers: dict[str, list[str]], notes: _Notes) -> None:
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


# --- text decoding ---------------------------------------------------------------------------


def _codec(label: str | None) -> str | None:
    """Python codec name for a MIME charset label, or None when unknown/unusable."""
    if label is None:
        return None
    cleaned = label.strip().strip("\"'").strip().lower()
    cleaned = _CHARSET_ALIASES.get(cleaned, cleaned)
    if cleaned in _NO_CHARSET:
        return None
    try:
        info = codecs.lookup(cleaned)
    except (LookupError, ValueError):
        return None
    if (
        not getattr(info, "_is_text_encoding", True)
        or info.name.replace("-", "_") in _FORBIDDEN_CODECS
    ):
        return None
    return info.name


def _decode_bytes(data: bytes, declared: str | None) -> tuple[str, str | None]:
    """Decode text bytes: declared charset, then UTF-8, then Windows-1252.

    Returns the text and a note when the declared charset could not be used as is.
    Text labelled ASCII/ISO-8859-1/Windows-1252 that is valid non-ASCII UTF-8 is
    read as UTF-8: mislabelled UTF-8 is common, Latin-1 text that happens to be
    valid UTF-8 practically never happens.
    """
    if not data:
        return "", None
    codec = _codec(declared)
    label = (declared or "").strip()[:40]
    unknown = codec is None and bool(label) and label.lower() not in _NO_CHARSET
    if codec is None or codec in _WESTERN_SINGLE_BYTE:
        if data.isascii():
            return _clean(data.decode("ascii")), None
        utf8 = _try_decode(data, "utf-8")
        if utf8 is not None:
            if codec is not None:
                return _clean(utf8), f"labelled {label!r} but is UTF-8"
            return _clean(utf8), (
                f"unknown charset {label!r}; decoded as UTF-8" if unknown else None
            )
        if codec == "iso8859-15":
            return _clean(data.decode(codec)), None
        if codec in ("iso8859-1", "cp1252"):
            # ISO-8859-1 labels on Windows text: cp1252 is the superset senders mean.
            text = _try_decode(data, "cp1252")
            return _clean(text if text is not None else data.decode("latin-1")), None
        if codec == "ascii":
            note = f"labelled {label!r} but has 8-bit bytes; decoded as Windows-1252"
        elif unknown:
            note = f"unknown charset {label!r}; decoded as Windows-1252"
        else:
            note = "8-bit text without a charset; decoded as Windows-1252"
        return _clean(data.decode("cp1252", "replace")), note
    text = _try_decode(data, codec)
    if text is not None:
        return _clean(text), None
    utf8 = _try_decode(data, "utf-8")
    if utf8 is not None:
        return _clean(utf8), f"not valid {label!r}; decoded as UTF-8"
    return _clean(data.decode("cp1252", "replace")), f"not valid {label!r}; decoded as Windows-1252"


def _try_decode(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec)
    except (UnicodeError, LookupError, ValueError):
        return None


def _clean(text: str) -> str:
    """Drop NULs and stray surrogates: databases and JSON refuse them."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text


def _tidy_text(text: str) -> str:
    text = _clean(text).replace("\r\n", "\n").replace("\r", "\n")
    return text.strip("\n").rstrip()
