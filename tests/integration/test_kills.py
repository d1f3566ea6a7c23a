"""``kill -9`` at 20 random moments over a mixed backlog (SPEC §2, §4, §10).

A real Dovecot mailbox holds a mixed backlog: openings (some with a PNG attached),
byte-identical and re-delivered copies of the same Message-ID, openings that repeat
an active ticket's subject, auto-replies; once those are processed, customer replies
to those tickets by token and agent replies with commands (a few invalid) follow. One
``maild run`` works it, sending through a real aiosmtpd sink, and is killed with
SIGKILL at 20 moments drawn from a seeded generator (so a failure replays): half
while the openings are processed and sent, half over the replies. Each kill waits
for the work (outcomes committed + mails accepted by the sink) to reach a drawn
threshold, so the kills spread over processing, sending and restart recovery.

Then, on SQLite and on PostgreSQL: every IMAP UID has exactly one inbound row and
the outcome its mail calls for, no ticket twice, every outbox row ``sent`` and its
Message-ID at the sink, and a mail twice at the sink only as identical copies of a
delivery the kill cut (an ``interrupted`` attempt on its row).
"""

from __future__ import annotations

import base64
import random
import signal
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import peewee
import pytest
from maild.storage.binding import bind_process
from maild.storage.db import open_database

from tests.plugins.dovecot import ImapMailbox
from tests.plugins.smtpsink import SmtpSink
from tests.processes import start_maild_run
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

SEED = 16
KILLS = 20
OPENINGS = 110
WITH_ATTACHMENT = 8
RESENT = 8  # openings delivered twice (half byte-identical, half with a new header)
SAME_SUBJECT = 5  # a second opening with the subject of an active ticket
AUTO_REPLIES = 3
CUSTOMER_REPLIES = 45
AGENT_REPLIES = 30
AGENT_REFUSED = 3
REPLY_COPIES = 5
KILL_JITTER_SECONDS = 0.15
AGENT = "ana@example.com"
SUBJECTS = ("impressora parada", "NF-e rejeitada", "boleto vencido", "não consigo entrar")
PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


@dataclass(frozen=True)
class Mail:
    raw: bytes
    message_id: str
    expected: str  # the outcome this copy must end with
    mails: int = 0  # the outbound mails that outcome causes (one agent in the department)


def _mail(sender: str, subject: str, mid: str, body: str, extra: str = "") -> bytes:
    head = (
        f"From: {sender}\r\nTo: suporte@example.com\r\nSubject: {subject}\r\n"
        f"Message-ID: <{mid}>\r\nDate: Tue, 24 Nov 2026 10:00:00 -0300\r\n"
        f"MIME-Version: 1.0\r\n{extra}"
    )
    text = "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    return (head + text + body).encode()


def _with_png(sender: str, subject: str, mid: str, body: str) -> bytes:
    png = base64.encodebytes(PNG_1PX).decode().replace("\n", "\r\n")
    return (
        f"From: {sender}\r\nTo: suporte@example.com\r\nSubject: {subject}\r\n"
        f"Message-ID: <{mid}>\r\nDate: Tue, 24 Nov 2026 10:00:00 -0300\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        f"{body}--b1\r\nContent-Type: image/png; name=tela.png\r\n"
        "Content-Disposition: attachment; filename=tela.png\r\n"
        f"Content-Transfer-Encoding: base64\r\n\r\n{png}--b1--\r\n"
    ).encode()


def customer(n: int) -> str:
    return f"Cliente {n} <cliente{n}@empresa{n}.example.com.br>"


def opening_subject(n: int) -> str:
    return f"Pedido {n}: {SUBJECTS[n % len(SUBJECTS)]}"


def openings_backlog(rng: random.Random) -> list[Mail]:
    """The first backlog: openings, their copies, repeated subjects, auto-replies."""
    body = "A impressora do segundo andar parou de novo.\r\n"
    attached = set(rng.sample(range(OPENINGS), WITH_ATTACHMENT))
    mails = []
    for n in range(OPENINGS):
        mid = f"kills-open-{n}@cliente.example"
        make = _with_png if n in attached else _mail
        mails.append(Mail(make(customer(n), opening_subject(n), mid, body), mid, "created", 2))
    later: list[Mail] = []
    for i, n in enumerate(rng.sample(range(OPENINGS), RESENT)):
        raw = mails[n].raw if i % 2 else b"Received: by relay.example; again\r\n" + mails[n].raw
        later.append(Mail(raw, mails[n].message_id, "duplicate_message"))
    for n in rng.sample(range(OPENINGS), SAME_SUBJECT):
        mid = f"kills-again-{n}@cliente.example"
        raw = _mail(customer(n), opening_subject(n), mid, "Alguém viu meu pedido?\r\n")
        later.append(Mail(raw, mid, "duplicate_subject_rejected", 1))
    for n in rng.sample(range(OPENINGS), AUTO_REPLIES):
        mid = f"kills-auto-{n}@cliente.example"
        raw = _mail(
            customer(n), "Resposta automática: ausente", mid, "Estou de férias.\r\n",
            extra="Auto-Submitted: auto-replied\r\n",
        )  # fmt: skip
        later.append(Mail(raw, mid, "auto_reply_ignored"))
    rng.shuffle(later)
    # Each later mail comes after the opening it repeats: the openings go first.
    return mails + later


