"""Forwarded messages: who originally wrote a mail an agent forwarded, and what.

Sole purpose: find the message inside a forward (SPEC §5: an agent's forward to a
department address opens the ticket for the forwarded message's ``From``) and
return its sender, subject and text. Pure: the parsed message and its raw bytes
in, a frozen ``Forward`` (or None) out; never raises.

Formats recognized, inline in the text (the plain part, or HTML converted to text):

* Gmail: ``---------- Forwarded message ---------`` / ``---------- Mensagem
  encaminhada ---------``, then a header block (``From:``/``De:`` first).
* Thunderbird: ``-------- Forwarded Message --------`` / ``-------- Mensagem
  encaminhada --------``, header block with ``Subject:`` first.
* Apple Mail: ``Begin forwarded message:`` / ``Início da mensagem encaminhada:``.
* Outlook: ``-----Original Message-----`` / ``-----Mensagem original-----`` /
  ``-----Mensagem encaminhada-----``, and the bare ``From: … Sent: …`` /
  ``De: … Enviado: …`` block (below a ``_____`` line), also with ``*From:*`` bold
  markers left by HTML-to-text conversion and ``Name [mailto:addr]`` senders.

and as an attachment: the first ``message/rfc822`` part (or a ``.eml`` file sent as
``application/octet-stream``), whose own ``From`` is taken.

Choices written down here:

* Explicit forward markers always count. Outlook writes the same
  ``-----Original Message-----`` line and header block for replies and forwards,
  so those count only when the subject does not start with a reply prefix
  (``Re:``, ``RES:``, ``AW:``, ...): an agent's ``RE:`` to a customer, copied to the
  help desk, quotes the customer but is not a forward.
* The first (outermost) forward wins: that is the message the agent forwarded; a
  forward nested inside it is part of its text.
* A forward whose header block has no address (Exchange shows only a display name
  for internal senders) is not usable: the result is None and the caller opens
  the ticket for the agent.
* The forwarded text is stripped like any customer text (``parsers.strip``), so the
  ticket's first entry looks like one the customer had sent directly.
"""

from __future__ import annotations

import email
import email.utils
import re
from dataclasses import dataclass
from email.message import Message
from email.policy import compat32

from maild.parsers.headers import decode_header_value
from maild.parsers.message import parse_message
from maild.parsers.quoted_headers import QUOTED_HEADER_FIELDS
from maild.parsers.strip import strip_reply
from maild.parsers.types import ParsedMessage

# Lines that say "a forwarded message starts below", in the clients' languages.
_STRONG_MARKER_RE = re.compile(
    r"^\s*(?:"
    r"-{2,}\s*(?:forwarded message|mensagem encaminhada|mensaje reenviado"
    r"|message transf[ée]r[ée]|weitergeleitete nachricht|messaggio inoltrato)\s*-{2,}"
    r"|(?:begin forwarded message|in[íi]cio da mensagem encaminhada"
    r"|inicio del mensaje reenviado|d[ée]but du message r[ée]exp[ée]di[ée])\s*:"
    r")\s*$",
    re.IGNORECASE,
)
# Outlook's line, used for replies and forwards alike.
_WEAK_MARKER_RE = re.compile(
    r"^\s*-{2,}\s*(?:original message|mensagem original|mensaje original"
    r"|message d'origine|urspr[üu]ngliche nachricht)\s*-{2,}\s*$",
    re.IGNORECASE,
)
_UNDERSCORES_RE = re.compile(r"^\s*_{10,}\s*$")

_FIELDS = QUOTED_HEADER_FIELDS
_FIELD_RE = re.compile(
    r"^\s*\*{0,2}(?P<name>"
    + "|".join(re.escape(k) for k in sorted(_FIELDS, key=len, reverse=True))
    + r")\s*:\s*\*{0,2}\s*(?P<value>.*?)\s*$",
    re.IGNORECASE,
)
_ADDRESS_RE = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_MAILTO_RE = re.compile(r"\[\s*mailto:\s*([^\]\s]+)\s*\]|<\s*mailto:\s*([^>\s]+)\s*>", re.I)

# The first prefix of a subject ("RE: ENC: x" -> "re"), after any [tokens].
_FIRST_PREFIX_RE = re.compile(
    r"^\s*(?:\[[^\]]*\]\s*)*(?P<word>[A-Za-z]+)\s*(?:\[\d+\]|\(\d+\))?\s*:"
)
_REPLY_WORDS = frozenset({"re", "res", "aw", "sv", "vs", "antw", "r"})

_BLOCK_SCAN = 12  # header blocks longer than this are not header blocks
_MAX_SCAN_LINES = 5000
EML_SUFFIX = ".eml"
REPORT_TYPE = "multipart/report"


@dataclass(frozen=True)
class Forward:
    """The message found inside a forward."""

    address: str  # lowercased bare address of the original sender
    name: str  # display name, "" when there was none
    subject: str  # the forwarded message's subject, "" when not shown
    text: str  # its text, stripped of quotes and signatures like customer text
    message_id: str | None  # only known for forwards as attachment
    attached: bool  # True: message/rfc822 attachment; False: inline


def extract_forward(parsed: ParsedMessage, raw: bytes) -> Forward | None:
    """The forwarded message in ``parsed`` (inline first, then attached), or None."""
    try:
        return _inline(parsed) or _attached(raw)
    except Exception:  # a parser that cannot read a forward has simply found none
        return None


