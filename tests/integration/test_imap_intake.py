"""Integration tests whose sole purpose is to prove ``maild.intake.imap`` against a real Dovecot.

Each test gets a fresh Dovecot user (``imap_mailbox``) and an App on SQLite in
``tmp_path``. Runner threads are waited on through events set by ``on_ingested`` or
by a counting connector, never by sleeping.
"""

from __future__ import annotations

import imaplib
import inspect
import random
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from itertools import count
from pathlib import Path
from typing import Any

import pytest
import structlog
from imapclient import SEEN, IMAPClient
from maild.storage.models import ImapState, Inbound, Ticket

from maild.app import App
from maild.config import ImapSource
from maild.intake.imap import ImapRunner
from maild.intake.imap_client import DefaultImapConnector
from maild.pipeline import ingest
from maild.records import IngestResult
from tests.plugins.dovecot import DovecotServer, ImapMailbox

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

WAIT = 10.0  # generous upper bound for anything event-driven; normally well under 1 s
_ids = count(1)


def mail(subject: str, sender: str = "customer@example.com", body: str = "Olá.") -> bytes:
    """A small customer message with a unique Message-ID."""
    n = next(_ids)
    lines = []
    if sender:
        lines.append(f"From: Cliente <{sender}>")
    lines += [
        "To: suporte@example.com",
        f"Subject: {subject}",
        "Date: Tue, 24 Nov 2026 10:00:00 -0300",
        f"Message-ID: <imap-test-{n}-{random.getrandbits(32)}@example.com>",
        "Content-Type: text/plain; charset=utf-8",
        "",
        body,
        "",
    ]
    return "\r\n".join(lines).encode()


class CountingConnector:
    """The default connector, counting attempts and signalling after ``signal_after``."""

    def __init__(self, signal_after: int = 1, wrap: type[IMAPClient] | None = None) -> None:
        self.inner = DefaultImapConnector(timeout=5.0)
        self.attempts = 0
        self.signal_after = signal_after
        self.reached = threading.Event()
        self.wrap = wrap

    def connect(self, source: ImapSource) -> IMAPClient:
        self.attempts += 1
        if self.attempts >= self.signal_after:
            self.reached.set()
        client = self.inner.connect(source)
        if self.wrap is not None:
            client.__class__ = self.wrap
        return client


class NoMoveClient(IMAPClient):
    """A real client that pretends the server lacks MOVE (as many older servers do)."""

    def has_capability(self, capability: str) -> bool:
        return capability.upper() != "MOVE" and super().has_capability(capability)


class MoveFailsOnceClient(IMAPClient):
    """A real client whose first MOVE dies, as when the connection drops after the commit."""

    failed = False

    def move(self, messages: Any, folder: str) -> Any:
        if not MoveFailsOnceClient.failed:
            MoveFailsOnceClient.failed = True
            raise imaplib.IMAP4.abort("connection lost (simulated)")
        return super().move(messages, folder)


class FetchRecordingClient(IMAPClient):
    """A real client that remembers which items each UID FETCH asked for."""

    requests: list[tuple[list[int], list[str]]]

    def fetch(self, messages: Any, data: Any, modifiers: Any = None) -> Any:
        self.__dict__.setdefault("requests", []).append((list(messages), list(data)))
        return super().fetch(messages, data, modifiers)


class Harness:
    """An App pointed at the test mailbox, plus the runners and threads made for it."""

    def __init__(self, make_app: Callable[..., App], mailbox: ImapMailbox, tmp_path: Path) -> None:
        self.make_app = make_app
        self.mailbox = mailbox
        self.tmp_path = tmp_path
        self.app: App | None = None
        self.stop = threading.Event()
        self.runners: list[ImapRunner] = []
        self.threads: list[threading.Thread] = []

    def configure(self, password: str | None = None, **imap: Any) -> tuple[App, ImapSource]:
        extra = imap.pop("_tables", {})
        secret = self.tmp_path / "imap-password"
        secret.write_text(password if password is not None else self.mailbox.password)
        table = (
            self.mailbox.source_table(
                secret, folder="INBOX", processed_folder="Processados", poll_seconds=30
            )
            | imap
        )
        table = {key: value for key, value in table.items() if value is not None}  # None: unset
        self.app = self.make_app(imap=[table], **extra)
        return self.app, self.app.settings.imap[0]

    def runner(self, owner: str = "instance-a", **kwargs: Any) -> ImapRunner:
        assert self.app is not None
        kwargs.setdefault("stop_event", self.stop)
        kwargs.setdefault("rng", random.Random(7))
        runner = ImapRunner(self.app, self.app.settings.imap[0], owner=owner, **kwargs)
        self.runners.append(runner)
        return runner

    def start(self, runner: ImapRunner) -> threading.Thread:
        thread = threading.Thread(target=runner.run, name=f"imap-{runner.owner}", daemon=True)
        thread.start()
        self.threads.append(thread)
        return thread

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(5)
        for runner in self.runners:
            runner.close()


