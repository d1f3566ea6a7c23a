"""Memory held while ``maild.intake.imap`` fetches large messages, on a real Dovecot.

Measured with ``tracemalloc`` (Python's own allocations, deterministic) inside a
real client's FETCH: what one body FETCH allocates above what was live when it
started, and whether the previous body is still live when the next FETCH starts.
"""

from __future__ import annotations

import base64
import os
import random
import threading
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from imapclient import IMAPClient

from maild.app import App
from maild.config import ImapSource
from maild.intake.imap import ImapRunner
from maild.intake.imap_client import FETCH_BODY, DefaultImapConnector
from tests.plugins.dovecot import ImapMailbox

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ATTACHMENT_BYTES = 2 * 1024 * 1024  # ~2.8 MB of base64 in each message
BUDGET = 1024 * 1024  # below one message: each body is fetched, and committed, alone


class MeasuringClient(IMAPClient):
    """A real client that records, for each body FETCH, the largest single block
    live when it starts and the peak the FETCH reaches above what was live."""

    body_fetches: list[tuple[int, int]]

    def fetch(self, messages: Any, data: Any, modifiers: Any = None) -> Any:
        if list(data) != FETCH_BODY:
            return super().fetch(messages, data, modifiers)
        largest = max((trace.size for trace in tracemalloc.take_snapshot().traces), default=0)
        live, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        response = super().fetch(messages, data, modifiers)
        _, peak = tracemalloc.get_traced_memory()
        self.__dict__.setdefault("body_fetches", []).append((largest, peak - live))
        return response


class MeasuringConnector:
    def __init__(self) -> None:
        self.inner = DefaultImapConnector(timeout=10.0)
        self.clients: list[MeasuringClient] = []

    def connect(self, source: ImapSource) -> IMAPClient:
        client = self.inner.connect(source)
        client.__class__ = MeasuringClient
        self.clients.append(client)  # type: ignore[arg-type]
        return client


def big_mail(n: int) -> bytes:
    payload = base64.encodebytes(os.urandom(ATTACHMENT_BYTES)).replace(b"\n", b"\r\n")
    head = (
        "From: Cliente <cliente@example.com.br>\r\nTo: suporte@example.com\r\n"
        f"Subject: Arquivo {n}\r\nMessage-ID: <imap-memory-{n}-{random.getrandbits(32)}@x>\r\n"
        "Date: Tue, 24 Nov 2026 10:00:00 -0300\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSegue o arquivo.\r\n--b\r\n"
        "Content-Type: application/pdf; name=a.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    )
    return head.encode() + payload + b"--b--\r\n"


def test_a_large_body_is_held_once_and_released_before_the_next(
    make_app: Callable[..., App],
    imap_mailbox: ImapMailbox,
    tmp_path: Path,
) -> None:
    sizes = []
    for n in range(2):
        raw = big_mail(n)
        sizes.append(len(raw))
        imap_mailbox.append(raw)
    del raw
    secret = tmp_path / "imap-password"
    secret.write_text(imap_mailbox.password)
    table = imap_mailbox.source_table(secret, folder="INBOX", processed_folder="Processados")
    app = make_app(
        imap=[table],
        attachments={"max_message_bytes": 20 * 1024 * 1024},
        storage={"batch_bytes": BUDGET},
    )
    connector = MeasuringConnector()
    runner = ImapRunner(
        app, app.settings.imap[0], connector, owner="a", stop_event=threading.Event()
    )
    tracemalloc.start()
    try:
        assert runner.run_once() == 2
    finally:
        tracemalloc.stop()
        runner.close()

    (client,) = connector.clients
    (_, first_peak), (largest_live, second_peak) = client.body_fetches
    # The literal itself, and not (as imaplib's trace at debug level 5 did) two
    # repr() strings of it on top: ~3.3 times the message.
    assert first_peak < 1.5 * sizes[0]
    assert second_peak < 1.5 * sizes[1]
    # The first body, committed, is no longer held when the second is fetched: no
    # live block of its size (smaller ones are other things: the holiday tables, loaded
    # on first use while the first message was decided, are ~1.9 MB).
    assert largest_live < 0.9 * sizes[0]
