"""The embedded LMTP/SMTP listener on a real socket, driven by ``smtplib``.

The listener runs on an asyncio loop in a background thread with a real App
(SQLite in tmp_path). Checked: only department recipients are accepted, DATA is
answered once per LMTP recipient and only after the raw bytes and the
``Inbound`` row are stored, and a storage failure answers 451 with nothing kept.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import shutil
import smtplib
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from maild.storage.models import Inbound, RawMessage, Ticket

from maild.app import App
from maild.intake.lmtp import start_listener

pytestmark = pytest.mark.integration

CUSTOMER = "cliente@example.com.br"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def message(message_id: str, to: str = "suporte@example.com") -> bytes:
    return (
        f"From: Cliente <{CUSTOMER}>\r\n"
        f"To: {to}\r\n"
        "Subject: Impressora não imprime\r\n"
        f"Message-ID: <{message_id}>\r\n"
        "Date: Tue, 24 Nov 2026 10:00:00 -0300\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        "A impressora do segundo andar parou.\r\n"
    ).encode()


class Listener:
    """An asyncio loop in a thread serving ``start_listener(app)``."""

    def __init__(self, app: App, on_ingested: Callable[[Any], None] | None = None) -> None:
        self.app = app
        self.port = app.settings.listener.port
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.AbstractServer | None = None
        self.ingested: list = []
        self.on_ingested = on_ingested or self.ingested.append

    def start(self) -> Listener:
        self.thread.start()
        future = asyncio.run_coroutine_threadsafe(
            start_listener(self.app, self.on_ingested), self.loop
        )
        self.server, _handler = future.result(timeout=10)
        return self

    def stop(self) -> None:
        async def close() -> None:
            assert self.server is not None
            self.server.close()
            await self.server.wait_closed()

        if self.server is not None:
            asyncio.run_coroutine_threadsafe(close(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def serve(make_app) -> Iterator:
    started: list[Listener] = []

    def start(
        protocol: str = "lmtp",
        on_ingested: Callable[[Any], None] | None = None,
        **tables: Any,
    ) -> Listener:
        app = make_app(
            listener={"enabled": True, "protocol": protocol, "port": free_port()}, **tables
        )
        listener = Listener(app, on_ingested).start()
        started.append(listener)
        return listener

    yield start
    for listener in started:
        listener.stop()


def lmtp_client(listener: Listener) -> smtplib.LMTP:
    client = smtplib.LMTP("127.0.0.1", listener.port, timeout=10)
    code, _ = client.ehlo_or_helo_if_needed() or (250, b"")
    assert code == 250
    return client


def send_data(client: smtplib.SMTP, raw: bytes, replies: int) -> list[tuple[int, bytes]]:
    """DATA by hand, reading ``replies`` replies (LMTP answers once per recipient)."""
    code, _ = client.docmd("DATA")
    assert code == 354
    data = re.sub(rb"(?m)^\.", b"..", raw)  # dot-stuffing
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    client.send(data + b".\r\n")
    return [client.getreply() for _ in range(replies)]


def raw_files(app: App) -> list[Path]:
    root = app.settings.daemon.data_dir / "raw"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []


# ---------------------------------------------------------------------------


def test_rcpt_only_for_department_addresses(serve) -> None:
    listener = serve()
    with lmtp_client(listener) as client:
        assert client.mail(CUSTOMER)[0] == 250
        code, text = client.rcpt("nobody@example.com")
        assert code == 550, text
        assert client.rcpt("someone@elsewhere.example")[0] == 550
        assert client.rcpt("suporte@example.com")[0] == 250
        assert client.rcpt("Vendas@Example.com")[0] == 250  # any case, any of its addresses
        assert client.rcpt("suporte+592110@example.com")[0] == 250  # plus-address of a ticket
        assert client.rcpt("nobody+592110@example.com")[0] == 550
        client.rset()


def test_data_one_reply_per_recipient_and_stored_before_250(serve) -> None:
    listener = serve()
    app = listener.app
    raw = message("two-rcpt@cliente.example", to="suporte@example.com, comercial@example.com")
    with lmtp_client(listener) as client:
        client.mail(CUSTOMER)
        assert client.rcpt("suporte@example.com")[0] == 250
        assert client.rcpt("nobody@example.com")[0] == 550  # not counted
        assert client.rcpt("comercial@example.com")[0] == 250
        replies = send_data(client, raw, replies=2)
        assert [code for code, _ in replies] == [250, 250], replies
        # By the time the MTA has its 250s the message is stored and processed.
        app.db.connect(reuse_if_open=True)
        [inbound] = Inbound.select()
        assert (inbound.source, inbound.outcome) == ("lmtp", "created")
        assert Ticket.select().count() == 1
        # The connection is ready for the next transaction.
        assert client.noop()[0] == 250

    content = app.raw_store.get(inbound.raw.sha256)
    assert hashlib.sha256(content).hexdigest() == inbound.raw.sha256
    assert content.startswith(b"Delivered-To: suporte@example.com\r\n")
    assert content.endswith(raw)
    assert [r.outcome for r in listener.ingested] == ["created"]
    ticket = Ticket.get()
    assert (ticket.department, ticket.requester) == ("suporte", CUSTOMER)


def test_data_with_one_recipient_via_smtplib(serve) -> None:
    listener = serve()
    with lmtp_client(listener) as client:
        refused = client.sendmail(CUSTOMER, ["financeiro@example.com"], message("one@c.example"))
        assert refused == {}
    listener.app.db.connect(reuse_if_open=True)
    assert Ticket.get().department == "financeiro"


def test_overlong_lines_are_accepted_not_bounced(serve) -> None:
    # RFC 5321 says 1,000 octets, but a 500 would bounce a customer's mail.
    listener = serve()
    long_line = b"x" * 5000 + b"\r\n"
    raw = message("long@c.example").replace(b"parou.\r\n", b"parou.\r\n" + long_line)
    with lmtp_client(listener) as client:
        assert client.sendmail(CUSTOMER, ["suporte@example.com"], raw) == {}
    listener.app.db.connect(reuse_if_open=True)
    assert Ticket.select().count() == 1


def test_oversized_message_gets_one_reply_per_recipient_and_too_large(serve) -> None:
    # No size cap in the listener itself: a 552 from aiosmtpd would be a single
    # reply (breaking LMTP) and a bounce; the pipeline answers too_large instead.
    listener = serve(attachments={"max_message_bytes": 2000})
    raw = message("big@c.example") + b"x" * 10_000 + b"\r\n"
    with lmtp_client(listener) as client:
        client.mail(CUSTOMER)
        client.rcpt("suporte@example.com")
        client.rcpt("financeiro@example.com")
        replies = send_data(client, raw, 2)
    assert [code for code, _ in replies] == [250, 250]
    assert [r.outcome for r in listener.ingested] == ["too_large"]


def test_storage_failure_answers_451_and_keeps_nothing(serve) -> None:
    listener = serve(storage={"blobs": "files"})
    app = listener.app
    raw_dir = app.settings.daemon.data_dir / "raw"
    shutil.rmtree(raw_dir, ignore_errors=True)
    raw_dir.write_text("a regular file where the raw store should be", encoding="utf-8")
    raw = message("fails-first@cliente.example")

    with lmtp_client(listener) as client:
        client.mail(CUSTOMER)
        client.rcpt("suporte@example.com")
        client.rcpt("vendas@example.com")
        replies = send_data(client, raw, replies=2)
    assert [code for code, _ in replies] == [451, 451], replies
    app.db.connect(reuse_if_open=True)
    assert (Inbound.select().count(), RawMessage.select().count(), Ticket.select().count()) == (
        0,
        0,
        0,
    )
    assert listener.ingested == []

    # The MTA retries once storage is back: stored exactly once.
    raw_dir.unlink()
    with lmtp_client(listener) as client:
        client.mail(CUSTOMER)
        client.rcpt("suporte@example.com")
        assert [c for c, _ in send_data(client, raw, replies=1)] == [250]
    assert (Inbound.select().count(), Ticket.select().count()) == (1, 1)


def test_unexpected_error_is_temporary_not_a_bounce(serve, monkeypatch) -> None:
    """A bug below the listener must make the MTA retry (4xx), never bounce (5xx)."""
    import maild.intake.lmtp as lmtp

    def broken(*args, **kwargs):
        raise RuntimeError("unexpected")

    monkeypatch.setattr(lmtp, "ingest_batch", broken)
    listener = serve()
    with lmtp_client(listener) as client:
        client.mail(CUSTOMER)
        client.rcpt("suporte@example.com")
        client.rcpt("financeiro@example.com")
        replies = send_data(client, message("bug@cliente.example"), replies=2)
        assert [code for code, _ in replies] == [451, 451], replies
        assert client.noop()[0] == 250


def test_failing_callback_does_not_change_the_reply(serve) -> None:
    def broken(result) -> None:
        raise RuntimeError("counter bug")

    listener = serve(on_ingested=broken)
    with lmtp_client(listener) as client:
        refused = client.sendmail(CUSTOMER, ["suporte@example.com"], message("cb@c.example"))
    assert refused == {}  # stored, so 250 although the callback failed
    listener.app.db.connect(reuse_if_open=True)
    assert Inbound.select().count() == 1


def test_empty_message_is_refused(serve) -> None:
    listener = serve()
    with lmtp_client(listener) as client:
        client.mail(CUSTOMER)
        client.rcpt("suporte@example.com")
        [(code, _)] = send_data(client, b"\r\n", replies=1)
    assert code == 554
    listener.app.db.connect(reuse_if_open=True)
    assert Inbound.select().count() == 0


def test_smtp_protocol(serve) -> None:
    listener = serve(protocol="smtp")
    with smtplib.SMTP("127.0.0.1", listener.port, timeout=10) as client:
        client.ehlo()
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            client.sendmail(CUSTOMER, ["nobody@example.com"], message("x@c.example"))
        refused = client.sendmail(
            CUSTOMER,
            ["suporte@example.com", "nobody@example.com"],
            message("smtp@cliente.example"),
        )
        assert list(refused) == ["nobody@example.com"]
        assert refused["nobody@example.com"][0] == 550
    listener.app.db.connect(reuse_if_open=True)
    [inbound] = Inbound.select()
    assert (inbound.source, inbound.outcome) == ("smtp", "created")


def test_concurrent_deliveries_commit_in_batches_each_with_its_reply(serve) -> None:
    """Deliveries arriving while a batch is stored join the next one (SPEC §2.3);
    each still gets its own 250 after the commit that covers it."""
    listener = serve()
    errors: list[BaseException] = []

    def deliver(n: int) -> None:
        try:
            with lmtp_client(listener) as client:
                refused = client.sendmail(
                    CUSTOMER, ["suporte@example.com"], message(f"batch-{n}@cliente.example")
                )
                assert refused == {}
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=deliver, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert errors == []
    rows = list(Inbound.select(Inbound.message_id, Inbound.state))
    assert sorted(r.message_id for r in rows) == sorted(
        f"batch-{n}@cliente.example" for n in range(12)
    )
    assert {r.state for r in rows} == {"processed"}


def test_a_message_past_the_size_limit_is_not_held_whole(serve) -> None:
    """Beyond attachments.max_message_bytes only the header block is kept while DATA
    is read; the size recorded is the whole message's, dot-stuffed lines undone."""
    listener = serve(attachments={"max_message_bytes": 4096})
    body = b"".join(b".linha %d que comeca com ponto\r\n" % n for n in range(2000))
    raw = message("huge@c.example") + body
    with lmtp_client(listener) as client:
        client.mail(CUSTOMER)
        client.rcpt("suporte@example.com")
        assert [code for code, _ in send_data(client, raw, 1)] == [250]

    (result,) = listener.ingested
    assert result.outcome == "too_large"
    listener.app.db.connect(reuse_if_open=True)
    stored = RawMessage.get()
    kept = listener.app.raw_store.get(stored.sha256)
    assert stored.headers_only
    assert kept.endswith(b"\r\n\r\n") and b"linha" not in kept  # headers only
    delivered_to = len(b"Delivered-To: suporte@example.com\r\n")
    assert stored.size == delivered_to + len(raw if raw.endswith(b"\r\n") else raw + b"\r\n")


