"""Pytest plugin whose sole purpose is an in-process SMTP sink (aiosmtpd) for integration tests.

Fixture ``smtp_sink`` (function scope) is an :class:`SmtpSink` listening on a port that
the OS picked on ``127.0.0.1``. It keeps every accepted message, can script the reply
to each DATA attempt (``sink.script(["451 4.3.0 try later", "250 OK"])``) and to given
recipients, and waits for deliveries on a condition variable, never with fixed sleeps.

The marker ``smtp_sink`` configures it (fixtures are factories configured by markers)::

    @pytest.mark.smtp_sink(starttls=True, auth={"maild": "secret"})

* ``starttls=True``: offer STARTTLS with a throw-away self-signed certificate for
  ``localhost``/``127.0.0.1`` (made with the ``openssl`` command; ``sink.cafile`` is it).
* ``require_starttls=True``: refuse MAIL before STARTTLS.
* ``auth={user: password}``: offer AUTH PLAIN/LOGIN accepting these (after STARTTLS when
  ``starttls=True``, else on the plain connection).
* ``auth_required=True``: refuse MAIL before AUTH (needs ``starttls=True``).

``ReceivedMessage.message`` is parsed from the raw bytes as received, so its text parts
keep the wire's CRLF line endings.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

__all__ = ["ReceivedMessage", "SmtpAttempt", "SmtpSink"]

DEFAULT_REPLY = "250 OK"


@dataclass(frozen=True)
class ReceivedMessage:
    """One message the sink accepted."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage
    peer: Any
    auth_login: str | None
    tls: bool


