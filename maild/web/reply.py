"""Turn a reply typed on the ticket page into the RFC 5322 message the pipeline ingests.

Pure: the page's text becomes a mail from the requester to the department, with
the ticket token in the subject, so the web reply follows exactly the rules of
an emailed one (SPEC §3). ``X-Maild-Source: web`` records where it came from.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

from maild.parsers.subject import format_subject

SOURCE_HEADER = "X-Maild-Source"
SOURCE = "web"
# A reply box: anything longer is a paste accident (files go as attachments).
MAX_REPLY_CHARS = 20_000
# Forms without files post a few kilobytes of text; nothing legitimate is bigger.
MAX_REQUEST_BYTES = 256 * 1024


def max_upload_bytes(max_message_bytes: int) -> int:
    """The largest reply form with files we accept: once base64-encoded into the
    reply mail (4/3 the size), it must still fit ``attachments.max_message_bytes``."""
    return max(MAX_REQUEST_BYTES, max_message_bytes * 3 // 4 - 64 * 1024)


def _address(display: str, address: str) -> Address:
    local, _, domain = address.partition("@")
    return Address(display_name=display, username=local, domain=domain)


def build_reply(
    *,
    requester: str,
    requester_name: str,
    department_address: str,
    number: int,
    subject: str,
    token_prefix: str,
    text: str,
    message_id_domain: str,
    now: datetime,
    files: Sequence[tuple[str, bytes]] = (),
) -> bytes:
    """The raw bytes of the reply (plain text, UTF-8, CRLF line ends).

    Headers are written as UTF-8 (SMTPUTF8 style): an address with a non-ASCII
    local part or domain must reach the pipeline exactly as the ticket stores it,
    not RFC 2047-mangled into a different address.
    """
    msg = EmailMessage(policy=SMTP.clone(utf8=True))
    msg["From"] = _address(requester_name, requester)
    msg["To"] = _address("", department_address)
    msg["Subject"] = format_subject(number, subject, token_prefix)
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = f"<web.{number}.{secrets.token_hex(12)}@{message_id_domain}>"
    msg[SOURCE_HEADER] = SOURCE
    body = text.replace("\r\n", "\n").replace("\r", "\n").strip("\n")
    msg.set_content(body + "\n", subtype="plain", charset="utf-8", cte="quoted-printable")
    for filename, payload in files:
        # The type is left to the attachment policy, which goes by the extension and
        # the magic bytes, exactly as for a mailed file (SPEC §3 Attachments).
        msg.add_attachment(
            payload, maintype="application", subtype="octet-stream", filename=filename
        )
    return msg.as_bytes()
