"""Typed hand-offs between the pure parsing stages and the rest of maild.

Every value here is a frozen dataclass so that stages can pass them on without
fear of one stage mutating what another reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class AttachmentPart:
    """One file carried by a message, as found in the MIME tree (not yet checked)."""

    filename: str  # as declared by the sender (decoded), "" when the part had none
    content_type: str  # declared MIME type, lowercased, e.g. "image/png"
    payload: bytes  # decoded content
    content_id: str | None = None  # without angle brackets, for inline cid: images
    inline: bool = False  # Content-Disposition inline or referenced by cid:


@dataclass(frozen=True)
class ParsedMessage:
    """Everything maild needs from one inbound message, decoded and normalized.

    Addresses are lowercased bare addresses ("ana@example.com"). Message-IDs are
    kept without angle brackets. Header names in ``headers`` are lowercased and
    map to every value the header had, in order, RFC 2047 decoded.
    """

    message_id: str | None
    subject: str
    from_addr: str  # "" when missing or unparseable
    from_name: str
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    reply_to: tuple[str, ...] = ()
    delivered_to: tuple[str, ...] = ()
    x_original_to: tuple[str, ...] = ()
    return_path: str | None = None  # None: header absent; "": empty (<>)
    in_reply_to: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    date: datetime | None = None
    text: str = ""  # best plain text: text/plain part, else HTML converted to text
    html: str | None = None  # the HTML part when there was one
    text_from_html: bool = False  # ``text`` is ``html`` converted (no usable text/plain part)
    attachments: tuple[AttachmentPart, ...] = ()
    headers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    defects: tuple[str, ...] = ()  # human-readable notes on broken MIME that was recovered
    size: int = 0  # len(raw bytes)

    def header(self, name: str) -> str | None:
        """First value of a header (case-insensitive), or None."""
        values = self.headers.get(name.lower())
        return values[0] if values else None