def replies_backlog(rng: random.Random, numbers: dict[int, int]) -> list[Mail]:
    """The second backlog: replies by token to the tickets the first one opened."""
    mails: list[Mail] = []
    for n in rng.sample(sorted(numbers), CUSTOMER_REPLIES):
        mid = f"kills-reply-{n}@cliente.example"
        subject = f"RES: [#{numbers[n]}] {opening_subject(n)}"
        raw = _mail(customer(n), subject, mid, "Continua parada, alguma novidade?\r\n")
        mails.append(Mail(raw, mid, "appended", 1))  # the agent's notification
    answered = rng.sample(sorted(numbers), AGENT_REPLIES + AGENT_REFUSED)
    for i, n in enumerate(answered):
        mid = f"kills-agent-{n}@example.com"
        subject = f"Re: [#{numbers[n]}] {opening_subject(n)}"
        refused = i < AGENT_REFUSED
        command = "#priority altissima" if refused else "#priority urgent\r\n#status in_progress"
        body = f"{command}\r\n\r\nEstamos verificando, retorno em breve.\r\n"
        raw = _mail(f"Ana <{AGENT}>", subject, mid, body)
        # Refused: the error mail to the agent; else the reply and the status mail.
        mails.append(Mail(raw, mid, *(("agent_refused", 1) if refused else ("appended", 2))))
    rng.shuffle(mails)
    copies = [
        Mail(m.raw, m.message_id, "duplicate_message") for m in rng.sample(mails, REPLY_COPIES)
    ]
    return mails + copies


def expected_mails(mails: list[Mail]) -> int:
    return sum(mail.mails for mail in mails)


class Daemon:
    """One ``maild run`` restarted after each kill, and what it wrote, seen from outside."""

    def __init__(self, folder: Path, config: Path, db: peewee.Database, sink: SmtpSink) -> None:
        self.folder = folder
        self.config = config
        self.db = db
        self.sink = sink
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills: list[str] = []  # where each kill landed, for a failure's report

    def start(self) -> None:
        self.proc = start_maild_run(self.config, self.folder / "daemon.log")

    def ready(self) -> bool:
        """The current process finished starting up (recovery included)."""
        assert self.proc is not None
        mine = f':{self.proc.pid}", "event": "daemon.ready"'
        return mine in (self.folder / "daemon.log").read_text(errors="replace")

    def kill(self, sig: int = signal.SIGKILL) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=20)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        return list(self.db.execute_sql(sql).fetchall())

    def count(self, sql: str) -> int:
        return int(self.query(sql)[0][0])

    def processed(self) -> int:
        return self.count("SELECT COUNT(*) FROM inbound WHERE state != 'received'")

    def stored(self) -> int:
        return self.count("SELECT COUNT(*) FROM inbound")

    def progress(self) -> int:
        return self.processed() + len(self.sink.messages)

    def settled(self, appended: int) -> bool:
        return self.processed() >= appended and not self.count(
            "SELECT COUNT(*) FROM outbox WHERE status = 'pending'"
        )


def write_config(folder: Path, url: str, mailbox: ImapMailbox, sink: SmtpSink) -> Path:
    (folder / "imap-password").write_text(mailbox.password)
    config = folder / "settings.toml"
    config.write_text(
        f"""
[daemon]
instance = "Acme Suporte"
data_dir = "{folder / "var"}"

[database]
url = "{url}"

{mailbox.source_toml(folder / "imap-password", poll_seconds=5)}
[listener]
enabled = false

[web]
enabled = false

[smtp]
host = "127.0.0.1"
port = {sink.port}
security = "none"

[[departments]]
key = "suporte"
name = "Suporte"
addresses = ["suporte@example.com"]
default = true

[[agents]]
email = "{AGENT}"
name = "Ana"
departments = ["suporte"]

[agents_auth]
require = "from"

[limits]
max_messages_per_sender_per_hour = 100000
max_auto_replies_per_recipient_per_hour = 100000
"""
    )
    return config


@pytest.fixture
def daemon(
    tmp_path: Path, database_url: str, imap_mailbox: ImapMailbox, smtp_sink: SmtpSink
) -> Iterator[Daemon]:
    db = open_database(database_url, migrate=True)
    previous = bind_process(db)  # the test reads the daemon's rows through the models
    run = Daemon(
        tmp_path, write_config(tmp_path, database_url, imap_mailbox, smtp_sink), db, smtp_sink
    )
    try:
        yield run
    finally:
        if run.proc is not None and run.proc.poll() is None:
            run.kill()
        bind_process(previous)
        db.close()


