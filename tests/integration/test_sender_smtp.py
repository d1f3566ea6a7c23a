"""The outbox sender against a real aiosmtpd sink: what arrives, retries, TLS, crashes, races.

Mail is produced by the real pipeline (``maild.pipeline.ingest``) or enqueued
directly, and delivered by ``OutboxSender.run_once`` over real SMTP. Time moves
only through the FrozenClock: nothing here sleeps to wait for a backoff.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from maild.storage import outbox as ob
from maild.storage.models import Event, Outbox, OutboxAttempt, ThreadEntry, Ticket

from maild.app import App
from maild.clock import FrozenClock
from maild.pipeline import ingest
from maild.sender import OutboxSender
from maild.transports import SmtpTransport
from tests.plugins.smtpsink import SmtpSink

pytestmark = pytest.mark.integration

CUSTOMER = "cliente@example.com.br"
CUSTOMER_MID = "pedido-1@example.com.br"
REPO = Path(__file__).resolve().parents[2]


def customer_mail(
    subject: str = "Não consigo emitir NF-e",
    message_id: str = CUSTOMER_MID,
    name: str = "Joana Conceição",
    body: str = "O sistema mostra erro 500 ao emitir a nota.\n",
) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"{name} <{CUSTOMER}>"
    msg["To"] = "suporte@example.com"
    msg["Subject"] = subject
    msg["Date"] = "Tue, 24 Nov 2026 10:00:00 -0300"
    msg["Message-ID"] = f"<{message_id}>"
    msg.set_content(body)
    return msg.as_bytes()


def smtp_table(sink: SmtpSink, **extra: Any) -> dict[str, Any]:
    return {"host": sink.host, "port": sink.port, "security": "none", **extra}


def sender_for(app: App, ssl_context: Any = None, owner: str | None = None) -> OutboxSender:
    assert app.settings.smtp is not None
    return OutboxSender(app, SmtpTransport(app.settings.smtp, ssl_context), owner=owner)


def open_ticket(app: App, **mail: Any) -> tuple[Ticket, Outbox]:
    """Ingest a customer mail; return its ticket and its confirmation row."""
    result = ingest(app, customer_mail(**mail), "ingest")
    assert result.outcome == "created"
    ticket = Ticket.get(Ticket.number == result.ticket)
    row = Outbox.get((Outbox.ticket == ticket) & (Outbox.template == "confirmation"))
    return ticket, row


def received(sink: SmtpSink, message_id: str) -> list[EmailMessage]:
    return [m.message for m in sink.messages if m.message["Message-ID"] == f"<{message_id}>"]


def attempts_for(sink: SmtpSink, message_id: str) -> int:
    needle = f"<{message_id}>".encode()
    return sum(1 for a in sink.attempts if needle in a.raw)


def per_message_id(sink: SmtpSink) -> collections.Counter[str]:
    return collections.Counter(str(m.message["Message-ID"]) for m in sink.messages)


def fresh(row: Outbox) -> Outbox:
    return Outbox.get_by_id(row.id)


# ---------------------------------------------------------------------------
# what arrives
# ---------------------------------------------------------------------------


def test_confirmation_arrives_with_the_headers_of_spec_4(
    make_app: Callable[..., App], smtp_sink: SmtpSink
) -> None:
    app = make_app(smtp=smtp_table(smtp_sink), daemon={"instance": "Central de Atendimento Ação"})
    ticket, row = open_ticket(app)

    assert sender_for(app).drain() >= 1
    [got] = [m for m in smtp_sink.messages if m.message["Message-ID"] == f"<{row.message_id}>"]
    msg, raw = got.message, got.raw
    assert fresh(row).status == ob.OUTBOX_SENT

    sender = msg["From"].addresses[0]
    assert (sender.display_name, sender.addr_spec) == (
        "Central de Atendimento Ação",
        "suporte@example.com",
    )
    assert msg["Reply-To"].addresses[0].addr_spec == "suporte@example.com"
    assert [a.addr_spec for a in msg["To"].addresses] == [CUSTOMER]
    token = f"[#{ticket.number}]"
    assert msg["Subject"] == f"{token} Não consigo emitir NF-e"
    assert msg["Subject"].count(token) == 1
    assert msg["Message-ID"] == f"<{row.message_id}>"
    assert msg["Message-ID"].endswith("@example.com>")
    assert msg["In-Reply-To"] == f"<{CUSTOMER_MID}>"
    assert f"<{CUSTOMER_MID}>" in msg["References"].split()
    assert msg["X-Maild-Ticket"] == str(ticket.number)
    assert msg["X-Maild-Loop"]
    assert msg["Auto-Submitted"] == "auto-replied"

    # Non-ASCII words travel as RFC 2047 encoded-words and decode back (above).
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    subject_line = next(h for h in head.split("\r\n") if h.startswith("Subject:"))
    assert "=?utf-8?" in subject_line.lower()
    assert "=?utf-8?" in head[head.index("From:") :].split("\r\n", 1)[0].lower()

    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None and html is not None
    link = f"http://127.0.0.1:8080/t/{ticket.number}/{ticket.access_key}"
    for part in (text.get_content(), html.get_content()):
        assert str(ticket.number) in part
        assert link in part
    assert got.mail_from == "suporte@example.com"  # the envelope sender too


@pytest.mark.parametrize(
    ("language", "separator", "other"),
    [
        ("pt_BR", "##- Responda acima desta linha -##", "Please type your reply"),
        ("en", "##- Please type your reply above this line -##", "Responda acima"),
    ],
)
def test_language_follows_daemon_language_when_the_mail_does_not_tell(
    make_app: Callable[..., App],
    smtp_sink: SmtpSink,
    language: str,
    separator: str,
    other: str,
) -> None:
    app = make_app(smtp=smtp_table(smtp_sink), daemon={"language": language})
    # No Content-Language and too few words to tell: the desk's language.
    _ticket, row = open_ticket(app, subject="NF-e", body="Erro 500.\n")
    sender_for(app).drain()
    [msg] = received(smtp_sink, row.message_id)
    text = msg.get_body(("plain",))
    assert text is not None
    body = text.get_content()
    assert body.lstrip().startswith(separator)
    assert other not in body


# ---------------------------------------------------------------------------
# answers: 4xx defers, 5xx fails
# ---------------------------------------------------------------------------


def test_451_then_250_delivers_once_after_the_backoff(
    make_app: Callable[..., App], smtp_sink: SmtpSink, clock: FrozenClock
) -> None:
    app = make_app(smtp=smtp_table(smtp_sink))
    _ticket, row = open_ticket(app)
    smtp_sink.script(["451 4.3.0 try again later"])  # the first DATA: the confirmation
    sender = sender_for(app)

    sender.run_once()
    deferred = fresh(row)
    assert deferred.status == ob.OUTBOX_PENDING
    assert deferred.attempts == 1
    assert deferred.last_error is not None and deferred.last_error.startswith("451")
    assert received(smtp_sink, row.message_id) == []

    sender.run_once()  # the backoff is not over: nothing is tried
    assert attempts_for(smtp_sink, row.message_id) == 1

    clock.advance(minutes=1, seconds=1)
    sender.run_once()
    sent = fresh(row)
    assert sent.status == ob.OUTBOX_SENT
    assert sent.attempts == 2
    assert len(received(smtp_sink, row.message_id)) == 1
    assert attempts_for(smtp_sink, row.message_id) == 2
    results = [a.result for a in OutboxAttempt.select().where(OutboxAttempt.outbox == row.id)]
    assert results == ["deferred", "sent"]


def test_550_fails_once_with_a_note_and_an_event(
    make_app: Callable[..., App], smtp_sink: SmtpSink, clock: FrozenClock
) -> None:
    app = make_app(smtp=smtp_table(smtp_sink))
    ticket, row = open_ticket(app)
    smtp_sink.script(["550 5.7.1 message refused"])
    sender = sender_for(app)

    sender.run_once()
    clock.advance(hours=3)
    sender.run_once()

    failed = fresh(row)
    assert failed.status == ob.OUTBOX_FAILED
    assert failed.attempts == 1
    assert attempts_for(smtp_sink, row.message_id) == 1
    assert received(smtp_sink, row.message_id) == []
    notes = ThreadEntry.select().where(
        (ThreadEntry.ticket == ticket) & (ThreadEntry.kind == "system")
    )
    assert any("550 5.7.1" in n.text and CUSTOMER in n.text for n in notes)
    event = Event.get((Event.ticket == ticket) & (Event.kind == "delivery_failed"))
    assert event.data["outbox"] == row.id


def test_rcpt_550_fails_the_row(make_app: Callable[..., App], smtp_sink: SmtpSink) -> None:
    app = make_app(smtp=smtp_table(smtp_sink))
    _ticket, row = open_ticket(app)
    smtp_sink.reject_rcpt(CUSTOMER)
    sender_for(app).run_once()
    assert fresh(row).status == ob.OUTBOX_FAILED
    assert received(smtp_sink, row.message_id) == []


def _ticket_with_cc(app: App, cc: str) -> tuple[Ticket, Outbox]:
    raw = customer_mail().replace(b"To: ", f"Cc: {cc}\r\nTo: ".encode(), 1)
    result = ingest(app, raw, "ingest")
    ticket = Ticket.get(Ticket.number == result.ticket)
    row = Outbox.get((Outbox.ticket == ticket) & (Outbox.template == "confirmation"))
    assert cc in row.recipients
    return ticket, row


def test_a_greylisted_cc_gets_the_mail_later_the_others_at_once(
    make_app: Callable[..., App], smtp_sink: SmtpSink, clock: FrozenClock
) -> None:
    cc = "socio@empresa.example.com.br"
    app = make_app(smtp=smtp_table(smtp_sink))
    _ticket, row = _ticket_with_cc(app, cc)
    smtp_sink.reject_rcpt(cc, "450 4.2.0 greylisted, try again later")

    sender_for(app).run_once()

    assert fresh(row).status == ob.OUTBOX_SENT
    ours = [m for m in smtp_sink.messages if m.message["Message-ID"] == f"<{row.message_id}>"]
    assert [m.rcpt_tos for m in ours] == [[CUSTOMER]]
    retry = Outbox.get((Outbox.message_id == row.message_id) & (Outbox.id != row.id))
    assert retry.status == ob.OUTBOX_PENDING and retry.recipients == [cc]

    smtp_sink.accept_rcpt(cc)
    clock.advance(minutes=1, seconds=1)
    sender_for(app).run_once()

    assert fresh(retry).status == ob.OUTBOX_SENT
    ours = [m for m in smtp_sink.messages if m.message["Message-ID"] == f"<{row.message_id}>"]
    assert [m.rcpt_tos for m in ours] == [[CUSTOMER], [cc]]


def test_a_refused_cc_is_noted_on_the_ticket(
    make_app: Callable[..., App], smtp_sink: SmtpSink
) -> None:
    cc = "saiu@empresa.example.com.br"
    app = make_app(smtp=smtp_table(smtp_sink))
    ticket, row = _ticket_with_cc(app, cc)
    smtp_sink.reject_rcpt(cc)

    sender_for(app).run_once()

    assert fresh(row).status == ob.OUTBOX_SENT
    notes = ThreadEntry.select().where(
        (ThreadEntry.ticket == ticket) & (ThreadEntry.kind == "system")
    )
    assert any(cc in n.text for n in notes)


# ---------------------------------------------------------------------------
# TLS and AUTH
# ---------------------------------------------------------------------------


@pytest.mark.smtp_sink(starttls=True, auth={"maild": "s3cret"}, auth_required=True)
def test_starttls_and_auth(
    make_app: Callable[..., App], smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    secret = tmp_path / "smtp-password"
    secret.write_text("s3cret\n")
    app = make_app(
        smtp=smtp_table(smtp_sink, security="starttls", username="maild", password_file=str(secret))
    )
    _ticket, row = open_ticket(app)
    sender_for(app, smtp_sink.client_tls_context()).run_once()

    assert fresh(row).status == ob.OUTBOX_SENT
    [got] = [m for m in smtp_sink.messages if m.message["Message-ID"] == f"<{row.message_id}>"]
    assert got.tls is True
    assert got.auth_login == "maild"


@pytest.mark.smtp_sink(starttls=True, auth={"maild": "s3cret"}, auth_required=True)
def test_bad_credentials_defer_and_never_fail_the_message(
    make_app: Callable[..., App], smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    secret = tmp_path / "smtp-password"
    secret.write_text("wrong")
    app = make_app(
        smtp=smtp_table(smtp_sink, security="starttls", username="maild", password_file=str(secret))
    )
    _ticket, row = open_ticket(app)
    sender_for(app, smtp_sink.client_tls_context()).run_once()
    row = fresh(row)
    # 535 is about our configuration, not about this message: keep it for later.
    assert row.status == ob.OUTBOX_PENDING
    assert row.last_error is not None and "535" in row.last_error
    assert smtp_sink.attempts == []


@pytest.mark.smtp_sink(starttls=True)
def test_untrusted_certificate_is_refused(
    make_app: Callable[..., App], smtp_sink: SmtpSink
) -> None:
    app = make_app(smtp=smtp_table(smtp_sink, security="starttls"))
    _ticket, row = open_ticket(app)
    sender_for(app).run_once()  # the default context does not trust the sink's cert
    assert fresh(row).status == ob.OUTBOX_PENDING
    assert smtp_sink.attempts == []


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_tls_against_a_plain_server_never_falls_back(
    make_app: Callable[..., App], smtp_sink: SmtpSink, security: str
) -> None:
    app = make_app(smtp=smtp_table(smtp_sink, security=security, timeout_seconds=5))
    _ticket, row = open_ticket(app)
    sender_for(app).run_once()
    row = fresh(row)
    assert row.status == ob.OUTBOX_PENDING
    assert row.last_error is not None and row.last_error.startswith("connect:")
    assert smtp_sink.attempts == []  # not a byte of the message in plaintext


# ---------------------------------------------------------------------------
# crashes and concurrent senders
# ---------------------------------------------------------------------------


def _open_three(app: App) -> None:
    for n in range(3):
        open_ticket(app, subject=f"Pedido {n}", message_id=f"pedido-{n}@example.com.br")


def test_sender_abandoned_mid_batch_sends_nothing_twice(
    make_app: Callable[..., App], smtp_sink: SmtpSink, clock: FrozenClock
) -> None:
    app = make_app(smtp=smtp_table(smtp_sink))
    _open_three(app)
    total = Outbox.select().where(Outbox.status == ob.OUTBOX_PENDING).count()
    assert total == 6  # confirmation + agent notification per ticket

    dead = sender_for(app, owner="dead")
    batch = ob.claim_due("dead", clock.now(), limit=10)
    assert len(batch) == total
    dead._send(batch[0])  # delivered
    dead._commit_results()  # and recorded; then the process is gone
    del dead

    survivor = sender_for(app, owner="survivor")
    assert survivor.run_once() == 0  # the dead sender's lease still holds
    clock.advance(minutes=6)
    survivor.drain()

    assert len(smtp_sink.messages) == total
    assert set(per_message_id(smtp_sink).values()) == {1}
    assert Outbox.select().where(Outbox.status == ob.OUTBOX_SENT).count() == total


def test_a_delivery_is_recorded_in_one_commit_with_the_next_rows_start(
    make_app: Callable[..., App], smtp_sink: SmtpSink, clock: FrozenClock
) -> None:
    """One durable commit per mail: a row's result commits with the next row's
    "being delivered" mark (or at the end of the pass), not in a commit of its own."""
    app = make_app(smtp=smtp_table(smtp_sink))
    _open_three(app)
    sender = sender_for(app, owner="one")
    first, second, *_ = ob.claim_due("one", clock.now(), limit=10)
    sender._send(first)
    assert len(smtp_sink.messages) == 1
    assert fresh(first).status == ob.OUTBOX_PENDING and ob.in_doubt(first)  # not yet recorded
    sender._send(second)
    assert fresh(first).status == ob.OUTBOX_SENT and not ob.in_doubt(first)
    assert fresh(second).status == ob.OUTBOX_PENDING
    sender._commit_results()
    assert fresh(second).status == ob.OUTBOX_SENT
    sender.transport.close()


def test_delivery_interrupted_before_it_was_recorded_is_sent_again(
    make_app: Callable[..., App], smtp_sink: SmtpSink, clock: FrozenClock
) -> None:
    app = make_app(smtp=smtp_table(smtp_sink))
    _open_three(app)
    transport = SmtpTransport(app.settings.smtp)  # type: ignore[arg-type]
    batch = ob.claim_due("dead", clock.now(), limit=10)
    first = batch[0]
    assert ob.begin_attempt(first, "dead", clock.now())
    # The server took it, then the sender died before recording the answer.
    assert transport.deliver(first.mail_from, list(first.recipients), bytes(first.raw)).ok
    transport.close()

    clock.advance(minutes=6)
    sender_for(app, owner="survivor").drain()

    # Never given up: an identical copy (same Message-ID, same bytes) goes out again.
    copies = [m for m in smtp_sink.messages if m.message["Message-ID"] == f"<{first.message_id}>"]
    assert len(copies) == 2 and copies[0].raw == copies[1].raw
    assert len(smtp_sink.messages) == len(batch) + 1
    row = fresh(first)
    assert row.status == ob.OUTBOX_SENT
    results = [a.result for a in OutboxAttempt.select().where(OutboxAttempt.outbox == row.id)]
    assert results == [ob.ATTEMPT_INTERRUPTED, "sent"]
    assert not ob.in_doubt(row)


def test_a_sender_whose_lease_ran_out_leaves_the_row_to_the_new_owner(
    make_app: Callable[..., App], smtp_sink: SmtpSink, clock: FrozenClock
) -> None:
    app = make_app(smtp=smtp_table(smtp_sink))
    _ticket, row = open_ticket(app)
    slow = sender_for(app, owner="slow")
    stale = [r for r in ob.claim_due("slow", clock.now()) if r.id == row.id]
    clock.advance(minutes=6)  # "slow" took too long: its lease ran out
    sender_for(app, owner="fast").run_once()
    assert fresh(row).status == ob.OUTBOX_SENT

    slow._send(stale[0])  # the slow one gets to it at last

    assert attempts_for(smtp_sink, row.message_id) == 1  # aborted before DATA
    assert fresh(row).status == ob.OUTBOX_SENT


_KILLABLE_SENDER = """
import sys
from datetime import datetime
from pathlib import Path

