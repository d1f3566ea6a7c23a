"""Keep large base64 bodies away from the stdlib parser, which holds a body line by line.

Above ``SET_ASIDE_THRESHOLD`` bytes, big base64 bodies are decoded straight from
the raw bytes, the parser reads a short placeholder instead, and the decoded
bytes are put back into the parsed tree afterwards.
"""

from __future__ import annotations

import binascii
import re
from email.message import Message

# The stdlib's feed parser keeps one string per line while it reads a body: a 14 MB
# message of 76-character base64 lines peaks near 120 MB. Above this size, large
# base64 bodies are decoded straight from the raw bytes and the parser only sees
# a short placeholder in their place.
SET_ASIDE_THRESHOLD = 1 << 20
SET_ASIDE_MIN_BODY = 64 << 10
_B64_CTE = re.compile(rb"(?im)^content-transfer-encoding:[ \t]*base64[ \t]*\r?$")
_BLANK_LINE = re.compile(rb"\n\r?\n")
_PLACEHOLDER = "MAILDBLOB{}X"


def set_aside_base64(raw: bytes) -> tuple[bytes, dict[str, bytes]]:
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


def restore_base64(msg: Message, blobs: dict[str, bytes]) -> None:
    """Put the set-aside bodies back as already-decoded payloads."""
    for part in msg.walk():
        if part.is_multipart():
            continue
        payload = part.get_payload()
        if isinstance(payload, str):
            data = blobs.get(payload.strip())
            if data is not None:
                # Not set_payload(): compat32 turns bytes into a surrogate-escaped str
                # (two to four bytes per byte), and get_payload(decode=True) back into
                # bytes again: 10 MB of attachment cost 30 MB more at the peak. Bytes
                # kept as the payload come back from get_payload(decode=True) as they are.
                part._payload = data
                # Decoded already: get_payload(decode=True) must hand the bytes back as they are.
                del part["Content-Transfer-Encoding"]
                part["Content-Transfer-Encoding"] = "binary"
