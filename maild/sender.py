"""The outbox sender: claims due rows, hands them to a transport, records the result.

Transports are small: SMTP (``tls`` / ``starttls`` / ``none``, optional AUTH) or
the Maildir ``data_dir/outbox/`` when there is no ``[smtp]`` table. A 4xx answer
or a connection problem defers the row with backoff (SPEC §4); a 5xx answer
fails it for good, with a system note on its ticket. TLS failures never fall
back to plaintext.
"""

from __future__ import annotations

import contextlib
import mailbox
import smtplib
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import structlog

from maild.app import App
from maild.config import SmtpSettings
from storage import outbox as ob
from storage import tickets as store
from storage.models import Outbox, Ticket

log = structlog.get_logger("maild.sender")


@dataclass(frozen=True)
class DeliveryResult:
    ok: bool
    permanent: bool = False
    detail: str = ""


class Transport(Protocol):
    def deliver(self, mail_from: str, recipients: list[str], raw: bytes) -> DeliveryResult: ...

    def close(self) -> None: ...


class MaildirTransport:
    """Writes each message into a Maildir (read it with ``mutt -f``)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.box = mailbox.Maildir(str(self.path), create=True)

    def deliver(self, mail_from: str, recipients: list[str], raw: bytes) -> DeliveryResult:
        envelope = (
            f"X-Maild-Envelope-From: {mail_from}\r\n"
            f"X-Maild-Envelope-To: {', '.join(recipients)}\r\n"
        ).encode()
        key = self.box.add(envelope + raw)
        return DeliveryResult(ok=True, detail=f"maildir {key}")

    def close(self) -> None:
        return None


class SmtpTransport:
    """One SMTP connection, reused across a batch, reopened on demand."""

    def __init__(self, settings: SmtpSettings, ssl_context: ssl.SSLContext | None = None) -> None:
        self.settings = settings
        self.ssl_context = ssl_context or ssl.create_default_context()
        self.conn: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        conn: smtplib.SMTP
        if s.security == "tls":
            conn = smtplib.SMTP_SSL(
                s.host, s.port, timeout=s.timeout_seconds, context=self.ssl_context
            )
        else:
            conn = smtplib.SMTP(s.host, s.port, timeout=s.timeout_seconds)
        conn.ehlo()
        if s.security == "starttls":
            conn.starttls(context=self.ssl_context)  # raises: no plaintext fallback
            conn.ehlo()
        if s.username:
            conn.login(s.username, s.password or "")
        return conn

    def deliver(self, mail_from: str, recipients: list[str], raw: bytes) -> DeliveryResult:
        try:
            if self.conn is None:
                self.conn = self._connect()
            refused = self.conn.sendmail(mail_from, recipients, raw)
        except smtplib.SMTPRecipientsRefused as exc:
            self.close()
            codes = [code for code, _ in exc.recipients.values()]
            permanent = all(500 <= c < 600 for c in codes)
            return DeliveryResult(False, permanent, _describe(exc.recipients))
        except smtplib.SMTPResponseException as exc:
            self.close()
            detail = f"{exc.smtp_code} {_text(exc.smtp_error)}"
            return DeliveryResult(False, 500 <= exc.smtp_code < 600, detail)
        except (TimeoutError, smtplib.SMTPException, OSError, ssl.SSLError) as exc:
            self.close()
            return DeliveryResult(False, False, f"{type(exc).__name__}: {exc}")
        if refused:
            # Some recipients refused, others accepted: the message went out; note it.
            return DeliveryResult(True, False, f"partly refused: {_describe(refused)}")
        return DeliveryResult(True, False, "250 accepted")

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self.conn.quit()
            self.conn = None


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _describe(refused: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"{rcpt}: {code} {_text(msg)}" for rcpt, (code, msg) in refused.items())


def make_transport(app: App) -> Transport:
    if app.settings.smtp is None:
        return MaildirTransport(app.settings.daemon.data_dir / "outbox")
    return SmtpTransport(app.settings.smtp)


class OutboxSender:
    """Drains due outbox rows. ``run_once`` is one pass; the daemon loops it."""

    def __init__(self, app: App, transport: Transport, owner: str = "sender") -> None:
        self.app = app
        self.transport = transport
        self.owner = owner
        self._outage_logged = False

    def run_once(self, limit: int = 50) -> int:
        """Send what is due now; return how many rows were attempted."""
        rows = ob.claim_due(self.owner, self.app.clock.now(), limit)
        for row in rows:
            self._send(row)
        self.transport.close()
        return len(rows)

    def drain(self, max_rounds: int = 100) -> int:
        total = 0
        for _ in range(max_rounds):
            n = self.run_once()
            total += n
            if n == 0:
                break
        return total

    def _send(self, row: Outbox) -> None:
        result = self.transport.deliver(row.mail_from, list(row.recipients), bytes(row.raw))
        now = self.app.clock.now()
        with self.app.db.atomic():
            if result.ok:
                ob.record_sent(row, now, result.detail)
                self._outage_logged = False
                log.info(
                    "outbox.sent", outbox_id=row.id, template=row.template, detail=result.detail
                )
                return
            status = ob.record_failure(row, now, result.detail, permanent=result.permanent)
            if status == ob.OUTBOX_FAILED and row.ticket_id:
                ticket = Ticket.get_by_id(row.ticket_id)
                store.add_entry(
                    ticket,
                    kind="system",
                    now=now,
                    text=f"Mail to {', '.join(row.recipients)} failed: {result.detail}",
                )
                store.add_event(
                    ticket, "delivery_failed", "system", now, outbox=row.id, error=result.detail
                )
        if status == ob.OUTBOX_FAILED:
            log.warning("outbox.failed", outbox_id=row.id, error=result.detail)
        elif not self._outage_logged:
            # One line per outage, not one per message.
            log.warning("outbox.deferred", outbox_id=row.id, error=result.detail)
            self._outage_logged = True
