"""Files packed the old ways: uuencoded in a text body, AppleSingle, Outlook's winmail.dat.

Each function takes what the MIME walk found and returns the files inside it as
attachments (and, for winmail.dat, its body text), noting damage in ``notes``.
"""

from __future__ import annotations

import binascii
import re
import warnings
from email.message import Message

from maild.parsers.attachments import guess_content_type
from maild.parsers.charset import clean, decode_bytes, tidy_text
from maild.parsers.headers import one_line
from maild.parsers.html import html_to_text
from maild.parsers.notes import Notes
from maild.parsers.types import AttachmentPart
from tnefparse.tnef import TNEF

TNEF_TYPES = frozenset({"application/ms-tnef", "application/vnd.ms-tnef"})
TNEF_FILENAME = "winmail.dat"
# AppleDouble's header part (Mac metadata and resource fork): not a file of the sender's.
APPLEFILE_TYPES = frozenset({"application/applefile"})
_APPLESINGLE_MAGIC = 0x00051600
_APPLE_DATA_FORK = 1
_APPLE_REAL_NAME = 3
# uuencoded files inside a text body (Eudora, Pine, old Outlook Express).
_UU_BLOCK = re.compile(
    r"^begin(?:-base64)? [0-7]{3,4} (?P<name>[^\n]+?)[ \t]*\n"
    r"(?P<data>(?:.*\n)*?)(?:end|====)[ \t]*(?:\n|$)",
    re.MULTILINE,
)


def uudecode_files(text: str, notes: Notes) -> tuple[str, list[AttachmentPart]]:
    """The text without its uuencoded files, and those files."""
    found: list[AttachmentPart] = []

    def take(match: re.Match[str]) -> str:
        name = one_line(match.group("name")).strip("\"'") or "attachment"
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
        found.append(AttachmentPart(filename=name, content_type=ctype, payload=bytes(data)))
        return ""

    return _UU_BLOCK.sub(take, text), found


def unpack_applefile(part: Message, name: str, notes: Notes) -> AttachmentPart | None:
    """The file inside an AppleSingle part, named ``name`` unless it carries its own name.

    AppleDouble's header part is metadata (its data fork is its own part): None."""
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    if len(data) < 26 or int.from_bytes(data[0:4], "big") != _APPLESINGLE_MAGIC:
        return None
    count = int.from_bytes(data[24:26], "big")
    fork: bytes | None = None
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
            name = decode_bytes(data[offset : offset + length], "mac_roman")[0] or name
    if fork is None:
        notes.add("AppleSingle part without a data fork")
        return None
    return AttachmentPart(
        filename=one_line(name), content_type=guess_content_type(name), payload=fork
    )


def unpack_tnef(part: Message, name: str, notes: Notes) -> tuple[list[AttachmentPart], list[str]]:
    """Outlook's winmail.dat (the part named ``name``): its files as attachments, and
    its body as a last-resort text (none, or one). A winmail.dat that cannot be
    unpacked is kept as it is, as one attachment."""
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
        kept = AttachmentPart(
            filename=name or TNEF_FILENAME, content_type=part.get_content_type(), payload=data
        )
        return [kept], []
    attachments = [
        AttachmentPart(
            filename=file_name,
            content_type=guess_content_type(file_name),
            payload=content if isinstance(content, bytes) else str(content).encode(),
        )
        for file_name, content in files
    ]
    return attachments, texts[:1]


def _tnef_name(attachment: object) -> str:
    name = attachment.long_filename()  # type: ignore[attr-defined]
    if isinstance(name, bytes):
        name, _ = decode_bytes(name, None)
    return one_line(clean(str(name)).strip("\x00"))


def _tnef_text(value: object) -> str:
    if isinstance(value, bytes):
        return tidy_text(decode_bytes(value.rstrip(b"\x00"), None)[0])
    return tidy_text(str(value)) if value else ""


def _tnef_html(value: object) -> str:
    if isinstance(value, bytes):
        value = decode_bytes(value.rstrip(b"\x00"), None)[0]
    return html_to_text(str(value)) if value else ""
