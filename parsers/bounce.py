"""Delivery status notifications: is this message a bounce, and of what?

Sole purpose: recognize bounces of our outbound mail in raw inbound bytes and say
which message bounced (its Message-ID, or the VERP token of its return path), for
which recipients, with which status, and whether the failure is permanent
(SPEC §3 outcome ``bounce``).

Recognized:

* RFC 3464 ``multipart/report; report-type=delivery-status`` (Postfix, Exchange,
  Gmail, ...): recipients and status from the ``message/delivery-status`` part, the
  original Message-ID from the ``message/rfc822`` or ``text/rfc822-headers`` part,
  else from ``X-Original-Message-ID`` or the report's ``In-Reply-To``. A report in
  which every recipient was ``delivered``/``relayed``/``expanded`` is not a bounce.
* Non-standard bounces (Exim, qmail, small providers): a failure or delay subject
  (``Undelivered Mail Returned to Sender``, ``Mail delivery failed``, ``Não foi
  possível entregar``, ...) from a robot sender (``mailer-daemon@``,
  ``postmaster@``) or with an empty ``Return-Path``; or any robot-sent mail that
  arrives at a VERP address. The original ``Message-ID:`` is found in the quoted
  headers in the body (also ``>``-quoted or folded).
* A subject that starts with a reply/forward prefix is a person discussing a bounce,
  not a bounce.

``permanent`` is true for a 5.x.x status, and for a failure without a status; a
delay notice (``Action: delayed``, 4.x.x) is a bounce with ``permanent=False``.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses, parseaddr

from maild.parsers.charset import decode_text
from maild.parsers.headers import decode_header_value
from maild.parsers.subject import has_reply_prefix


@dataclass(frozen=True)
class Bounce:
    """What a bounce says about one of our outbound messages."""

    original_message_id: str | None  # without angle brackets
    recipients: tuple[str, ...]  # lowercased bare addresses that failed or are delayed
    status: str | None  # RFC 3463 code, e.g. "5.1.1"
    permanent: bool
    verp_token: str | None  # from a bounces+<token>@ address the bounce was sent to


_VERP_LOCAL_RE = re.compile(r"^bounces?\+(?P<token>[^\s@+]+)$", re.IGNORECASE)
_ROBOT_LOCAL_RE = re.compile(r"^(?:mailer-daemon|postmaster)(?:[-_.+].*)?$", re.IGNORECASE)
_FAILURE_SUBJECT_RE = re.compile(
    r"undelivered mail returned to sender|undeliver(?:able|ed)|returned mail"
    r"|delivery status notification \(failure\)|mail delivery failed|delivery failure"
    r"|delivery has failed|failure notice|could not be delivered"
    r"|n[ãa]o (?:foi|[ée]) poss[íi]vel entregar|mensagem n[ãa]o entregue|falha n[ao] entrega"
    r"|unzustellbar|non remis|no se puede entregar",
    re.IGNORECASE,
)
_DELAY_SUBJECT_RE = re.compile(
    r"delayed mail|delivery status notification \(delay\)|delivery delayed|still being retried"
    r"|warning: message .* delayed|entrega atrasada|aviso de atraso",
    re.IGNORECASE,
)
_ACTIONS_NOT_BOUNCED = frozenset({"delivered", "relayed", "expanded"})
_STATUS_RES = (
    re.compile(r"\b[245]\d\d[ -]#?(?P<status>[245]\.\d{1,3}\.\d{1,3})\b"),
    re.compile(r"\bstatus:\s*(?P<status>[245]\.\d{1,3}\.\d{1,3})\b", re.IGNORECASE),
    re.compile(r"#(?P<status>[45]\.\d{1,3}\.\d{1,3})\b"),
)
_ADDRESS = r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"
_ANGLE_RECIPIENT_RE = re.compile(rf"^\s*<(?P<address>{_ADDRESS})>\s*:", re.MULTILINE)
_BARE_RECIPIENT_RE = re.compile(rf"^[ \t]+(?P<address>{_ADDRESS})[ \t]*$", re.MULTILINE)
# The start of the returned original headers inside a plain-text bounce.
_QUOTED_HEADERS_RE = re.compile(
    r"^[> \t]*(?:return-path|received|message-id|from):", re.IGNORECASE | re.MULTILINE
)
_BODY_MESSAGE_ID_RE = re.compile(
    r"^[> \t]*message-id:\s*(?:\n[> \t]+)?(?P<id><[^>\s]+>)", re.IGNORECASE | re.MULTILINE
)
_HTML_TAG_RE = re.compile(r"<[^>]+>")


def extract_verp_token(address: str) -> str | None:
    """The token of a VERP return path: ``bounces+a1b2c3@maild.example.com`` -> ``a1b2c3``.

    Addresses arrive lowercased, so tokens should be case-insensitive (hex, base32).
    """
    addr = parseaddr(address)[1] or address.strip()
    local, at, _domain = addr.rpartition("@")
    if not at:
        return None
    match = _VERP_LOCAL_RE.match(local)
    return match.group("token") if match else None


def _decoded(msg: Message, name: str) -> str:
    value = msg.get(name)
    if value is None:
        return ""
    # The stdlib's decode_header raises on a broken base64 word; this one never does.
    return decode_header_value(str(value))


def _bare_id(value: str) -> str | None:
    value = value.strip()
    match = re.search(r"<([^<>\s]+)>", value)
    if match:
        return match.group(1)
    return value.split()[0] if value else None


def _addresses(values: list[str]) -> list[str]:
    return [addr.lower() for _, addr in getaddresses(values) if "@" in addr]


def _verp_of(msg: Message) -> str | None:
    for name in ("Delivered-To", "X-Original-To", "Envelope-To", "To"):
        for address in _addresses(msg.get_all(name) or []):
            token = extract_verp_token(address)
            if token:
                return token
    return None


def _outer_parts(msg: Message) -> list[Message]:
    """Every MIME part, without descending into attached messages (a forwarded
    bounce inside an attachment is not a bounce of ours)."""
    parts = [msg]
    if msg.is_multipart() and not msg.get_content_type().startswith("message/"):
        for sub in msg.get_payload():
            if isinstance(sub, Message):
                parts.extend(_outer_parts(sub))
    return parts


def _text_of(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    try:
        charset = part.get_content_charset()
    except Exception:
        charset = None
    return decode_text(payload, charset)


def _status_blocks(part: Message) -> list[Message]:
    """The field groups of a ``message/delivery-status`` part."""
    payload = part.get_payload()
    if isinstance(payload, list) and all(isinstance(p, Message) for p in payload):
        return payload
    text = _text_of(part) if isinstance(payload, str) else ""
    blocks = re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n"))
    return [HeaderParser().parsestr(block) for block in blocks if block.strip()]


def _original_headers(msg: Message) -> Message | None:
    """The headers of the returned original message, from its MIME part."""
    for part in _outer_parts(msg):
        ctype = part.get_content_type()
        if ctype in ("message/rfc822", "message/global"):
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
        if ctype in ("text/rfc822-headers", "message/global-headers"):
            return HeaderParser().parsestr(_text_of(part))
    return None


def _original_message_id(msg: Message, body: str) -> str | None:
    headers = _original_headers(msg)
    if headers is not None and headers.get("Message-ID"):
        return _bare_id(str(headers["Message-ID"]))
    match = _BODY_MESSAGE_ID_RE.search(body)
    return _bare_id(match.group("id")) if match else None


def _body_text(msg: Message) -> str:
    """Plain text of the notification (HTML tags dropped when there is no text part)."""
    texts: list[str] = []
    htmls: list[str] = []
    for part in _outer_parts(msg):
        ctype = part.get_content_type()
        if ctype == "text/plain":
            texts.append(_text_of(part))
        elif ctype == "text/html":
            htmls.append(_HTML_TAG_RE.sub(" ", _text_of(part)))
    return "\n".join(texts or htmls).replace("\r\n", "\n")


def _find_status(text: str) -> str | None:
    for pattern in _STATUS_RES:
        match = pattern.search(text)
        if match:
            return match.group("status")
    return None


def _from_dsn(msg: Message, report: Message, verp: str | None) -> Bounce | None:
    blocks = _status_blocks(report)
    per_message, recipient_blocks = (blocks[0], blocks[1:]) if blocks else (None, [])
    recipients: list[str] = []
    statuses: list[str] = []
    actions: list[str] = []
    for block in recipient_blocks:
        action = str(block.get("Action", "")).strip().lower()
        actions.append(action)
        if action in _ACTIONS_NOT_BOUNCED:
            continue
        field = block.get("Final-Recipient") or block.get("Original-Recipient")
        if field:
            address = str(field).rpartition(";")[2].strip().strip("<>").lower()
            if address and address not in recipients:
                recipients.append(address)
        status = _find_status(f"Status: {block.get('Status', '')}")
        if status:
            statuses.append(status)
    if actions and all(action in _ACTIONS_NOT_BOUNCED for action in actions):
        return None
    body = _body_text(msg)
    original = _original_message_id(msg, body)
    if original is None and per_message is not None and per_message.get("X-Original-Message-ID"):
        original = _bare_id(str(per_message["X-Original-Message-ID"]))
    if original is None and msg.get("In-Reply-To"):
        original = _bare_id(str(msg["In-Reply-To"]))
    statuses.sort(key=lambda s: s[0], reverse=True)  # 5.x.x first
    status = statuses[0] if statuses else None
    permanent = status.startswith("5") if status else "failed" in actions or not actions
    return Bounce(original, tuple(recipients), status, permanent, verp)


def _plain_signals(msg: Message, verp: str | None) -> bool | None:
    """From the headers alone: None when this is no plain-text bounce, else
    whether it reports a delay (rather than a failure)."""
    subject = _decoded(msg, "Subject")
    if has_reply_prefix(subject):
        return None
    sender = parseaddr(_decoded(msg, "From"))[1].lower()
    robot = bool(_ROBOT_LOCAL_RE.match(sender.rpartition("@")[0]))
    return_path = msg.get("Return-Path")
    empty_return_path = return_path is not None and str(return_path).strip() in ("", "<>")
    failure = _FAILURE_SUBJECT_RE.search(subject) is not None
    delay = not failure and _DELAY_SUBJECT_RE.search(subject) is not None
    if not (((failure or delay) and (robot or empty_return_path)) or (robot and verp)):
        return None
    return delay


_DSN_PART_RE = re.compile(rb"message/delivery-status", re.IGNORECASE)


def _header_block(raw: bytes) -> bytes:
    """Everything up to the first empty line (either line ending)."""
    ends = [(i, len(sep)) for sep in (b"\r\n\r\n", b"\n\n") if (i := raw.find(sep)) != -1]
    if not ends:
        return raw
    end, width = min(ends)
    return raw[: end + width]


def _from_plain(msg: Message, verp: str | None) -> Bounce | None:
    delay = _plain_signals(msg, verp)
    if delay is None:
        return None
    body = _body_text(msg)
    quoted = _QUOTED_HEADERS_RE.search(body)
    notice = body[: quoted.start()] if quoted else body
    recipients = _addresses(msg.get_all("X-Failed-Recipients") or [])
    if not recipients:
        recipients = [m.group("address").lower() for m in _ANGLE_RECIPIENT_RE.finditer(notice)]
    if not recipients:
        recipients = [m.group("address").lower() for m in _BARE_RECIPIENT_RE.finditer(notice)]
    status = _find_status(notice)
    permanent = status.startswith("5") if status else not delay
    original = _original_message_id(msg, body)
    return Bounce(original, tuple(dict.fromkeys(recipients)), status, permanent, verp)


def detect_bounce(raw: bytes) -> Bounce | None:
    """The bounce described by ``raw``, or None when it is not a bounce."""
    if _DSN_PART_RE.search(raw) is None:
        # Most mail is no bounce: decide from the header block before paying for
        # a full MIME parse (which costs several times the size of a large message).
        head = email.message_from_bytes(_header_block(raw), policy=email.policy.compat32)
        if _plain_signals(head, _verp_of(head)) is None:
            return None
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    verp = _verp_of(msg)
    for part in _outer_parts(msg):
        if part.get_content_type() == "message/delivery-status":
            return _from_dsn(msg, part, verp)
    return _from_plain(msg, verp)