def kill_at_drawn_moments(
    run: Daemon, rng: random.Random, kills: int, appended: int, work: int
) -> None:
    """``kills`` SIGKILLs, each once a drawn amount of work (outcomes committed +
    mails accepted) was done since the last start, or everything is settled; the
    daemon is started again after each. The steps average ``work / (kills + 1)``,
    so the kills spread over the whole of it."""
    mean = max(1, work // (kills + 1))
    for _ in range(kills):
        target = run.progress() + rng.randint(1, 2 * mean)
        wait_for(
            lambda t=target: run.progress() >= t or run.settled(appended),
            90,
            f"work to reach {target} (or settle) before a kill",
        )
        # Progress shows at commits; a drawn moment after one lands inside the next
        # batch's work, a delivery, or a restart's recovery. No clock to inject here:
        # the moment is the point, wall time on another process.
        time.sleep(rng.uniform(0, KILL_JITTER_SECONDS))
        run.kills.append(
            f"processed={run.processed()} stored={run.stored()} "
            f"sink={len(run.sink.messages)} ready={run.ready()}"
        )
        run.kill()
        run.start()


def ticket_numbers(run: Daemon) -> dict[int, int]:
    """Ticket number of each opening, by its index."""
    rows = run.query(
        "SELECT i.message_id, t.number FROM inbound i JOIN ticket t ON t.id = i.ticket_id "
        "WHERE i.outcome = 'created'"
    )
    prefix = "kills-open-"
    return {int(m[len(prefix) :].split("@")[0]): int(num) for m, num in rows}


def test_20_kills_lose_and_duplicate_nothing(
    daemon: Daemon, imap_mailbox: ImapMailbox, smtp_sink: SmtpSink
) -> None:
    rng = random.Random(SEED)
    first = openings_backlog(rng)
    uids = {imap_mailbox.append(mail.raw): mail for mail in first}

    daemon.start()
    half = KILLS // 2
    kill_at_drawn_moments(daemon, rng, half, len(uids), len(first) + expected_mails(first))
    wait_for(lambda: daemon.processed() >= len(uids), 90, "the openings to be processed")

    second = replies_backlog(rng, ticket_numbers(daemon))
    uids.update({imap_mailbox.append(mail.raw): mail for mail in second})
    kill_at_drawn_moments(
        daemon, rng, KILLS - half, len(uids), len(second) + expected_mails(second)
    )

    wait_for(lambda: daemon.settled(len(uids)), 120, "every outcome and every mail")
    print("kills at:", *daemon.kills, sep="\n  ")
    client = imap_mailbox.client()
    wait_for(
        lambda: client.select_folder("INBOX")[b"EXISTS"] == 0, 30, "INBOX emptied into Processados"
    )
    wait_for(daemon.ready, 30, "the last start to finish")
    assert daemon.kill(signal.SIGTERM) == 0

    assert_one_outcome_each(daemon, uids)
    assert_no_ticket_twice(daemon)
    assert_every_mail_delivered_once(daemon, smtp_sink)


def assert_one_outcome_each(run: Daemon, uids: dict[int, Mail]) -> None:
    rows = run.query("SELECT imap_uid, state, outcome FROM inbound")
    assert Counter(uid for uid, _, _ in rows) == Counter(list(uids)), "one inbound row per IMAP UID"
    assert not [r for r in rows if r[1] == "received"]
    outcomes = {int(uid): outcome for uid, _, outcome in rows}
    wrong = {
        uid: (mail.message_id, mail.expected, outcomes[uid])
        for uid, mail in uids.items()
        if outcomes[uid] != mail.expected
    }
    assert not wrong
    attached = run.count("SELECT COUNT(*) FROM attachment")
    assert attached == WITH_ATTACHMENT  # stored once, copies add none
    # Every agent #priority urgent held (no update lost to a kill).
    urgent = run.count("SELECT COUNT(*) FROM ticket WHERE priority = 'urgent'")
    assert urgent == AGENT_REPLIES


def assert_no_ticket_twice(run: Daemon) -> None:
    rows = run.query("SELECT requester, normalized_subject FROM ticket")
    assert len(rows) == OPENINGS
    assert [key for key, n in Counter(rows).items() if n > 1] == []


def assert_every_mail_delivered_once(run: Daemon, sink: SmtpSink) -> None:
    outbox = run.query("SELECT id, status, message_id FROM outbox")
    assert {status for _, status, _ in outbox} == {"sent"}
    interrupted = Counter(
        int(oid)
        for (oid,) in run.query("SELECT outbox_id FROM outbox_attempt WHERE result = 'interrupted'")
    )
    copies: dict[str, list[bytes]] = defaultdict(list)
    for received in sink.messages:
        copies[str(received.message["Message-ID"]).strip().strip("<>")].append(received.raw)
    by_id = {str(mid): int(oid) for oid, _, mid in outbox}
    assert set(copies) == set(by_id), "every outbox Message-ID at the sink, nothing else"
    confirmations = run.count("SELECT COUNT(*) FROM outbox WHERE template = 'confirmation'")
    assert confirmations == OPENINGS
    for mid, raws in copies.items():
        if len(raws) > 1:
            assert len(set(raws)) == 1, f"{mid}: copies differ"
            assert len(raws) - 1 <= interrupted[by_id[mid]], f"{mid}: sent twice, never cut"
