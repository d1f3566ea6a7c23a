"""Turn a reply typed on the ticket page into the RFC 5322 message the pipeline ingests.

Pure: the page's text becomes a mail from the requester to the department, with
the ticket token in the subject, so the web reply follows exactly the rules of
an emailed one (SPEC §3). ``X-Maild-Source: web`` records where it came from.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

from maild.parsers.subject import format_subject

SOURCE_HEADER = "X-Maild-Source"
SOURCE = "web"
# A reply box, not a file upload: anything longer is a paste accident.
MAX_REPLY_CHARS = 20_000


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
    return msg.as_bytes()