from maild.app import App
from maild.clock import FrozenClock
from maild.sender import INTERRUPTED_DETAIL, OutboxSender
from maild.transports import SmtpTransport
from maild.storage.db import open_database
from tests.conftest import build_settings

tmp, port, at = Path(sys.argv[1]), int(sys.argv[2]), datetime.fromisoformat(sys.argv[3])
settings = build_settings(tmp, smtp={"host": "127.0.0.1", "port": port, "security": "none"})
app = App(settings, open_database(f"sqlite:///{tmp / 'maild.sqlite3'}"), FrozenClock(at))


class StallAfterFirst(SmtpTransport):
    calls = 0

    def deliver(self, mail_from, recipients, raw, before_data=None):
        result = super().deliver(mail_from, recipients, raw, before_data)
        StallAfterFirst.calls += 1
        if StallAfterFirst.calls == 1:
            print("delivered", flush=True)
            sys.stdin.read()  # wait here, the answer unrecorded, until SIGKILL
        return result


with app.bound():
    OutboxSender(app, StallAfterFirst(settings.smtp), owner="doomed").run_once()
"""


def test_sender_sigkilled_after_the_first_message_loses_nothing(
    make_app: Callable[..., App], smtp_sink: SmtpSink, clock: FrozenClock, tmp_path: Path
) -> None:
    app = make_app(smtp=smtp_table(smtp_sink))
    _open_three(app)
    total = Outbox.select().count()
    argv = [str(tmp_path), str(smtp_sink.port), clock.now().isoformat()]
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLABLE_SENDER, *argv],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"delivered\n"
        smtp_sink.wait_for(1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()
        proc.stdout.close()

    clock.advance(minutes=6)
    sender_for(app, owner="restarted").drain()

    # Every mail delivered; the one cut by the kill twice, as identical copies.
    counts = per_message_id(smtp_sink)
    assert len(counts) == total
    assert sorted(counts.values()) == [1] * (total - 1) + [2]
    statuses = collections.Counter(r.status for r in Outbox.select())
    assert statuses == {ob.OUTBOX_SENT: total}


def test_two_concurrent_senders_never_send_a_row_twice(
    make_app: Callable[..., App], smtp_sink: SmtpSink, clock: FrozenClock, database_url: str
) -> None:
    app = make_app(database_url, smtp=smtp_table(smtp_sink))
    rows = 40
    for n in range(rows):
        raw = (
            f"From: suporte@example.com\r\nTo: x{n}@example.org\r\n"
            f"Message-ID: <race-{n}@example.com>\r\nSubject: race {n}\r\n\r\nbody\r\n"
        ).encode()
        ob.enqueue(
            idem_key=f"race:{n}",
            now=clock.now(),
            recipients=[f"x{n}@example.org"],
            template="confirmation",
            mail_from="suporte@example.com",
            message_id=f"race-{n}@example.com",
            raw=raw,
        )

    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def work(owner: str) -> None:
        try:
            sender = sender_for(app, owner=owner)
            start.wait()
            while sender.run_once(limit=3):
                pass
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            app.db.close()

    threads = [threading.Thread(target=work, args=(f"s{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    app.db.connect(reuse_if_open=True)

    counts = per_message_id(smtp_sink)
    assert len(counts) == rows
    assert set(counts.values()) == {1}
    assert Outbox.select().where(Outbox.status == ob.OUTBOX_SENT).count() == rows
    assert OutboxAttempt.select().count() == rows  # one attempt per row, no second try


# ---------------------------------------------------------------------------
# bounces
# ---------------------------------------------------------------------------


def dsn_for(message: EmailMessage, recipient: str) -> bytes:
    """A Postfix-style RFC 3464 report around the headers of ``message``."""
    headers = BytesParser(policy=policy.SMTP).parsebytes(message.as_bytes(), headersonly=True)
    head = b"".join(
        f"{k}: {v}\r\n".encode("ascii", "replace")
        for k, v in headers.items()
        if k.lower() in ("from", "to", "subject", "message-id", "x-maild-ticket", "date")
    )
    boundary = "dsn-boundary-1"
    return (
        (
            "Return-Path: <>\r\n"
            "From: MAILER-DAEMON@mx.example.com.br (Mail Delivery System)\r\n"
            "To: suporte@example.com\r\n"
            "Subject: Undelivered Mail Returned to Sender\r\n"
            "Date: Tue, 24 Nov 2026 10:05:00 -0300\r\n"
            "Message-ID: <dsn-1@mx.example.com.br>\r\n"
            "Auto-Submitted: auto-replied\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: multipart/report; report-type=delivery-status;\r\n"
            f' boundary="{boundary}"\r\n'
            "\r\n"
            f"--{boundary}\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n"
            f"<{recipient}>: host mx.example.com.br said: 550 5.1.1 User unknown\r\n\r\n"
            f"--{boundary}\r\n"
            "Content-Type: message/delivery-status\r\n\r\n"
            "Reporting-MTA: dns; mx.example.com.br\r\n\r\n"
            f"Final-Recipient: rfc822; {recipient}\r\n"
            "Action: failed\r\n"
            "Status: 5.1.1\r\n"
            "Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n\r\n"
            f"--{boundary}\r\n"
            "Content-Type: text/rfc822-headers\r\n\r\n"
        ).encode()
        + head
        + f"\r\n--{boundary}--\r\n".encode()
    )


def test_dsn_for_a_sent_confirmation_bounces_it_and_cools_the_address_down(
    make_app: Callable[..., App], smtp_sink: SmtpSink
) -> None:
    app = make_app(smtp=smtp_table(smtp_sink))
    ticket, row = open_ticket(app)
    sender_for(app).drain()
    [delivered] = received(smtp_sink, row.message_id)

    result = ingest(app, dsn_for(delivered, CUSTOMER), "ingest")

    assert result.outcome == "bounce"
    assert fresh(row).status == ob.OUTBOX_BOUNCED
    assert (
        ThreadEntry.select()
        .where(
            (ThreadEntry.ticket == ticket)
            & (ThreadEntry.kind == "system")
            & (ThreadEntry.outcome == "bounce")
        )
        .exists()
    )
    assert ticket.status == Ticket.get_by_id(ticket.id).status  # a bounce never reopens

    _second, next_confirmation = open_ticket(
        app, subject="Outro assunto", message_id="pedido-2@example.com.br"
    )
    assert next_confirmation.status == ob.OUTBOX_HELD == "suppressed"
