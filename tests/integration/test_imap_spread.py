"""IMAP sources spread across the live ``maild run`` instances on one PostgreSQL
(SPEC §10): each takes its fair share within seconds of the other starting, and a
killed instance's sources go to the survivor within 10 s. Real processes, real
Dovecot (four sources: four folders of one account)."""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from maild.storage.binding import bound
from maild.storage.db import open_database
from maild.storage.models import ImapState, Inbound

from tests.integration.test_failover import Instance
from tests.plugins.dovecot import ImapMailbox
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

FOLDERS = ["Fila1", "Fila2", "Fila3", "Fila4"]
TAKEOVER_SECONDS = 10  # SPEC §10
SHARE_SECONDS = 10  # a started instance has its share this soon after it is up


@pytest.fixture
def pg_url(database_url: str) -> str:
    if not database_url.startswith("postgresql"):
        pytest.skip("instances on several hosts share PostgreSQL only")
    open_database(database_url, migrate=True).close()
    return database_url


def sources(mailbox: ImapMailbox, password_file: Path) -> str:
    return "".join(
        # IDLE tells at once; a pass at least every 10 s all the same.
        "\n"
        + mailbox.source_toml(password_file, poll_seconds=10, name=folder.lower(), folder=folder)
        for folder in FOLDERS
    )


@pytest.fixture
def instances(
    tmp_path: Path, pg_url: str, imap_mailbox: ImapMailbox
) -> Iterator[Callable[[str], Instance]]:
    password = tmp_path / "imap-password"
    password.write_text(imap_mailbox.password)
    imap = imap_mailbox.client()
    for folder in FOLDERS:
        imap.create_folder(folder)
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
{sources(imap_mailbox, password)}
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
        return instance.start()

    yield make
    for instance in made:
        instance.stop()


def created() -> int:
    return Inbound.select().where(Inbound.outcome == "created").count()


def held_by(instance: Instance) -> int:
    assert instance.proc is not None
    owner = f"{socket.gethostname()}:{instance.proc.pid}"
    return ImapState.select().where(ImapState.lease_owner == owner).count()


def customer_mail(n: int) -> bytes:
    return (
        f"From: Cliente <cliente{n}@empresa.example.com.br>\r\n"
        "To: suporte@example.com\r\n"
        f"Subject: Pedido {n}: impressora parada\r\n"
        f"Message-ID: <spread-{n}@cliente.example>\r\n"
        "\r\nA impressora parou.\r\n"
    ).encode()


def test_sources_spread_across_two_instances_and_go_to_the_survivor(
    instances: Callable[[str], Instance], imap_mailbox: ImapMailbox, pg_url: str
) -> None:
    db = open_database(pg_url)
    try:
        with bound(db):
            first = instances("a")
            wait_for(lambda: held_by(first) == 4, 30, "the first instance to hold every source")

            second = instances("b")
            wait_for(lambda: second.events("imap.lease_waiting"), 30, "the second instance up")
            up_at = time.monotonic()
            wait_for(
                lambda: held_by(second) == 2 and held_by(first) == 2,
                SHARE_SECONDS + 10,
                "two sources each",
            )
            spread_after = time.monotonic() - up_at
            assert len(first.events("imap.lease_handed_over")) == 2

            for n, folder in enumerate(FOLDERS, 1):
                imap_mailbox.append(customer_mail(n), folder)
            wait_for(lambda: created() == 4, 30, "a mail of each source processed")

            first.stop(signal.SIGKILL)
            killed_at = time.monotonic()
            wait_for(
                lambda: held_by(second) == 4, TAKEOVER_SECONDS + 10, "the survivor to hold all"
            )
            taken_after = time.monotonic() - killed_at

            for n, folder in enumerate(FOLDERS, 5):
                imap_mailbox.append(customer_mail(n), folder)
            wait_for(lambda: created() == 8, 30, "the survivor to work every source")
            assert Inbound.select().count() == 8  # nothing twice
    finally:
        db.close()
    assert spread_after <= SHARE_SECONDS, spread_after
    assert taken_after <= TAKEOVER_SECONDS, taken_after