@pytest.fixture
def harness(
    make_app: Callable[..., App], imap_mailbox: ImapMailbox, tmp_path: Path
) -> Iterator[Harness]:
    h = Harness(make_app, imap_mailbox, tmp_path)
    try:
        yield h
    finally:
        h.close()


class Collector:
    """``on_ingested`` hook: keeps results and wakes waiters when ``n`` have arrived."""

    def __init__(self) -> None:
        self.results: list[IngestResult] = []
        self._cond = threading.Condition()

    def __call__(self, result: IngestResult) -> None:
        with self._cond:
            self.results.append(result)
            self._cond.notify_all()

    def wait_for(self, n: int, timeout: float = WAIT) -> list[IngestResult]:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.results) >= n, timeout), (
                f"only {len(self.results)} of {n} messages ingested within {timeout}s"
            )
            return list(self.results)


def folder_flags(mailbox: ImapMailbox, folder: str) -> dict[int, tuple[bytes, ...]]:
    imap = mailbox.client()
    try:
        if not imap.folder_exists(folder):
            return {}
        imap.select_folder(folder, readonly=True)
        uids = imap.search(["ALL"])
        return {uid: data[b"FLAGS"] for uid, data in imap.fetch(uids, ["FLAGS"]).items()}
    finally:
        imap.logout()


def drop_connections(dovecot: DovecotServer, user: str) -> None:
    """Make Dovecot say BYE to ``user``'s sessions.

    Dovecot's imap processes outlive a master restart and keep serving their
    connections, so a restart alone would not cut the runner off.
    """
    doveadm = shutil.which("doveadm")
    if doveadm is None:
        pytest.skip("doveadm not installed")
    subprocess.run(
        [doveadm, "-c", str(dovecot.config_path), "kick", user],
        check=True,
        capture_output=True,
        timeout=10,
    )


def events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]


# -- one pass ---------------------------------------------------------------------------


def test_new_mail_becomes_tickets_then_a_reply_threads(harness: Harness) -> None:
    harness.configure()
    harness.mailbox.append(mail("Impressora parada"))
    harness.mailbox.append(mail("Senha expirada", sender="outro@example.com"))
    runner = harness.runner()

    assert runner.run_once() == 2

    assert Ticket.select().count() == 2
    assert sorted(i.outcome for i in Inbound.select()) == ["created", "created"]
    assert folder_flags(harness.mailbox, "INBOX") == {}
    moved = folder_flags(harness.mailbox, "Processados")
    assert len(moved) == 2
    assert all(SEEN in flags for flags in moved.values())
    state = ImapState.get(ImapState.source == "suporte")
    assert state.last_uid == 2
    assert state.lease_owner == "instance-a"

    number = Inbound.get(Inbound.subject == "Impressora parada").ticket.number
    harness.mailbox.append(mail(f"Re: Impressora parada [#{number}]", body="Voltou a parar."))
    with structlog.testing.capture_logs() as logs:
        assert runner.run_once() == 1
    reply = Inbound.select().order_by(Inbound.id.desc()).get()
    assert (reply.outcome, reply.ticket.number) == ("appended", number)
    assert Ticket.select().count() == 2
    assert events(logs, "imap.fetched")[0]["count"] == 1

    assert runner.run_once() == 0  # idempotent: nothing new, nothing re-ingested
    assert Inbound.select().count() == 3
    assert len(folder_flags(harness.mailbox, "Processados")) == 3


def test_without_processed_folder_mail_stays_but_is_seen(harness: Harness) -> None:
    harness.configure(processed_folder=None)
    harness.mailbox.append(mail("Sem pasta de destino"))
    runner = harness.runner()

    assert runner.run_once() == 1
    assert runner.run_once() == 0
    flags = folder_flags(harness.mailbox, "INBOX")
    assert len(flags) == 1
    assert all(SEEN in f for f in flags.values())
    assert Inbound.select().count() == 1