def extract_forwarded_sender(parsed: ParsedMessage, raw: bytes) -> tuple[str, str] | None:
    """(address, name) of the forwarded message's original sender, or None."""
    forward = extract_forward(parsed, raw)
    return (forward.address, forward.name) if forward else None


def extract_forwarded_text(parsed: ParsedMessage, raw: bytes) -> str | None:
    """The forwarded message's own text (stripped), or None when not a forward."""
    forward = extract_forward(parsed, raw)
    return forward.text if forward else None


# --- inline ------------------------------------------------------------------------------------


def _is_reply_subject(subject: str) -> bool:
    match = _FIRST_PREFIX_RE.match(subject or "")
    return match is not None and match.group("word").lower() in _REPLY_WORDS


def _inline(parsed: ParsedMessage) -> Forward | None:
    text = (parsed.text or "").replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")[:_MAX_SCAN_LINES]
    weak_allowed = not _is_reply_subject(parsed.subject)
    for index, line in enumerate(lines):
        if line.lstrip().startswith(">"):
            continue
        if _STRONG_MARKER_RE.match(line) or (weak_allowed and _WEAK_MARKER_RE.match(line)):
            return _from_block(lines, _skip_blank(lines, index + 1))
        if weak_allowed and _is_bare_block(lines, index):
            return _from_block(lines, index)
    return None


def _skip_blank(lines: list[str], start: int) -> int:
    while start < len(lines) and (not lines[start].strip() or _UNDERSCORES_RE.match(lines[start])):
        start += 1
    return start


def _field(line: str) -> tuple[str, str] | None:
    match = _FIELD_RE.match(line)
    if match is None:
        return None
    return _FIELDS[match.group("name").lower()], match.group("value").strip("* \t")


def _is_bare_block(lines: list[str], start: int) -> bool:
    """An Outlook header block with no marker line: From first, then a date field."""
    first = _field(lines[start])
    if first is None or first[0] != "from":
        return False
    fields, _ = _read_block(lines, start)
    return "date" in fields and len(set(fields) - {"from", "date"}) >= 1


def _read_block(lines: list[str], start: int) -> tuple[dict[str, str], int]:
    """The header fields from ``start`` and the index of the first line after them."""
    fields: dict[str, str] = {}
    last: str | None = None
    index = start
    while index < len(lines) and index - start < _BLOCK_SCAN:
        line = lines[index]
        if not line.strip():
            break
        found = _field(line)
        if found is not None:
            key, value = found
            if key == "from" and key in fields:  # a second "From:" is not this block
                break
            fields[key] = value
            last = key
        elif last in ("to", "cc") and ("@" in line or line.rstrip().endswith((",", ";"))):
            fields[last] += " " + line.strip()  # a wrapped recipient list
        else:
            break  # HTML conversion may leave no blank line before the body
        index += 1
    return fields, index


def _from_block(lines: list[str], start: int) -> Forward | None:
    fields, end = _read_block(lines, start)
    if "from" not in fields:
        return None
    sender = _parse_sender(fields["from"])
    if sender is None:
        return None
    body = "\n".join(lines[end:]).strip("\n")
    return Forward(
        address=sender[0],
        name=sender[1],
        subject=fields.get("subject", ""),
        text=_strip(body),
        message_id=None,
        attached=False,
    )


def _parse_sender(value: str) -> tuple[str, str] | None:
    """(address, name) from a header value as clients print it, or None."""
    value = value.replace("*", "").strip()
    mailto = _MAILTO_RE.search(value)
    if mailto:
        address = mailto.group(1) or mailto.group(2)
        name = value[: mailto.start()].strip()
        value = f"{name} <{address}>" if name else address
    name, address = email.utils.parseaddr(value)
    if "@" not in address:
        found = _ADDRESS_RE.search(value)
        if found is None:
            return None
        address = found.group(0)
        name = value[: found.start()].strip(" <\"'")
    name = name.strip().strip("\"'").strip()
    if name.lower() == address.lower():
        name = ""
    return address.strip().lower(), name


def _strip(text: str) -> str:
    return strip_reply(text).strip() if text.strip() else ""


# --- attached ----------------------------------------------------------------------------------


def _attached(raw: bytes) -> Forward | None:
    if not raw:
        return None
    top = email.message_from_bytes(raw, policy=compat32)
    if top.get_content_type() == REPORT_TYPE:
        return None  # a delivery report quotes our own mail; it is not a forward
    inner = _first_attached_message(top)
    if inner is None:
        return None
    message = parse_message(inner)
    if not message.from_addr:
        return None
    return Forward(
        address=message.from_addr,
        name=message.from_name,
        subject=message.subject,
        text=_strip(message.text),
        message_id=message.message_id,
        attached=True,
    )


def _first_attached_message(top: Message) -> bytes | None:
    """Bytes of the outermost attached message, depth first, or None."""
    for part in top.walk():
        if part is top:
            continue
        ctype = part.get_content_type()
        if ctype == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload:
                return payload[0].as_bytes()
            continue
        filename = decode_header_value(part.get_filename() or "").lower()
        if filename.endswith(EML_SUFFIX) and not part.is_multipart():
            data = part.get_payload(decode=True)
            if isinstance(data, bytes) and data.strip():
                return data
    return None
