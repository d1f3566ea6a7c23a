"""Walk the MIME tree: body texts to one side, the sender's files to the other.

``walk`` visits every part of the message itself (attached messages are kept
whole, as ``.eml`` files), sorts each leaf into body text, file, or noise
(signatures, report parts), and hands old packings to ``legacy_mime``.
``collect_files`` then keeps the candidate files that really are files.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from email.policy import compat32
from urllib.parse import unquote

from maild.parsers.body_text import part_text
from maild.parsers.charset import clean
from maild.parsers.headers import decode_header_value, one_line, unfold
from maild.parsers.legacy_mime import (
    APPLEFILE_TYPES,
    TNEF_FILENAME,
    TNEF_TYPES,
    unpack_applefile,
    unpack_tnef,
    uudecode_files,
)
from maild.parsers.notes import Notes
from maild.parsers.types import AttachmentPart

# Deeper MIME trees than this are not walked (a real client nests a handful).
MAX_MIME_DEPTH = 64
BODY_TYPES = frozenset({"text/plain", "text/html"})
# Leaf parts of these major types are files even without a name or a disposition.
FILE_MAINTYPES = frozenset({"image", "application", "audio", "video", "font", "model"})
# Cryptographic signatures travel as parts but are not files the sender meant to share.
SIGNATURE_TYPES = frozenset(
    {"application/pkcs7-signature", "application/x-pkcs7-signature", "application/pgp-signature"}
)
REPORT_TYPE = "multipart/report"
# The machine-readable parts of delivery and read reports: not files anyone attached.
REPORT_PART_TYPES = frozenset({"text/rfc822-headers", "text/rfc822-header"})
ATTACHED_MESSAGE_TYPES = frozenset({"message/rfc822", "message/global"})
_EML_NAME_UNSAFE = re.compile(r'[\\/:*?"<>|\x00-\x1f]+')
# Content-Description holding a file name (Outlook 2000, Eudora): "report.pdf".
_DESCRIPTION_NAME = re.compile(r"^[^/\\:*?\"<>|\r\n]{1,200}\.[A-Za-z][A-Za-z0-9]{1,4}$")
_CID_REF = re.compile(r"""cid:([^"'\s>)]+)""", re.IGNORECASE)


@dataclass
class Body:
    """Body texts and attachments gathered from the MIME tree."""

    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    tnef_text: list[str] = field(default_factory=list)
    files: list[tuple[Message, str, str, str | None, str | None]] = field(default_factory=list)
    attachments: list[AttachmentPart] = field(default_factory=list)


def iter_parts(msg: Message, notes: Notes) -> Iterator[Message]:
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


def walk(msg: Message, body: Body, notes: Notes) -> None:
    """Sort every part into ``body``: texts, attached messages, candidate files."""
    report = msg.get_content_type() == REPORT_TYPE
    for part in iter_parts(msg, notes):
        try:
            if part.get_content_type() in ATTACHED_MESSAGE_TYPES and not report:
                _attached_message(part, body)
                continue
            if part.get_content_maintype() == "message" or part.is_multipart():
                continue
            _leaf(part, body, notes)
        except Exception as exc:  # one broken part must not cost the others
            notes.add(f"a MIME part could not be read ({type(exc).__name__})")


def _attached_message(part: Message, body: Body) -> None:
    """A ``message/rfc822`` part is a file the sender attached: kept as ``<subject>.eml``."""
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        inner = payload[0]
        data = inner.as_bytes(policy=compat32)
        subject = one_line(decode_header_value(str(inner.get("subject") or "")))
    else:
        data = part.get_payload(decode=True) or b""
        subject = ""
    safe = " ".join(_EML_NAME_UNSAFE.sub(" ", subject).split())[:80].strip(" .")
    name = part_filename(part) or safe or "message"
    if not name.lower().endswith(".eml"):
        name += ".eml"
    body.attachments.append(
        AttachmentPart(filename=name, content_type="message/rfc822", payload=bytes(data))
    )


def note_defects(part: Message, notes: Notes) -> None:
    """The stdlib parser's defects of ``part``, as notes."""
    for defect in getattr(part, "defects", ()):
        doc = (type(defect).__doc__ or "").strip().splitlines()
        detail = f": {doc[0]}" if doc else ""
        notes.add(f"{type(defect).__name__} in {part.get_content_type()}{detail}")


def _leaf(part: Message, body: Body, notes: Notes) -> None:
    ctype = part.get_content_type()
    disposition = part.get_content_disposition()
    filename = part_filename(part)
    content_id = _content_id(part)
    if ctype.startswith("multipart/"):
        # A multipart without a usable boundary arrives as one opaque leaf.
        ctype = "text/plain"
    if ctype in BODY_TYPES and disposition != "attachment" and not filename:
        text = part_text(part, notes)
        if ctype == "text/plain" and "begin " in text:
            text, files = uudecode_files(text, notes)
            body.attachments.extend(files)
        (body.html if ctype == "text/html" else body.plain).append(text)
        return
    if ctype in SIGNATURE_TYPES or ctype in REPORT_PART_TYPES:
        return
    if ctype in APPLEFILE_TYPES:
        unpacked = unpack_applefile(part, filename, notes)
        if unpacked is not None:
            body.attachments.append(unpacked)
        return
    if ctype in TNEF_TYPES or filename.lower() == TNEF_FILENAME:
        files, texts = unpack_tnef(part, filename, notes)
        body.attachments.extend(files)
        body.tnef_text.extend(texts)
        return
    body.files.append((part, ctype, filename, disposition, content_id))


def collect_files(body: Body, html: str | None, notes: Notes) -> None:
    """Keep the candidate files that are files: named, attached, cited by the HTML
    (``cid:``), or of a type that is not body text."""
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


def part_filename(part: Message) -> str:
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
        return one_line(decode_header_value(str(name)))
    description = one_line(decode_header_value(str(part.get("content-description") or "")))
    return description if _DESCRIPTION_NAME.match(description) else ""


def _content_id(part: Message) -> str | None:
    value = part.get("content-id")
    if value is None:
        return None
    cid = clean(unfold(str(value))).strip().strip("<>").strip()
    return cid or None