def test_quarantined_mail_goes_to_failed_folder(harness: Harness) -> None:
    harness.configure(failed_folder="Falhas")
    harness.mailbox.append(mail("Relatorio sem remetente", sender=""))
    harness.mailbox.append(mail("Pedido normal"))

    assert harness.runner().run_once() == 2

    outcomes = {i.subject: i.outcome for i in Inbound.select()}
    assert outcomes == {"Relatorio sem remetente": "quarantined", "Pedido normal": "created"}
    assert len(folder_flags(harness.mailbox, "Falhas")) == 1
    assert len(folder_flags(harness.mailbox, "Processados")) == 1
    assert folder_flags(harness.mailbox, "INBOX") == {}


def test_without_move_capability_copies_and_expunges(harness: Harness) -> None:
    harness.configure()
    harness.mailbox.append(mail("Servidor antigo"))
    runner = harness.runner(connector=CountingConnector(wrap=NoMoveClient))

    assert runner.run_once() == 1

    assert folder_flags(harness.mailbox, "INBOX") == {}
    assert len(folder_flags(harness.mailbox, "Processados")) == 1


def test_committed_but_unmoved_mail_is_moved_on_reconnect(harness: Harness) -> None:
    harness.configure()
    harness.mailbox.append(mail("Movida depois"))
    runner = harness.runner(connector=CountingConnector(wrap=MoveFailsOnceClient))

    with pytest.raises(imaplib.IMAP4.abort):
        runner.run_once()  # committed, flagged, but the MOVE was cut off
    assert Inbound.get().outcome == "created"
    assert len(folder_flags(harness.mailbox, "INBOX")) == 1
    runner.close()

    with structlog.testing.capture_logs() as logs:
        assert runner.run_once() == 0  # nothing new to ingest ...
    assert [e["count"] for e in events(logs, "imap.swept")] == [1]  # ... but finished
    assert folder_flags(harness.mailbox, "INBOX") == {}
    assert len(folder_flags(harness.mailbox, "Processados")) == 1
    assert Inbound.select().count() == 1


@pytest.mark.skipif(
    "declared_size" not in inspect.signature(ingest).parameters,
    reason="pipeline.ingest has no declared_size parameter yet",
)
def test_oversize_message_is_not_downloaded_whole(harness: Harness) -> None:
    harness.configure(_tables={"attachments": {"max_message_bytes": 4000}})
    big = harness.mailbox.append(mail("Anexo enorme", body="x" * 20000))
    small = harness.mailbox.append(mail("Pequena"))
    connector = CountingConnector(wrap=FetchRecordingClient)
    runner = harness.runner(connector=connector)

    assert runner.run_once() == 2

    outcomes = {i.subject: i.outcome for i in Inbound.select()}
    assert outcomes == {"Anexo enorme": "too_large", "Pequena": "created"}
    client = runner._client
    assert isinstance(client, FetchRecordingClient)
    whole = [uids for uids, items in client.requests if "BODY.PEEK[]" in items]
    assert all(big not in uids for uids in whole)
    assert any(small in uids for uids in whole)


def test_uidvalidity_change_refetches_without_duplicates(harness: Harness) -> None:
    harness.configure(folder="Suporte", processed_folder=None)
    first = [mail("Primeiro"), mail("Segundo", sender="outro@example.com")]
    for raw in first:
        harness.mailbox.append(raw, folder="Suporte")
    runner = harness.runner()
    assert runner.run_once() == 2
    old = ImapState.get(ImapState.source == "suporte").uidvalidity

    # The folder is recreated (a restored backup, a migrated server): new UIDVALIDITY,
    # the same two messages plus one new one.
    runner.close()
    admin = harness.mailbox.client()
    admin.delete_folder("Suporte")
    admin.logout()
    for raw in [*first, mail("Terceiro", sender="mais@example.com")]:
        harness.mailbox.append(raw, folder="Suporte")

    with structlog.testing.capture_logs() as logs:
        assert runner.run_once() == 3

    state = ImapState.get(ImapState.source == "suporte")
    assert state.uidvalidity != old
    assert state.last_uid == 3
    changed = events(logs, "imap.uidvalidity_changed")
    assert [(e["old"], e["new"]) for e in changed] == [(old, state.uidvalidity)]
    latest = Inbound.select().where(Inbound.imap_uidvalidity == state.uidvalidity)
    assert sorted(i.outcome for i in latest) == [
        "created",
        "duplicate_message",
        "duplicate_message",
    ]
    assert Ticket.select().count() == 3