def test_dot_stuffed_lines_arrive_unstuffed(serve) -> None:
    listener = serve()
    raw = message("dots@c.example").replace(b"parou.\r\n", b"parou.\r\n.\r\n..dois\r\n.um\r\n")
    with lmtp_client(listener) as client:
        assert client.sendmail(CUSTOMER, ["suporte@example.com"], raw) == {}
    listener.app.db.connect(reuse_if_open=True)
    stored = listener.app.raw_store.get(RawMessage.get().sha256)
    assert stored.endswith(b"parou.\r\n.\r\n..dois\r\n.um\r\n")


def test_batch_limits_and_the_wait_for_stragglers_come_from_the_settings(serve) -> None:
    """[storage] batch_wait_ms gathers a burst's deliveries; batch_messages caps a batch."""
    listener = serve(storage={"batch_messages": 2, "batch_wait_ms": 2000})
    start = threading.Barrier(4)

    def deliver(n: int) -> None:
        with lmtp_client(listener) as client:
            start.wait(10)
            client.sendmail(CUSTOMER, ["suporte@example.com"], message(f"wait-{n}@c.example"))

    threads = [threading.Thread(target=deliver, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert Inbound.select().where(Inbound.state == "processed").count() == 4
    histogram = listener.app.metrics.batch_size
    sizes = {s.labels.get("le"): s.value for s in histogram.collect()[0].samples}
    assert sizes["2.0"] == 2 and sizes["1.0"] == 0  # two batches of two, none alone
