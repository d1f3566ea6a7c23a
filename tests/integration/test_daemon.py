"""``maild run`` as a real process: LMTP in, Maildir out, signals, sd_notify, kill -9.

Each test starts the console entry point in a subprocess on a copy of the
shipped settings.toml (listener on a free port, web view off, no [smtp] so mail
goes to the Maildir ``data_dir/outbox``, no IMAP). Waits poll with a deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import smtplib
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

import pytest

from tests.shipped_settings import REPO, write_settings
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

CUSTOMER = "cliente@example.com.br"
STOP_SECONDS = 10  # SPEC §9: SIGTERM exits 0 within 10 s
SYSTEMD_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def customer_mail(n: int | str, tag: str = "t", sender: str = CUSTOMER) -> tuple[str, bytes]:
    message_id = f"{tag}-{n}@cliente.example"
    raw = (
        f"From: Cliente <{sender}>\r\n"
        "To: suporte@example.com\r\n"
        f"Subject: Pedido {tag} {n}: impressora parada\r\n"
        f"Message-ID: <{message_id}>\r\n"
        "Date: Tue, 24 Nov 2026 10:00:00 -0300\r\n"
        "\r\n"
        "A impressora do segundo andar parou de novo.\r\n"
    ).encode()
    return message_id, raw


class Daemon:
    """One ``maild run`` subprocess and what it wrote."""

    def __init__(self, folder: Path, config: Path, port: int, env: dict[str, str]) -> None:
        self.folder = folder
        self.config = config
        self.port = port
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0

    @property
    def log_path(self) -> Path:
        return self.folder / f"daemon-{self.runs}.log"

    def start(self) -> Daemon:
        self.runs += 1
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "maild", "--config", str(self.config), "run"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.folder,
            )
        return self

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log().splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def accepts(self) -> bool:
        if not self.alive():
            raise AssertionError(f"maild run exited early:\n{self.log()}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def wait_ready(self, timeout: float = 20) -> Daemon:
        wait_for(self.accepts, timeout, "the listener to accept connections")
        return self

    def deliver(self, raw: bytes, rcpt: str = "suporte@example.com") -> None:
        with smtplib.LMTP("127.0.0.1", self.port, timeout=20) as client:
            assert client.sendmail(CUSTOMER, [rcpt], raw) == {}

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(
                f"no exit within {STOP_SECONDS} s of SIGTERM:\n{self.log()}"
            ) from None

    def kill(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(10)

    # -- what came out -----------------------------------------------------
    def outbox_files(self) -> list[Path]:
        root = self.folder / "var" / "outbox"
        return [
            p for sub in ("new", "cur") if (root / sub).is_dir() for p in (root / sub).iterdir()
        ]

    def confirmations(self) -> Counter[str]:
        """Maildir mail to the customer, counted by the Message-ID it answers."""
        counts: Counter[str] = Counter()
        parser = BytesHeaderParser()
        for path in self.outbox_files():
            headers = parser.parsebytes(path.read_bytes())
            if str(headers["X-Maild-Envelope-To"]).endswith("@example.com.br"):  # not an agent
                counts[str(headers["In-Reply-To"]).strip("<> ")] += 1
        return counts

    def query(self, sql: str) -> list[tuple]:
        db = sqlite3.connect(self.folder / "var" / "maild.sqlite3", timeout=10)
        try:
            return db.execute(sql).fetchall()
        finally:
            db.close()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    made: list[Daemon] = []

    def make(env: dict[str, str] | None = None, **settings: Any) -> Daemon:
        port = free_port()
        config = write_settings(tmp_path, listener_port=port, **settings)
        full_env = {k: v for k, v in os.environ.items() if k not in SYSTEMD_ENV}
        full_env.update(env or {})
        d = Daemon(tmp_path, config, port, full_env)
        made.append(d)
        return d

    yield make
    for d in made:
        d.kill()


# ---------------------------------------------------------------------------


def test_lmtp_mail_gets_its_confirmation_then_sigterm_exits_0(daemon) -> None:
    d = daemon().start().wait_ready()
    message_id, raw = customer_mail(1)

    d.deliver(raw)

    wait_for(lambda: d.confirmations()[message_id] == 1, 15, "the confirmation in the Maildir")
    assert d.stop() == 0
    events = d.events()
    processed = [e for e in events if e.get("event") == "message.processed"]
    assert len(processed) == 1
    assert processed[0]["outcome"] == "created"
    assert processed[0]["message_id"] == message_id
    assert {"ticket", "duration_ms", "source"} <= set(processed[0])
    assert any(e.get("event") == "daemon.stopped" for e in events)
    assert d.confirmations() == Counter({message_id: 1})


SENDER_SAFETY_PASS_SECONDS = 30  # maild.daemon.SENDER_IDLE_SECONDS


def test_mail_piped_by_another_process_is_sent_without_waiting_for_the_safety_pass(
    daemon, database_url: str
) -> None:
    """``maild ingest`` (the MTA pipe) queues the confirmation in its own process; the
    running daemon is woken (datagram on SQLite, NOTIFY on PostgreSQL) and sends it
    at once, not at its 30 s safety pass."""
    d = daemon(extra={("database", "url"): database_url}).start().wait_ready()
    started = time.monotonic()
    wait_for(lambda: [e for e in d.events() if e.get("event") == "daemon.ready"], 10, "ready")
    message_id, raw = customer_mail("piped")

    piped = subprocess.run(
        [sys.executable, "-m", "maild", "--config", str(d.config), "ingest"],
        input=raw,
        capture_output=True,
        env=d.env,
        cwd=d.folder,
        timeout=60,
    )

    assert piped.returncode == 0, piped.stderr
    assert json.loads(piped.stdout)["outcome"] == "created"
    limit = SENDER_SAFETY_PASS_SECONDS / 3
    wait_for(lambda: d.confirmations()[message_id] == 1, limit, "the piped mail's confirmation")
    assert time.monotonic() - started < SENDER_SAFETY_PASS_SECONDS
    assert d.stop() == 0


def test_sigterm_as_soon_as_the_listener_accepts_exits_0(daemon) -> None:
    """Signals are handled from the moment the socket is bound, not only after start-up."""
    d = daemon().start().wait_ready()
    assert d.stop() == 0
    assert any(e.get("event") == "daemon.stopped" for e in d.events()), d.log()


def test_sighup_with_broken_settings_keeps_the_daemon_running(daemon) -> None:
    d = daemon().start().wait_ready()
    good = d.config.read_text(encoding="utf-8")
    d.config.write_text(good.replace('timezone = "America/Sao_Paulo"', 'timezone = "Nowhere"'))

    d.signal(signal.SIGHUP)

    rejected = wait_for(
        lambda: [e for e in d.events() if e.get("event") == "config.reload_rejected"],
        10,
        "config.reload_rejected in the log",
    )
    assert any("daemon.timezone" in err for err in rejected[0]["errors"])
    assert d.alive()
    message_id, raw = customer_mail("after-hup")
    d.deliver(raw)  # still answers LMTP on the old settings
    wait_for(lambda: d.confirmations()[message_id] == 1, 15, "the confirmation")

    d.config.write_text(good, encoding="utf-8")
    d.signal(signal.SIGHUP)
    wait_for(
        lambda: any(e.get("event") == "config.reloaded" for e in d.events()),
        10,
        "config.reloaded",
    )
    assert d.stop() == 0


class NotifySocket:
    """A bound AF_UNIX datagram socket, as systemd's, collecting what arrives."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="mn"))  # AF_UNIX paths are short
        self.address = str(self.folder / "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.address)
        self.sock.settimeout(0.1)
        self.messages: list[list[str]] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        while not self._done.is_set():
            with contextlib.suppress(TimeoutError):
                self.messages.append(self.sock.recv(4096).decode().splitlines())

    def index(self, field: str) -> int | None:
        return next((i for i, m in enumerate(list(self.messages)) if field in m), None)

    def close(self) -> None:
        self._done.set()
        self._thread.join(5)
        self.sock.close()
        with contextlib.suppress(OSError):
            os.unlink(self.address)
            self.folder.rmdir()


def test_sd_notify_ready_watchdog_and_stopping(daemon) -> None:
    notify = NotifySocket()
    try:
        d = daemon(env={"NOTIFY_SOCKET": notify.address, "WATCHDOG_USEC": "400000"}).start()

        wait_for(lambda: d.accepts() and notify.index("READY=1") is not None, 20, "READY=1")
        ready = notify.index("READY=1")
        assert ready is not None
        # READY=1 is sent once the sockets are up: the listener accepts right away.
        with socket.create_connection(("127.0.0.1", d.port), timeout=2):
            pass
        assert any(line.startswith("STATUS=") for line in notify.messages[ready])
        wait_for(lambda: notify.index("WATCHDOG=1") is not None, 5, "WATCHDOG=1")

        assert d.stop() == 0
        wait_for(lambda: notify.index("STOPPING=1") is not None, 5, "STOPPING=1")
        assert notify.index("STOPPING=1") > ready
    finally:
        notify.close()


def test_kill_9_then_restart_gives_one_outcome_and_one_confirmation_each(daemon) -> None:
    d = daemon().start().wait_ready()
    # One sender each: the shipped per-sender and per-recipient hourly caps stay out of it.
    mails = [customer_mail(n, "crash", f"cliente{n}@example.com.br") for n in range(40)]
    acked: list[str] = []
    refused: list[str] = []
    stop_feeding = threading.Event()

    def feed() -> None:
        # One LMTP session per message, as an MTA queue runner does; stops at the crash.
        for message_id, raw in mails:
            if stop_feeding.is_set():
                return
            try:
                d.deliver(raw)
            except (OSError, smtplib.SMTPException) as exc:
                if not stop_feeding.is_set():
                    refused.append(f"{message_id}: {exc!r}")
                return
            acked.append(message_id)

    feeder = threading.Thread(target=feed)
    feeder.start()
    wait_for(lambda: len(acked) >= 12 or refused, 30, "a dozen messages acknowledged")
    assert refused == [], "refused before the crash"
    d.kill()  # SIGKILL mid-stream: ingest, commit and sending are all in flight
    stop_feeding.set()
    feeder.join(30)
    assert 12 <= len(acked) < len(mails), "the crash should land mid-batch"

    # Restart; the MTA retries every message that had no 250.
    d.start().wait_ready()
    for message_id, raw in mails:
        if message_id not in acked:
            d.deliver(raw)
    expected = [m for m, _ in mails]

    def all_confirmed() -> bool:
        counts = d.confirmations()
        return all(counts[m] >= 1 for m in expected)

    wait_for(all_confirmed, 30, "one confirmation per message")
    wait_for(
        lambda: d.query("SELECT count(*) FROM outbox WHERE status = 'pending'") == [(0,)],
        15,
        "the outbox to drain",
    )
    assert d.stop() == 0

    counts = d.confirmations()
    assert {m: counts[m] for m in expected} == dict.fromkeys(expected, 1)
    rows = d.query("SELECT message_id, state, outcome FROM inbound ORDER BY id")
    assert all(state != "received" and outcome for _, state, outcome in rows), rows
    firsts = Counter(m for m, _, outcome in rows if outcome != "duplicate_message")
    assert firsts == Counter(dict.fromkeys(expected, 1))
    assert {outcome for m, _, outcome in rows if firsts[m]} <= {"created", "duplicate_message"}
    assert d.query("SELECT count(*) FROM ticket") == [(len(expected),)]
    failed = d.query("SELECT id, last_error FROM outbox WHERE status != 'sent'")
    assert failed == []


def test_shipped_settings_start_and_stop_cleanly(tmp_path: Path) -> None:
    """What `make run` runs, minus the venv: the shipped file with only ports changed."""
    listener, web = free_port(), free_port()
    shipped = (REPO / "settings.toml").read_text(encoding="utf-8")
    text = shipped.replace("port = 8025", f"port = {listener}").replace(
        "port = 8080", f"port = {web}"
    )
    assert text.count(str(listener)) == 1 and text.count(str(web)) == 1
    config = tmp_path / "settings.toml"  # data_dir = "var" is relative to this file
    config.write_text(text, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in SYSTEMD_ENV}
    d = Daemon(tmp_path, config, listener, env)
    try:
        d.start().wait_ready()
        wait_for(lambda: _connects(web) or not d.alive(), 20, "the web view to accept connections")
        assert d.alive(), d.log()
        assert (tmp_path / "var" / "maild.sqlite3").exists()
        assert d.stop() == 0, d.log()
        assert any(e.get("event") == "daemon.stopped" for e in d.events())
        assert not any(e.get("level") in ("error", "critical") for e in d.events()), d.log()
    finally:
        d.kill()


def _connects(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


# ---------------------------------------------------------------------------
# recover_outbox, directly: the two ways an interrupted Maildir delivery ends
# ---------------------------------------------------------------------------


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(10)
    return proc.pid


@pytest.mark.parametrize("reached_maildir", [True, False])
def test_recover_outbox_settles_a_delivery_cut_by_a_crash(make_app, reached_maildir) -> None:
    from maild.storage import outbox as ob
    from maild.storage.models import Outbox, OutboxAttempt, to_storage

    from maild.sender import OutboxSender
    from maild.takeover import recover_outbox
    from maild.transports import MaildirTransport

    app = make_app()
    now = to_storage(app.clock.now())
    transport = MaildirTransport(app.settings.daemon.data_dir / "outbox")
    raw = b"To: cliente@example.com.br\r\nMessage-ID: <ack-1@example.com>\r\n\r\nOi\r\n"
    dead = f"{socket.gethostname()}:{_dead_pid()}"
    row = Outbox.create(
        idem_key="ack:1",
        template="confirmation",
        mail_from="suporte@example.com",
        recipients=["cliente@example.com.br"],
        message_id="ack-1@example.com",
        raw=raw,
        claimed_by=dead,
        claimed_until=now + ob.CLAIM_LEASE,
        next_attempt_at=now,
        created_at=now,
    )
    OutboxAttempt.create(outbox=row.id, at=now, result=ob.ATTEMPT_SENDING)
    alive = Outbox.create(
        idem_key="ack:2",
        template="confirmation",
        mail_from="suporte@example.com",
        recipients=["c2@example.com.br"],
        message_id="ack-2@example.com",
        raw=b"x",
        claimed_by=f"{socket.gethostname()}:{os.getppid()}",  # a live process
        claimed_until=now + ob.CLAIM_LEASE,
    )
    if reached_maildir:
        transport.deliver("suporte@example.com", ["cliente@example.com.br"], raw)

    assert recover_outbox(app, transport) == 1

    fresh = Outbox.get_by_id(row.id)
    assert Outbox.get_by_id(alive.id).claimed_by == alive.claimed_by  # a live owner keeps it
    assert not ob.in_doubt(fresh)
    if reached_maildir:
        assert fresh.status == "sent"
    else:
        assert (fresh.status, fresh.claimed_by) == ("pending", None)
        OutboxSender(app, transport, owner="test").run_once()
        assert Outbox.get_by_id(row.id).status == "sent"
    box = app.settings.daemon.data_dir / "outbox" / "new"
    copies = [p for p in box.iterdir() if b"<ack-1@example.com>" in p.read_bytes()]
    assert len(copies) == 1  # delivered exactly once either way


def test_sigterm_within_10_s_even_when_the_smtp_server_hangs(daemon) -> None:
    # A server that accepts connections and never says a word.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    accepted: list[socket.socket] = []

    def accept_forever() -> None:
        with contextlib.suppress(OSError):
            while True:
                accepted.append(silent.accept()[0])

    threading.Thread(target=accept_forever, daemon=True).start()
    try:
        d = daemon(
            extra={
                ("smtp", "host"): "127.0.0.1",
                ("smtp", "port"): silent.getsockname()[1],
                ("smtp", "security"): "none",
            }
        )
        d.start().wait_ready()
        d.deliver(customer_mail(1)[1])
        wait_for(lambda: accepted, 10, "the sender to connect to the silent server")

        started = time.monotonic()
        assert d.stop() == 0  # fails the test past STOP_SECONDS
        assert time.monotonic() - started < STOP_SECONDS
    finally:
        silent.close()
        for conn in accepted:
            conn.close()