# -- the loop ---------------------------------------------------------------------------


def test_idle_picks_up_new_mail_and_stops_promptly(harness: Harness) -> None:
    harness.configure(poll_seconds=300)  # only IDLE can explain a pickup within seconds
    collector = Collector()
    runner = harness.runner(on_ingested=collector)
    with structlog.testing.capture_logs() as logs:
        thread = harness.start(runner)
        harness.mailbox.append(mail("Antes do IDLE"))
        collector.wait_for(1)
        assert harness.app.metrics.sources()["suporte"].state == "connected"
        started = time.monotonic()
        harness.mailbox.append(mail("Durante o IDLE", sender="outro@example.com"))
        results = collector.wait_for(2, timeout=5.0)
        latency = time.monotonic() - started

        harness.stop.set()
        thread.join(3.0)
    assert not thread.is_alive(), "run() did not stop within 3 s"
    assert latency < 3.0
    assert [r.outcome for r in results] == ["created", "created"]
    assert events(logs, "imap.connected")[0]["idle"] is True
    assert not events(logs, "imap.error")
    assert ImapState.get(ImapState.source == "suporte").lease_owner is None  # released
    assert harness.app.metrics.sources()["suporte"].state == "stopped"


def test_server_restart_mid_run_is_survived(harness: Harness, dovecot: DovecotServer) -> None:
    harness.configure(poll_seconds=300)
    collector = Collector()
    runner = harness.runner(on_ingested=collector, backoff_base=0.2)
    with structlog.testing.capture_logs() as logs:
        harness.start(runner)
        harness.mailbox.append(mail("Antes do restart"))
        collector.wait_for(1)

        drop_connections(dovecot, harness.mailbox.username)  # as a stopping server does
        dovecot.restart()
        harness.mailbox.append(mail("Depois do restart", sender="outro@example.com"))
        results = collector.wait_for(2, timeout=20.0)

    assert [r.outcome for r in results] == ["created", "created"]
    assert len(events(logs, "imap.error")) == 1  # logged once for the outage
    assert len(events(logs, "imap.connected")) >= 2
    assert Ticket.select().count() == 2


def test_wrong_password_backs_off_quietly_and_stops(harness: Harness) -> None:
    harness.configure(password="not-the-password")
    # Two attempts are enough: Dovecot delays repeated failures from one IP (auth penalty).
    connector = CountingConnector(signal_after=2)
    runner = harness.runner(connector=connector, backoff_base=0.05)
    with structlog.testing.capture_logs() as logs:
        thread = harness.start(runner)
        assert connector.reached.wait(WAIT), "no retry after the failed login"
        state = harness.app.metrics.sources()["suporte"]
        harness.stop.set()
        thread.join(7.0)  # at worst the login in flight runs into the connector's timeout

    assert not thread.is_alive(), "run() did not stop"
    errors = events(logs, "imap.error")
    assert len(errors) == 1, "a repeated failure is logged once per outage"
    assert errors[0]["kind"] == "connection"
    assert errors[0]["error_type"] == "LoginError"
    assert (state.state, state.detail.split(":")[0]) == ("failing", "connection")
    assert "not-the-password" not in repr(logs)
    assert Inbound.select().count() == 0


def test_lease_lets_one_instance_work_a_source(harness: Harness) -> None:
    app, _ = harness.configure()
    first = harness.runner(owner="instance-a")
    second = harness.runner(owner="instance-b")
    harness.mailbox.append(mail("Quem pega?"))

    assert first.run_once() == 1
    harness.mailbox.append(mail("E agora?", sender="outro@example.com"))
    assert second.run_once() == 0
    assert not second.holds_lease
    assert Inbound.select().count() == 1

    first.close()  # releases the lease
    assert second.run_once() == 1
    assert second.holds_lease
    assert first.run_once() == 0

    # A lease that is not renewed expires (an instance that died without releasing).
    app.clock.advance(seconds=91)  # type: ignore[attr-defined]
    harness.mailbox.append(mail("Depois da expiração", sender="mais@example.com"))
    assert first.run_once() == 1
    assert ImapState.get(ImapState.source == "suporte").lease_owner == "instance-a"
    assert Inbound.select().count() == 3
