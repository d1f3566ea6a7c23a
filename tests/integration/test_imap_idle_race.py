"""A mail that arrives just as a pass's SEARCH finds nothing is announced (EXISTS) in
that pass's answers, and IDLE never announces it again: the runner passes once more
instead of waiting for the next poll. Real Dovecot."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from imapclient import IMAPClient
from maild.storage.models import Inbound

from maild.app import App
from maild.config import ImapSource
from maild.intake.imap import ImapRunner
from maild.intake.imap_client import DefaultImapConnector
from tests.plugins.dovecot import ImapMailbox
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

MAIL = (
    b"From: Cliente <cliente@empresa.example.com.br>\r\n"
    b"To: suporte@example.com\r\n"
    b"Subject: Chegou durante a busca\r\n"
    b"Message-ID: <race-1@cliente.example>\r\n"
    b"\r\nOla.\r\n"
)


class ArrivesDuringSearch:
    """The default connector; the first SEARCH of its client finds nothing, and
    ``arrive`` runs right after, the server announcing it before the pass ends."""

    def __init__(self, arrive: Callable[[], None]) -> None:
        self.inner = DefaultImapConnector(timeout=5.0)
        self.arrive: Callable[[], None] | None = arrive

    def connect(self, source: ImapSource) -> IMAPClient:
        client = self.inner.connect(source)
        connector = self

        class Client(IMAPClient):
            def search(self, criteria: Any = "ALL", charset: Any = None) -> Any:
                found = super().search(criteria, charset)
                arrive, connector.arrive = connector.arrive, None
                if arrive is not None:
                    arrive()
                    self._imap.noop()  # its answer announces the new EXISTS, kept aside
                return found

        client.__class__ = Client
        return client


def test_mail_announced_during_an_empty_pass_is_fetched_without_waiting_for_the_poll(
    make_app: Callable[..., App], imap_mailbox: ImapMailbox, tmp_path: Path
) -> None:
    (tmp_path / "imap-password").write_text(imap_mailbox.password)
    app = make_app(imap=[imap_mailbox.source_table(tmp_path / "imap-password", poll_seconds=60)])
    stop = threading.Event()

    def arrive() -> None:
        imap_mailbox.append(MAIL)

    connector = ArrivesDuringSearch(arrive)
    runner = ImapRunner(app, app.settings.imap[0], connector, owner="host-a:1", stop_event=stop)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: Inbound.select().count() == 1, 15, "the mail announced mid-pass")
    finally:
        stop.set()
        thread.join(10)
    assert connector.arrive is None
