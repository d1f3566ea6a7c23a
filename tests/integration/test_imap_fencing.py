"""A runner that lost its lease while it worked (stalled, its lease expired, another
instance took the source) can neither move the position nor decide the mail in its
hands: its transaction rolls back and the new holder processes that mail, once
(SPEC §10, the lease generation of maild.intake.leases). Real Dovecot, both databases.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import structlog
from imapclient import IMAPClient
from maild.storage.models import INBOUND_PROCESSED, ImapState, Inbound, Ticket

from maild.app import App
from maild.config import ImapSource
from maild.inbound_store import ImapPosition, store_inbound
from maild.intake.imap import ImapRunner
from maild.intake.imap_client import DefaultImapConnector
from maild.intake.leases import LEASE_SECONDS
from tests.plugins.dovecot import ImapMailbox
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

WAIT = 20.0


def mail(n: int) -> bytes:
    return (
        f"From: Cliente <cliente{n}@empresa.example.com.br>\r\n"
        "To: suporte@example.com\r\n"
        f"Subject: Pedido {n}: impressora parada\r\n"
        f"Message-ID: <fencing-{n}@cliente.example>\r\n"
        "\r\nA impressora parou.\r\n"
    ).encode()


class TakeoverOnFetch:
    """The default connector, whose clients run ``hook`` once, at the next body
    FETCH after ``armed``: between the lease renewal and the commit of a batch."""

    def __init__(self) -> None:
        self.inner = DefaultImapConnector(timeout=5.0)
        self.hook: Callable[[], None] | None = None

    def connect(self, source: ImapSource) -> IMAPClient:
        client = self.inner.connect(source)
        connector = self

        class Client(IMAPClient):
            def fetch(self, messages: Any, data: Any, modifiers: Any = None) -> Any:
                hook = connector.hook
                if hook is not None and "BODY.PEEK[]" in list(data):
                    connector.hook = None
                    hook()
                return super().fetch(messages, data, modifiers)

        client.__class__ = Client
        return client


def folder_size(mailbox: ImapMailbox, folder: str) -> int:
    imap = mailbox.client()
    if not imap.folder_exists(folder):
        return 0
    return int(imap.select_folder(folder, readonly=True)[b"EXISTS"])


def test_a_runner_whose_lease_was_taken_over_leaves_its_mail_to_the_new_holder(
    make_app: Callable[..., App], database_url: str, imap_mailbox: ImapMailbox, tmp_path: Path
) -> None:
    (tmp_path / "imap-password").write_text(imap_mailbox.password)
    app = make_app(
        database_url,
        imap=[
            imap_mailbox.source_table(
                tmp_path / "imap-password", processed_folder="Processados", poll_seconds=30
            )
        ],
    )
    source = app.settings.imap[0]
    stop = threading.Event()
    connector = TakeoverOnFetch()
    stalled = ImapRunner(app, source, connector, owner="host-a:1", stop_event=stop)
    holder = ImapRunner(
        app, source, DefaultImapConnector(timeout=5.0), owner="host-b:2", stop_event=stop
    )
    imap_mailbox.append(mail(1))
    assert stalled.run_once() == 1
    assert stalled.lease.generation == 1

    def take_over() -> None:
        # The stalled instance's lease ran out meanwhile; the other one takes it.
        app.clock.advance(seconds=LEASE_SECONDS + 1)  # type: ignore[attr-defined]
        assert holder.lease.renew()

    connector.hook = take_over
    imap_mailbox.append(mail(2))
    imap_mailbox.append(mail(3))
    with structlog.testing.capture_logs() as logs:
        thread = threading.Thread(target=stalled.run, daemon=True)
        thread.start()
        wait_for(
            lambda: any(e["event"] == "imap.lease_fenced" for e in logs), WAIT, "the fenced batch"
        )
        stop.set()
        thread.join(WAIT)
    assert not thread.is_alive()
    fenced = [e for e in logs if e["event"] == "imap.lease_fenced"]
    assert len(fenced) == 1 and fenced[0]["generation"] == 1
    assert not [e for e in logs if e["event"] in ("message.failed", "imap.error")]

    state = ImapState.get()
    assert (state.last_uid, state.lease_owner, state.lease_generation) == (1, "host-b:2", 2)
    assert Ticket.select().count() == 1  # the batch in hand rolled back whole
    assert Inbound.select().count() == 3  # stored, left 'received' for the holder
    assert folder_size(imap_mailbox, "INBOX") == 2  # not flagged or moved by the loser

    stop.clear()
    assert holder.run_once() == 2
    holder.close()
    assert ImapState.get().last_uid == 3
    assert Ticket.select().count() == 3
    rows = list(Inbound.select())
    assert all(r.state == INBOUND_PROCESSED and r.attempts == 1 for r in rows)  # decided once
    assert folder_size(imap_mailbox, "INBOX") == 0
    assert folder_size(imap_mailbox, "Processados") == 3


def test_mail_a_lost_holder_stored_below_the_position_is_decided_by_the_next(
    make_app: Callable[..., App], database_url: str, imap_mailbox: ImapMailbox, tmp_path: Path
) -> None:
    """The previous holder stored UIDs 1-2 and moved the position past them, then
    lost the lease before deciding them (a message set aside from its batch and
    fenced when retried alone): no later pass fetches them, so the next holder
    decides them when it takes the source."""
    (tmp_path / "imap-password").write_text(imap_mailbox.password)
    app = make_app(
        database_url,
        imap=[
            imap_mailbox.source_table(
                tmp_path / "imap-password", processed_folder="Processados", poll_seconds=30
            )
        ],
    )
    source = app.settings.imap[0]
    imap_mailbox.append(mail(1))
    imap_mailbox.append(mail(2))
    uidvalidity = int(imap_mailbox.client().select_folder("INBOX")[b"UIDVALIDITY"])
    for uid in (1, 2):
        store_inbound(app, mail(uid), "imap:suporte", ImapPosition("suporte", uidvalidity, uid))
    ImapState.create(source="suporte", uidvalidity=uidvalidity, last_uid=2)

    holder = ImapRunner(
        app,
        source,
        DefaultImapConnector(timeout=5.0),
        owner="host-b:2",
        stop_event=threading.Event(),
    )
    with structlog.testing.capture_logs() as logs:
        assert holder.run_once() == 0  # nothing new above the position
    assert [e["count"] for e in logs if e["event"] == "imap.left_over_processed"] == [2]
    assert Ticket.select().count() == 2
    assert all(r.state == INBOUND_PROCESSED and r.attempts == 1 for r in Inbound.select())
    assert folder_size(imap_mailbox, "INBOX") == 0  # flagged and moved like any other
    imap_mailbox.append(mail(3))
    assert holder.run_once() == 1
    holder.close()
    assert Ticket.select().count() == 3
