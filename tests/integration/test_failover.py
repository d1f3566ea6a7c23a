"""A dead instance's work is taken over within 10 s (SPEC §10): its IMAP source by a
standby ``maild run`` on the same PostgreSQL, its outbox claims by any live instance.

Instances are real ``maild run`` processes with their own data_dir, as on two hosts;
the "is it alive?" answer on PostgreSQL comes from a session advisory lock that the
server drops with the dead instance's connection (maild.liveness).
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from maild.storage import outbox as ob
from maild.storage.binding import bind_process
from maild.storage.db import open_database
from maild.storage.models import ImapState, Inbound, Outbox

from maild.app import App
from maild.liveness import Liveness
from maild.takeover import recover_imap_leases, recover_outbox
from maild.transports import MaildirTransport
from tests.plugins.dovecot import ImapMailbox
from tests.processes import start_maild_run
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

TAKEOVER_SECONDS = 10  # SPEC §10


@pytest.fixture
def pg_url(database_url: str) -> str:
    if not database_url.startswith("postgresql"):
        pytest.skip("instances on several hosts share PostgreSQL only")
    open_database(database_url, migrate=True).close()
    return database_url


class Instance:
    """One ``maild run`` with its own data_dir on the shared database."""

    def __init__(self, folder: Path, config: Path) -> None:
        self.folder = folder
        self.config = config
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Instance:
        self.proc = start_maild_run(self.config, self.folder / "daemon.log")
        return self

    def events(self, name: str) -> list[dict[str, Any]]:
        out = []
        for line in (self.folder / "daemon.log").read_text(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == name:
                out.append(event)
        return out

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGKILL) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(sig)
            self.proc.wait(15)


@pytest.fixture
def instances(
    tmp_path: Path, pg_url: str, imap_mailbox: ImapMailbox
) -> Iterator[Callable[[str], Instance]]:
    (tmp_path / "imap-password").write_text(imap_mailbox.password)
    made: list[Instance] = []

    def make(name: str) -> Instance:
        folder = tmp_path / name
        folder.mkdir()
        config = folder / "settings.toml"
        config.write_text(
            f"""
[daemon]
instance = "Acme Suporte"
data_dir = "{folder / "var"}"

[database]
url = "{pg_url}"

{imap_mailbox.source_toml(tmp_path / "imap-password", poll_seconds=60)}
[listener]
enabled = false

[web]
enabled = false

[[departments]]
key = "suporte"
name = "Suporte"
addresses = ["suporte@example.com"]
default = true
"""
        )
        instance = Instance(folder, config)
        made.append(instance)
        return instance

    yield make
    for instance in made:
        instance.stop()


def customer_mail(n: int) -> bytes:
    return (
        f"From: Cliente <cliente{n}@empresa.example.com.br>\r\n"
        "To: suporte@example.com\r\n"
        f"Subject: Pedido {n}: impressora parada\r\n"
        f"Message-ID: <failover-{n}@cliente.example>\r\n"
        "\r\nA impressora parou.\r\n"
    ).encode()


def test_a_killed_instance_s_imap_source_is_taken_over_within_10_s(
    instances: Callable[[str], Instance], imap_mailbox: ImapMailbox, pg_url: str
) -> None:
    first = instances("a").start()
    wait_for(lambda: first.events("imap.lease_acquired"), 30, "the first instance's lease")
    second = instances("b").start()
    wait_for(lambda: second.events("imap.lease_waiting"), 30, "the second instance on standby")
    imap_mailbox.append(customer_mail(1))
    db = open_database(pg_url)
    unbound = bind_process(db)  # the test reads what the instances wrote
    try:
        wait_for(lambda: Inbound.select().count() == 1, 30, "the first mail processed")

        first.stop(signal.SIGKILL)
        killed_at = time.monotonic()
        wait_for(
            lambda: second.events("imap.lease_acquired"),
            TAKEOVER_SECONDS + 5,
            "the standby instance to take the source",
        )
        taken_after = time.monotonic() - killed_at

        imap_mailbox.append(customer_mail(2))
        wait_for(lambda: Inbound.select().count() == 2, 30, "the second mail processed")
        assert ImapState.get().lease_owner.endswith(f":{second.proc.pid}")  # type: ignore[union-attr]
    finally:
        bind_process(unbound)
        db.close()
    assert taken_after <= TAKEOVER_SECONDS, taken_after


def test_liveness_follows_the_instance_s_connection(pg_url: str) -> None:
    db = open_database(pg_url)
    first = Liveness(db, "host-a:101")
    second = Liveness(db, "host-b:202")
    try:
        first.start()
        second.start()
        assert second.is_alive("host-a:101")
        assert first.is_alive("host-b:202")
        assert not second.is_alive("host-c:303")  # never started: nobody holds its lock
        with pytest.raises(RuntimeError, match="holds instance lock"):
            Liveness(db, "host-a:101").start()

        first.close()  # as the server does when the process or its host dies

        # The server drops the lock when the backend exits, a moment after the close.
        wait_for(lambda: not second.is_alive("host-a:101"), 5, "the lock to be dropped")
        assert second.check()
    finally:
        first.close()
        second.close()
        db.close()


def test_a_dead_instance_s_outbox_claims_and_leases_are_freed_by_a_live_one(
    make_app: Any, pg_url: str
) -> None:
    app: App = make_app(pg_url)
    dead = Liveness(app.db, "host-a:101")
    live = Liveness(app.db, "host-b:202")
    dead.start()
    live.start()
    try:
        with app.db.atomic():
            for n in range(3):
                ob.enqueue(
                    idem_key=f"failover-{n}",
                    now=app.clock.now(),
                    recipients=[f"cliente{n}@example.com.br"],
                    template="confirmation",
                    mail_from="suporte@example.com",
                    message_id=f"m{n}@example.com",
                    raw=b"Subject: x\r\n\r\nx\r\n",
                )
            ImapState.create(source="suporte", last_uid=0, lease_owner="host-a:101")
        claimed = ob.claim_due("host-a:101", app.clock.now(), limit=2)
        assert len(claimed) == 2
        transport = MaildirTransport(app.settings.daemon.data_dir / "outbox")

        # Alive: nothing is taken from it.
        assert recover_outbox(app, transport, live.is_alive) == 0
        assert recover_imap_leases(app, live.is_alive) == 0

        dead.close()
        wait_for(lambda: not live.is_alive("host-a:101"), 5, "the dead instance's lock to go")

        assert recover_outbox(app, transport, live.is_alive) == 2
        assert recover_imap_leases(app, live.is_alive) == 1
        assert Outbox.select().where(Outbox.claimed_by.is_null(False)).count() == 0
        later = app.clock.now() + timedelta(seconds=1)
        assert len(ob.claim_due("host-b:202", later, limit=10)) == 3
    finally:
        dead.close()
        live.close()
