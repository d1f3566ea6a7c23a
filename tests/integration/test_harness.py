"""Integration tests whose sole purpose is to prove the real-server harness itself works.

They exercise the ``dovecot``/``imap_mailbox`` and ``smtp_sink`` fixtures from
``tests/plugins`` against a real Dovecot and a real aiosmtpd server.
"""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

import pytest

from tests.plugins.dovecot import DovecotServer, ImapMailbox
from tests.plugins.smtpsink import SmtpSink

pytestmark = pytest.mark.integration

SMALL = (
    b"From: Cliente <customer@example.com>\r\n"
    b"To: suporte@example.com\r\n"
    b"Subject: Impressora parada\r\n"
    b"Message-ID: <harness-1@example.com>\r\n"
    b"\r\n"
    b"A impressora do 2o andar parou.\r\n"
)


def test_append_then_fetch_by_uid(imap_mailbox: ImapMailbox) -> None:
    uid = imap_mailbox.append(SMALL)

    imap = imap_mailbox.client()
    imap.select_folder("INBOX", readonly=True)
    assert imap.search(["ALL"]) == [uid]
    fetched = imap.fetch([uid], ["BODY.PEEK[]"])  # UID FETCH: keyed by UID
    assert list(fetched) == [uid]
    assert fetched[uid][b"BODY[]"] == SMALL


def test_append_creates_missing_folder(imap_mailbox: ImapMailbox) -> None:
    uid = imap_mailbox.append(SMALL, folder="Archive")

    imap = imap_mailbox.client()
    imap.select_folder("Archive", readonly=True)
    assert imap.search(["ALL"]) == [uid]


def test_idle_sees_append_from_second_client(imap_mailbox: ImapMailbox) -> None:
    watcher = imap_mailbox.client()
    watcher.select_folder("INBOX")
    watcher.idle()
    try:
        imap_mailbox.append(SMALL)  # a second connection
        responses = watcher.idle_check(timeout=5)
    finally:
        watcher.idle_done()
    assert (1, b"EXISTS") in responses


def test_mailboxes_are_isolated(dovecot: DovecotServer, imap_mailbox: ImapMailbox) -> None:
    other, _ = dovecot.add_user()
    dovecot.append(other, "INBOX", SMALL)

    imap = imap_mailbox.client()
    assert imap.select_folder("INBOX", readonly=True)[b"EXISTS"] == 0


def test_premade_users_can_log_in(dovecot: DovecotServer) -> None:
    for user in ("suporte@example.com", "customer@example.com"):
        imap = dovecot.client(user)
        assert imap.folder_exists("INBOX")
        imap.logout()


def test_restart_keeps_port_and_mail(dovecot: DovecotServer, imap_mailbox: ImapMailbox) -> None:
    uid = imap_mailbox.append(SMALL)
    before = imap_mailbox.client()
    uidvalidity = before.select_folder("INBOX")[b"UIDVALIDITY"]
    port = dovecot.port

    dovecot.restart()

    assert dovecot.port == port
    assert dovecot.running
    after = imap_mailbox.client()
    selected = after.select_folder("INBOX", readonly=True)
    assert selected[b"UIDVALIDITY"] == uidvalidity
    assert after.fetch([uid], ["BODY.PEEK[]"])[uid][b"BODY[]"] == SMALL
    assert dovecot.log_path.exists()


def _message(subject: str = "Chamado aberto") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "suporte@example.com"
    msg["To"] = "customer@example.com"
    msg["Subject"] = subject
    msg.set_content("Recebemos o seu chamado.\n")
    return msg


def test_sink_receives_message(smtp_sink: SmtpSink) -> None:
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=10) as smtp:
        smtp.send_message(_message(), to_addrs=["customer@example.com", "cc@example.com"])

    [received] = smtp_sink.wait_for(1, timeout=5)
    assert received.mail_from == "suporte@example.com"
    assert received.rcpt_tos == ["customer@example.com", "cc@example.com"]
    assert received.message["Subject"] == "Chamado aberto"
    assert received.message.get_content().splitlines() == ["Recebemos o seu chamado."]
    assert b"Subject: Chamado aberto" in received.raw


def test_scripted_451_then_accepted(smtp_sink: SmtpSink) -> None:
    smtp_sink.script(["451 4.3.0 try later"])

    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=10) as smtp:
        with pytest.raises(smtplib.SMTPDataError) as excinfo:
            smtp.send_message(_message("first"))
        assert excinfo.value.smtp_code == 451
        smtp.send_message(_message("second"))

    [received] = smtp_sink.wait_for(1, timeout=5)
    assert received.message["Subject"] == "second"
    assert [a.reply[:3] for a in smtp_sink.attempts] == ["451", "250"]


def test_scripted_permanent_failure(smtp_sink: SmtpSink) -> None:
    smtp_sink.script(["550 5.1.1 no such user"])

    with (
        smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=10) as smtp,
        pytest.raises(smtplib.SMTPDataError) as excinfo,
    ):
        smtp.send_message(_message())
    assert excinfo.value.smtp_code == 550
    assert smtp_sink.messages == []


def test_rejected_recipient(smtp_sink: SmtpSink) -> None:
    smtp_sink.reject_rcpt("gone@example.com")

    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=10) as smtp:
        refused = smtp.send_message(
            _message(), to_addrs=["customer@example.com", "gone@example.com"]
        )
    assert refused == {"gone@example.com": (550, b"5.1.1 no such user")}
    [received] = smtp_sink.wait_for(1, timeout=5)
    assert received.rcpt_tos == ["customer@example.com"]


def test_wait_for_times_out_with_count(smtp_sink: SmtpSink) -> None:
    with pytest.raises(TimeoutError, match="expected 1 message"):
        smtp_sink.wait_for(1, timeout=0.2)


@pytest.mark.smtp_sink(starttls=True, auth={"maild": "s3cret"}, auth_required=True)
def test_sink_starttls_and_auth(smtp_sink: SmtpSink) -> None:
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=10) as smtp:
        smtp.starttls(context=smtp_sink.client_tls_context())
        smtp.login("maild", "s3cret")
        smtp.send_message(_message())

    [received] = smtp_sink.wait_for(1, timeout=5)
    assert received.tls
    assert received.auth_login == "maild"
