"""Transports: how an outbox row's bytes leave (SPEC §4). SMTP (``tls`` /
``starttls`` / ``none``, optional AUTH or XOAUTH2), one connection reused across a
batch; or the Maildir ``data_dir/outbox/`` when there is no ``[smtp]`` table. A
transport answers what happened (``DeliveryResult``); the sender records it."""

from __future__ import annotations

import contextlib
import mailbox
import smtplib
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from maild.app import App
from maild.config import SmtpSettings
from maild.errors import TransientError
from maild.metrics import SOURCE_CONNECTED, SOURCE_NEEDS_AUTHORIZATION, Metrics
from maild.oauth import SMTP_ACCOUNT, NeedsAuthorizationError, OAuthTokens, xoauth2_string

SMTP_OK = 250
SMTP_WILL_FORWARD = 251


@dataclass(frozen=True)
class DeliveryResult:
    ok: bool
    permanent: bool = False
    detail: str = ""
    # Delivered to the others: recipients answered 4xx (to retry) or 5xx (given up).
    deferred: tuple[str, ...] = ()
    rejected: tuple[str, ...] = ()


# Called by a transport right before the point of no return (SMTP ``DATA``); False
# aborts the delivery. The sender commits its "being delivered" mark there, so a
# crash can leave a message in doubt only while it is actually being handed over.
BeforeData = Callable[[], bool]

CLAIM_LOST = "aborted before DATA: the row is no longer ours to send"


class Transport(Protocol):
    def deliver(
        self,
        mail_from: str,
        recipients: list[str],
        raw: bytes,
        before_data: BeforeData | None = None,
    ) -> DeliveryResult: ...

    def close(self) -> None: ...


