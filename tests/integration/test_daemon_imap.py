"""End to end: ``maild run`` reading a real Dovecot mailbox and sending through a
real SMTP sink. APPEND in, confirmation out; replies thread; processed mail is
moved; ``kill -9`` in the middle of a backlog loses and duplicates nothing."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.dovecot import ImapMailbox
from tests.plugins.smtpsink import SmtpSink
from tests.processes import start_maild_run
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

CUSTOMER = "cliente@example.com.br"


def customer_mail(n: int, subject: str | None = None, in_reply_to: str | None = None) -> bytes:
    head = (
        f"From: Cliente {n} <cliente{n}@empresa.example.com.br>\r\n"
        "To: suporte@example.com\r\n"
        f"Subject: {subject or f'Pedido {n}: impressora parada'}\r\n"
        f"Message-ID: <imap-{n}@cliente.example>\r\n"
        "Date: Tue, 24 Nov 2026 10:00:00 -0300\r\n"
    )
    if in_reply_to:
        head += f"In-Reply-To: <{in_reply_to}>\r\n"
    return (head + "\r\nA impressora do segundo andar parou de novo.\r\n").encode()


class Run:
    def __init__(self, folder: Path, config: Path) -> None:
        self.folder = folder
        self.config = config
        self.proc: subprocess.Popen[bytes] | None = None
        self.db = folder / "var" / "maild.sqlite3"

    def start(self) -> None:
        self.proc = start_maild_run(self.config, self.folder / "daemon.log")

    def kill(self, sig: int) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=15)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        if not self.db.exists():
            return []
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5) as conn:
            try:
                return conn.execute(sql).fetchall()
            except sqlite3.OperationalError:
                return []  # schema not created yet

    def processed(self) -> int:
        rows = self.query("SELECT COUNT(*) FROM inbound WHERE state != 'received'")
        return int(rows[0][0]) if rows else 0


@pytest.fixture
def run(tmp_path: Path, imap_mailbox: ImapMailbox, smtp_sink: SmtpSink) -> Iterator[Run]:
    (tmp_path / "imap-password").write_text(imap_mailbox.password)
    config = tmp_path / "settings.toml"
    config.write_text(
        f"""
[daemon]
instance = "Acme Suporte"
data_dir = "{tmp_path / "var"}"

{imap_mailbox.source_toml(tmp_path / "imap-password", poll_seconds=5)}
[listener]
enabled = false

[web]
enabled = false

[smtp]
host = "127.0.0.1"
port = {smtp_sink.port}
security = "none"

[[departments]]
key = "suporte"
name = "Suporte"
addresses = ["suporte@example.com"]
default = true

[limits]
max_messages_per_sender_per_hour = 1000
"""
    )
    daemon = Run(tmp_path, config)
    try:
        yield daemon
    finally:
        if daemon.proc is not None and daemon.proc.poll() is None:
            daemon.kill(signal.SIGKILL)


def confirmations(sink: SmtpSink) -> Counter[str]:
    """How many confirmations each customer Message-ID got."""
    return Counter(
        str(m.message["In-Reply-To"]).strip().strip("<>")
        for m in sink.messages
        if m.message["In-Reply-To"]
    )


def test_append_is_confirmed_moved_and_a_reply_threads(
    run: Run, imap_mailbox: ImapMailbox, smtp_sink: SmtpSink
) -> None:
    run.start()
    imap_mailbox.append(customer_mail(1))

    (ack,) = smtp_sink.wait_for(1, timeout=30)
    subject = str(ack.message["Subject"])
    assert subject.startswith("[#")
    number = int(subject[2 : subject.index("]")])
    assert str(ack.message["In-Reply-To"]).strip() == "<imap-1@cliente.example>"

    client = imap_mailbox.client()
    wait_for(
        lambda: (
            client.folder_exists("Processados")
            and client.select_folder("Processados")[b"EXISTS"] == 1
        ),
        20,
        "the message to be moved to Processados",
    )
    assert client.select_folder("INBOX")[b"EXISTS"] == 0

    imap_mailbox.append(customer_mail(2, subject=f"RES: [#{number}] Pedido 1: impressora parada"))
    wait_for(lambda: run.processed() == 2, 30, "the reply to be processed")
    rows = run.query("SELECT outcome FROM inbound ORDER BY id")
    assert [r[0] for r in rows] == ["created", "appended"]
    assert run.kill(signal.SIGTERM) == 0


def test_kill_9_mid_backlog_loses_and_duplicates_nothing(
    run: Run, imap_mailbox: ImapMailbox, smtp_sink: SmtpSink
) -> None:
    total = 150
    for n in range(total):
        imap_mailbox.append(customer_mail(n))

    run.start()
    wait_for(lambda: run.processed() >= 20, 60, "part of the backlog to be processed")
    run.kill(signal.SIGKILL)
    assert run.processed() < total  # the kill landed mid-batch

    run.start()
    wait_for(lambda: run.processed() >= total, 120, "the whole backlog after a restart")
    wait_for(
        lambda: not run.query("SELECT 1 FROM outbox WHERE status = 'pending'"),
        60,
        "the outbox to drain",
    )
    assert run.kill(signal.SIGTERM) == 0

    # Exactly one outcome per message, one ticket each.
    outcomes = run.query(
        "SELECT message_id, outcome FROM inbound WHERE outcome != 'duplicate_message'"
    )
    assert sorted(m for m, _ in outcomes) == sorted(
        f"imap-{n}@cliente.example" for n in range(total)
    )
    assert {o for _, o in outcomes} == {"created"}
    assert run.query("SELECT COUNT(*) FROM ticket")[0][0] == total

    # Every confirmation delivered (SPEC §4: never given up). A delivery cut by the
    # kill between DATA and its record is sent again as an identical copy: those,
    # and only those, may arrive twice.
    sent = confirmations(smtp_sink)
    assert len(sent) == total
    interrupted = run.query("SELECT COUNT(*) FROM outbox_attempt WHERE result = 'interrupted'")[0][
        0
    ]
    assert sum(sent.values()) - total <= interrupted
    assert run.query("SELECT COUNT(*) FROM outbox WHERE status != 'sent'")[0][0] == 0