@dataclass(frozen=True)
class SmtpAttempt:
    """One DATA attempt, accepted or not, with the reply the sink gave."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    reply: str


class _PortZeroController(Controller):
    """A Controller that binds port 0 and learns the real port before its self-check."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SmtpSink:
    """Keeps what it receives; thread-safe (aiosmtpd runs in its own thread)."""

    host: str
    port: int

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = 0
        self.cafile: Path | None = None
        self._cond = threading.Condition()
        self._messages: list[ReceivedMessage] = []
        self._attempts: list[SmtpAttempt] = []
        self._script: list[str] = []
        self._rcpt_replies: dict[str, str] = {}
        self._controller: Controller | None = None

    # -- configuration from tests ------------------------------------------------------

    def script(self, replies: Iterable[str]) -> None:
        """Answer the next DATA attempts with these replies in order, then ``250 OK``.

        A reply not starting with ``2`` rejects the message (it goes to :attr:`attempts`
        only). Replaces any replies still pending.
        """
        replies = list(replies)
        for reply in replies:
            if not (len(reply) >= 3 and reply[:3].isdigit() and reply[0] in "2345"):
                raise ValueError(f"not an SMTP reply: {reply!r}")
        with self._cond:
            self._script = replies

    def reject_rcpt(self, address: str, reply: str = "550 5.1.1 no such user") -> None:
        """Answer RCPT TO for ``address`` (case-insensitive) with ``reply``, every time."""
        with self._cond:
            self._rcpt_replies[address.lower()] = reply

    def accept_rcpt(self, address: str) -> None:
        """Stop refusing ``address`` (a greylisting server letting it through)."""
        with self._cond:
            self._rcpt_replies.pop(address.lower(), None)

    # -- results -----------------------------------------------------------------------

    @property
    def messages(self) -> list[ReceivedMessage]:
        """A snapshot of the accepted messages, in arrival order."""
        with self._cond:
            return list(self._messages)

    @property
    def attempts(self) -> list[SmtpAttempt]:
        """A snapshot of every DATA attempt, accepted or rejected, in order."""
        with self._cond:
            return list(self._attempts)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedMessage]:
        """Block until at least ``count`` messages were accepted; returns them all.

        Raises :class:`TimeoutError` saying how many arrived when ``timeout`` runs out.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._messages) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"SMTP sink: expected {count} message(s) within {timeout}s, "
                        f"got {len(self._messages)} ({len(self._attempts)} DATA attempt(s))"
                    )
                self._cond.wait(remaining)
            return list(self._messages)

    def clear(self) -> None:
        """Forget received messages and attempts (the script is kept)."""
        with self._cond:
            self._messages.clear()
            self._attempts.clear()

    # -- aiosmtpd handler hooks (called in the server thread) --------------------------

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        with self._cond:
            reply = self._rcpt_replies.get(address.lower())
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        if isinstance(raw, str):  # pragma: no cover - only with decode_data=True
            raw = raw.encode("utf-8", "surrogateescape")
        mail_from = envelope.mail_from or ""
        rcpts = list(envelope.rcpt_tos)
        with self._cond:
            reply = self._script.pop(0) if self._script else DEFAULT_REPLY
            self._attempts.append(SmtpAttempt(mail_from, rcpts, raw, reply))
            if reply.startswith("2"):
                parsed = BytesParser(policy=policy.default).parsebytes(raw)
                assert isinstance(parsed, EmailMessage)
                self._messages.append(
                    ReceivedMessage(
                        mail_from=mail_from,
                        rcpt_tos=rcpts,
                        raw=raw,
                        message=parsed,
                        peer=session.peer,
                        auth_login=_login_name(session.auth_data),
                        tls=session.ssl is not None,
                    )
                )
            self._cond.notify_all()
        return reply

    # -- lifecycle ---------------------------------------------------------------------

    def start(
        self,
        *,
        starttls: bool = False,
        require_starttls: bool = False,
        auth: dict[str, str] | None = None,
        auth_required: bool = False,
        workdir: Path | None = None,
    ) -> None:
        kwargs: dict[str, Any] = {}
        tls = starttls or require_starttls
        if auth_required and not tls:
            raise ValueError("smtp_sink(auth_required=True) needs starttls=True")
        if tls:
            kwargs["tls_context"] = self._tls_context(workdir or Path(tempfile.mkdtemp()))
            kwargs["require_starttls"] = require_starttls
        if auth is not None:
            users = dict(auth)

            def authenticator(
                server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
            ) -> AuthResult:
                if isinstance(data, LoginPassword):
                    login = data.login.decode("utf-8", "replace")
                    if users.get(login) == data.password.decode("utf-8", "replace"):
                        return AuthResult(success=True, auth_data=login)
                return AuthResult(success=False, handled=False)

            kwargs.update(
                authenticator=authenticator,
                auth_required=auth_required,
                auth_require_tls=tls,
            )
        controller = _PortZeroController(self, hostname=self.host, port=0, **kwargs)
        controller.start()
        self._controller = controller
        self.port = controller.port

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def _tls_context(self, workdir: Path) -> ssl.SSLContext:
        openssl = shutil.which("openssl")
        if openssl is None:
            pytest.skip("smtp_sink(starttls=True) needs the openssl command")
        cert, key = workdir / "sink-cert.pem", workdir / "sink-key.pem"
        subprocess.run(
            [
                openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                "-keyout", str(key), "-out", str(cert), "-days", "2",
                "-subj", "/CN=localhost",
                "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
        self.cafile = cert
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        return context

    def client_tls_context(self) -> ssl.SSLContext:
        """A client context that trusts this sink's certificate (after ``starttls=True``)."""
        if self.cafile is None:
            raise RuntimeError("the sink was not started with starttls=True")
        return ssl.create_default_context(cafile=str(self.cafile))


def _login_name(login: Any) -> str | None:
    if login is None:
        return None
    if isinstance(login, bytes):
        return login.decode("utf-8", "replace")
    return str(login)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "smtp_sink(starttls=False, require_starttls=False, auth=None, auth_required=False): "
        "configure the smtp_sink fixture",
    )


@pytest.fixture
def smtp_sink(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SmtpSink]:
    """A running SMTP sink on 127.0.0.1 for one test, configured by the ``smtp_sink`` marker."""
    marker = request.node.get_closest_marker("smtp_sink")
    options: dict[str, Any] = dict(marker.kwargs) if marker else {}
    sink = SmtpSink()
    sink.start(workdir=tmp_path, **options)
    try:
        yield sink
    finally:
        sink.stop()