class MaildirTransport:
    """Writes each message into a Maildir (read it with ``mutt -f``)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.box = mailbox.Maildir(str(self.path), create=True)

    def deliver(
        self,
        mail_from: str,
        recipients: list[str],
        raw: bytes,
        before_data: BeforeData | None = None,
    ) -> DeliveryResult:
        if before_data is not None and not before_data():
            return DeliveryResult(False, False, CLAIM_LOST)
        envelope = (
            f"X-Maild-Envelope-From: {mail_from}\r\n"
            f"X-Maild-Envelope-To: {', '.join(recipients)}\r\n"
        ).encode()
        key = self.box.add(envelope + raw)
        return DeliveryResult(ok=True, detail=f"maildir {key}")

    def close(self) -> None:
        return None


class SmtpTransport:
    """One SMTP connection, reused across a batch, reopened on demand. With
    ``auth = "xoauth2"`` it logs in with an access token from ``tokens``; a refused
    refresh token shows as the state ``needs_authorization`` of ``smtp`` in ``metrics``
    (so in /healthz), and mail waits in the outbox until someone authorizes again."""

    def __init__(
        self,
        settings: SmtpSettings,
        ssl_context: ssl.SSLContext | None = None,
        *,
        tokens: OAuthTokens | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.ssl_context = ssl_context or ssl.create_default_context()
        self.tokens = tokens
        self.metrics = metrics
        self.conn: smtplib.SMTP | None = None
        self._connecting: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        conn: smtplib.SMTP
        # Built unconnected and kept in ``_connecting`` so that abort() can cut a
        # server that accepts the connection but never sends its greeting.
        if s.security == "tls":
            conn = smtplib.SMTP_SSL(timeout=s.timeout_seconds, context=self.ssl_context)
        else:
            conn = smtplib.SMTP(timeout=s.timeout_seconds)
        conn._host = s.host  # TLS checks the certificate against it (set by __init__ normally)
        self._connecting = conn
        try:
            conn.connect(s.host, s.port)
        finally:
            self._connecting = None
        conn.ehlo()
        if s.security == "starttls":
            conn.starttls(context=self.ssl_context)  # raises: no plaintext fallback
            conn.ehlo()
        if s.auth == "xoauth2":
            self._xoauth2(conn)
        elif s.username:
            conn.login(s.username, s.password or "")
        return conn

    def _xoauth2(self, conn: smtplib.SMTP) -> None:
        s = self.settings
        if self.tokens is None or s.oauth is None:
            raise NeedsAuthorizationError("smtp: no OAuth2 token store configured")
        try:
            token = self.tokens.access_token(SMTP_ACCOUNT, s.oauth)
        except NeedsAuthorizationError as exc:
            if self.metrics is not None:
                self.metrics.set_source_state(SMTP_ACCOUNT, SOURCE_NEEDS_AUTHORIZATION, str(exc))
            raise
        user = s.username or ""
        try:
            # On failure the server sends a 334 with a JSON error; the empty answer
            # (RFC 7628 §3.2.3) then gets the final 535.
            conn.auth(
                "XOAUTH2",
                lambda challenge=None: xoauth2_string(user, token) if challenge is None else "",
            )
        except smtplib.SMTPAuthenticationError:
            self.tokens.discard_access_token(SMTP_ACCOUNT)  # refresh before the next try
            raise
        if self.metrics is not None:
            self.metrics.set_source_state(SMTP_ACCOUNT, SOURCE_CONNECTED)

    def deliver(
        self,
        mail_from: str,
        recipients: list[str],
        raw: bytes,
        before_data: BeforeData | None = None,
    ) -> DeliveryResult:
        if self.conn is None:
            try:
                self.conn = self._connect()
            except (
                TimeoutError,
                smtplib.SMTPException,
                OSError,
                ssl.SSLError,
                TransientError,
            ) as exc:
                # Greeting, TLS, EHLO or AUTH trouble is about us or the server, never
                # about this message: even a 5xx here (535 bad credentials) defers; so
                # does an OAuth2 token that cannot be had (needs_authorization).
                self.close()
                return DeliveryResult(False, False, f"connect: {_error_text(exc)}")
        conn = self.conn
        try:
            # smtplib's sendmail() step by step, to run ``before_data`` between RCPT and DATA.
            code, reply = conn.mail(mail_from)
            if code != SMTP_OK:
                return self._reset(code, f"MAIL FROM: {code} {_text(reply)}")
            refused: dict[str, tuple[int, bytes]] = {}
            for rcpt in recipients:
                code, reply = conn.rcpt(rcpt)
                if code not in (SMTP_OK, SMTP_WILL_FORWARD):
                    refused[rcpt] = (code, reply)
            if len(refused) == len(recipients):
                permanent = all(500 <= c < 600 for c, _ in refused.values())
                self._reset(0, "")
                return DeliveryResult(False, permanent, _describe(refused))
            if before_data is not None and not before_data():
                self._reset(0, "")
                return DeliveryResult(False, False, CLAIM_LOST)
            code, reply = conn.data(raw)
            if code != SMTP_OK:
                return self._reset(code, f"{code} {_text(reply)}")
        except smtplib.SMTPResponseException as exc:  # e.g. DATA answered without 354
            self.close()
            return DeliveryResult(False, 500 <= exc.smtp_code < 600, _error_text(exc))
        except (TimeoutError, smtplib.SMTPException, OSError, ssl.SSLError) as exc:
            self.close()
            return DeliveryResult(False, False, _error_text(exc))
        if refused:
            # Some recipients refused, others accepted: the message went out to them;
            # the 4xx ones are retried on their own, the 5xx ones noted (SPEC §4).
            return DeliveryResult(
                True,
                False,
                f"partly refused: {_describe(refused)}",
                deferred=tuple(r for r, (c, _) in refused.items() if not 500 <= c < 600),
                rejected=tuple(r for r, (c, _) in refused.items() if 500 <= c < 600),
            )
        return DeliveryResult(True, False, f"{code} {_text(reply)}")

    def _reset(self, code: int, detail: str) -> DeliveryResult:
        """RSET after a refusal (a fresh connection next time if that fails too)."""
        try:
            assert self.conn is not None
            self.conn.rset()
        except (smtplib.SMTPException, OSError):
            self.close()
        return DeliveryResult(False, 500 <= code < 600, detail)

    def abort(self) -> None:
        """From another thread (SIGTERM): cut a connection that hangs, so the
        sender thread returns now instead of after the SMTP timeout."""
        for conn in (self.conn, self._connecting):
            sock = getattr(conn, "sock", None) if conn is not None else None
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self.conn.quit()
            self.conn = None


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{exc.smtp_code} {_text(exc.smtp_error)}"
    return f"{type(exc).__name__}: {exc}"


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _describe(refused: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"{rcpt}: {code} {_text(msg)}" for rcpt, (code, msg) in refused.items())


def make_transport(app: App) -> Transport:
    if app.settings.smtp is None:
        return MaildirTransport(app.settings.daemon.data_dir / "outbox")
    return SmtpTransport(app.settings.smtp, tokens=app.oauth, metrics=app.metrics)
