"""Storage on real databases (SQLite and PostgreSQL) and the content-addressed stores.

Every test taking ``db`` runs on both databases (the fixture is parametrized);
PostgreSQL tests work in a private schema that is dropped afterwards.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import peewee as pw
import pytest
from maild.storage import tickets as store
from maild.storage.binding import bound
from maild.storage.db import is_postgres, open_database
from maild.storage.migrations import LATEST, current_version, migrate
from maild.storage.models import (
    MODELS,
    Attachment,
    Event,
    Inbound,
    Outbox,
    RawMessage,
    RefusedAttachment,
    SchemaVersion,
    ThreadEntry,
    Ticket,
    TicketCC,
    aware,
)
from maild.storage.stores import ContentStore, StoreError

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 24, 13, 0, 0, 123456, tzinfo=UTC)
BINARY = bytes(range(256)) + b"\r\n.\r\n\x00\xff" + "ção".encode("latin-1")


def new_ticket(number: int | None = None, **fields) -> Ticket:
    values = {
        "subject": "Não consigo emitir NF-e",
        "normalized_subject": "nao consigo emitir nf-e",
        "department": "suporte",
        "requester": "cliente@example.com.br",
    }
    values.update(fields)
    if number is None:
        return store.create_ticket(digits=6, now=NOW, **values)
    return Ticket.create(number=number, access_key="k", created_at=NOW, updated_at=NOW, **values)


def new_inbound(sha: str = "a" * 64, **fields) -> Inbound:
    raw = RawMessage.get_or_none(RawMessage.sha256 == sha) or RawMessage.create(sha256=sha, size=10)
    return Inbound.create(raw=raw, source="test", **fields)


def raises_integrity(db: pw.Database, action: Callable[[], object]) -> None:
    """``action`` violates a constraint; the transaction around it rolls back cleanly."""
    with pytest.raises(pw.IntegrityError), db.atomic():
        action()


# ---------------------------------------------------------------------------
# round trips
# ---------------------------------------------------------------------------


def test_ticket_round_trip_with_ccs_entries_attachments_events(db: pw.Database) -> None:
    with db.atomic():
        ticket = new_ticket(requester_name="Mariana Souza", priority="high")
        assert store.add_cc(ticket, "Financas@Example.com.br", "cliente@example.com.br", NOW)
        assert not store.add_cc(ticket, "financas@example.com.br", "x", NOW)  # once only
        assert not store.add_cc(ticket, "cliente@example.com.br", "x", NOW)  # the requester
        inbound = new_inbound(message_id="m1@example.com.br")
        entry = store.add_entry(
            ticket,
            kind="customer",
            now=NOW,
            author="cliente@example.com.br",
            author_name="Mariana Souza",
            message_id="m1@example.com.br",
            inbound=inbound,
            outcome="created",
            text="Olá, a nota saiu com erro — ç ã é 😀",
        )
        store.add_attachment(
            entry,
            filename="nota fiscal.pdf",
            content_type="application/pdf",
            size=1234,
            sha256="b" * 64,
        )
        store.add_refused(inbound, entry, "virus.exe", "extensão não permitida", "extension")
        store.add_event(
            ticket,
            "created",
            "cliente@example.com.br",
            NOW,
            department="suporte",
            note="Atenção: ação sem solução",
            nested={"lista": [1, "dois", None]},
        )

    loaded = Ticket.get(Ticket.number == ticket.number)
    assert (loaded.subject, loaded.requester_name, loaded.priority, loaded.status) == (
        "Não consigo emitir NF-e",
        "Mariana Souza",
        "high",
        "open",
    )
    assert aware(loaded.created_at) == NOW  # microseconds kept, naive UTC in the column
    assert [c.address for c in TicketCC.select().where(TicketCC.ticket == loaded)] == [
        "financas@example.com.br"
    ]
    [stored] = ThreadEntry.select().where(ThreadEntry.ticket == loaded)
    assert stored.text == "Olá, a nota saiu com erro — ç ã é 😀"
    assert stored.full_text == stored.text
    assert stored.inbound_id == inbound.id
    [att] = Attachment.select().where(Attachment.entry == stored)
    assert (att.filename, att.size, att.sha256, att.inline) == (
        "nota fiscal.pdf",
        1234,
        "b" * 64,
        False,
    )
    [refused] = RefusedAttachment.select().where(RefusedAttachment.entry == stored)
    assert refused.reason == "extensão não permitida"
    events = list(Event.select().where(Event.ticket == loaded).order_by(Event.id))
    assert [e.kind for e in events] == ["cc_added", "created"]
    assert events[1].data == {
        "department": "suporte",
        "note": "Atenção: ação sem solução",
        "nested": {"lista": [1, "dois", None]},
    }
    assert store.find_by_message_ids(["other", "m1@example.com.br"]).id == loaded.id


def test_outbox_keeps_binary_raw_bytes(db: pw.Database) -> None:
    with db.atomic():
        ticket = new_ticket()
        row = Outbox.create(
            idem_key=f"ack:{ticket.number}",
            ticket=ticket,
            template="confirmation",
            mail_from="suporte@example.com",
            recipients=["cliente@example.com.br", "josé@example.com.br"],
            message_id="<x@example.com>",
            subject="[#1] Recebemos sua solicitação",
            raw=BINARY,
        )

    loaded = Outbox.get_by_id(row.id)
    assert bytes(loaded.raw) == BINARY
    assert loaded.recipients == ["cliente@example.com.br", "josé@example.com.br"]
    assert loaded.subject == "[#1] Recebemos sua solicitação"
    assert (loaded.status, loaded.attempts, loaded.sent_at) == ("pending", 0, None)


# ---------------------------------------------------------------------------
# unique constraints
# ---------------------------------------------------------------------------


def test_ticket_number_is_unique(db: pw.Database) -> None:
    new_ticket(number=592110)
    raises_integrity(db, lambda: new_ticket(number=592110))
    assert Ticket.select().count() == 1  # the connection is usable after the failure


def test_outbox_idem_key_is_unique(db: pw.Database) -> None:
    def queue() -> Outbox:
        return Outbox.create(
            idem_key="ack:m1@example.com.br",
            template="confirmation",
            mail_from="suporte@example.com",
            recipients=["cliente@example.com.br"],
            message_id="<a@example.com>",
            raw=b"x",
        )

    queue()
    raises_integrity(db, queue)
    assert Outbox.select().count() == 1


def test_inbound_dedupe_key_is_unique_but_many_may_be_null(db: pw.Database) -> None:
    new_inbound(dedupe_key="mid:m1@example.com.br")
    new_inbound(dedupe_key=None)
    new_inbound(dedupe_key=None)  # duplicates are recorded without a key
    raises_integrity(db, lambda: new_inbound(dedupe_key="mid:m1@example.com.br"))
    assert Inbound.select().count() == 3


def test_unique_violation_inside_a_transaction_rolls_back_all_of_it(db: pw.Database) -> None:
    new_ticket(number=100001)
    with pytest.raises(pw.IntegrityError), db.atomic():
        new_ticket(number=100002)
        new_ticket(number=100001)
    assert [t.number for t in Ticket.select()] == [100001]


# ---------------------------------------------------------------------------
# migrations and connection settings
# ---------------------------------------------------------------------------


def test_migrate_is_idempotent(db: pw.Database) -> None:
    # The fixture already migrated this database.
    assert current_version(db) == LATEST
    assert migrate(db) == (LATEST, LATEST)
    assert migrate(db) == (LATEST, LATEST)
    assert SchemaVersion.select().count() == LATEST
    for model in MODELS:
        assert db.table_exists(model._meta.table_name), model.__name__


def test_migrate_on_an_empty_database_records_each_version(database_url: str) -> None:
    db = open_database(database_url)
    try:
        assert current_version(db) == 0
        assert migrate(db) == (0, LATEST)
        with bound(db):
            versions = [v.version for v in SchemaVersion.select().order_by(SchemaVersion.id)]
        assert versions == list(range(1, LATEST + 1))
    finally:
        db.close()


def test_sqlite_wal_busy_timeout_and_foreign_keys(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'sub' / 'm.sqlite3'}", migrate=True)
    try:
        pragma = lambda name: db.execute_sql(f"PRAGMA {name}").fetchone()[0]  # noqa: E731
        assert pragma("journal_mode") == "wal"
        assert pragma("busy_timeout") == 10000
        assert pragma("foreign_keys") == 1
        assert pragma("synchronous") == 2  # FULL: a commit survives a power cut
    finally:
        db.close()


def test_sqlite_pragmas_hold_on_every_thread_connection(tmp_path: Path) -> None:
    """peewee opens one connection per thread: each must get the pragmas too."""
    db = open_database(f"sqlite:///{tmp_path / 'm.sqlite3'}", migrate=True)
    seen: list[tuple[str, int]] = []

    def probe() -> None:
        with db.connection_context():
            seen.append(
                (
                    db.execute_sql("PRAGMA journal_mode").fetchone()[0],
                    db.execute_sql("PRAGMA busy_timeout").fetchone()[0],
                )
            )

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join(10)
    db.close()
    assert seen == [("wal", 10000)]


# ---------------------------------------------------------------------------
# ticket numbers under concurrent writers
# ---------------------------------------------------------------------------


def test_ticket_numbers_unique_under_concurrent_writers(db: pw.Database) -> None:
    """Eight threads, each its own connection, draw 4-digit numbers: clashes are retried."""
    threads_count, per_thread = 8, 80
    numbers: list[int] = []
    failures: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(threads_count)

    def writer(index: int) -> None:
        try:
            start.wait(10)
            mine = []
            for i in range(per_thread):
                ticket = store.create_ticket(
                    digits=4,
                    now=NOW + timedelta(seconds=i),
                    subject=f"t{index}-{i}",
                    normalized_subject=f"t{index}-{i}",
                    department="suporte",
                    requester=f"c{index}@example.com.br",
                )
                mine.append(ticket.number)
            with lock:
                numbers.extend(mine)
        except BaseException as exc:  # reported below, with the database named
            failures.append(exc)
        finally:
            db.close()  # this thread's connection

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads_count)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert not any(w.is_alive() for w in workers)
    assert failures == [], f"{'postgresql' if is_postgres(db) else 'sqlite'}: {failures!r}"
    assert len(numbers) == threads_count * per_thread
    assert len(set(numbers)) == len(numbers)
    assert all(1000 <= n <= 9999 for n in numbers)
    db.connect(reuse_if_open=True)
    stored = [t.number for t in Ticket.select(Ticket.number)]
    assert sorted(stored) == sorted(numbers)


def test_number_space_exhausted_is_reported(db: pw.Database, monkeypatch) -> None:
    monkeypatch.setattr(store, "random_number", lambda digits: 4242)
    new_ticket(number=4242)
    with pytest.raises(store.NumberSpaceExhaustedError):
        store.create_ticket(
            digits=4,
            now=NOW,
            subject="s",
            normalized_subject="s",
            department="suporte",
            requester="c@example.com.br",
        )


# ---------------------------------------------------------------------------
# content-addressed stores
# ---------------------------------------------------------------------------


def test_content_store_is_content_addressed_and_idempotent(tmp_path: Path) -> None:
    blobs = ContentStore(tmp_path / "raw")
    digest = blobs.put(BINARY)

    assert digest == hashlib.sha256(BINARY).hexdigest()
    path = tmp_path / "raw" / digest[:2] / digest[2:4] / digest
    assert blobs.path_for(digest) == path
    assert path.read_bytes() == BINARY
    assert blobs.get(digest) == BINARY and blobs.exists(digest)
    inode = path.stat().st_ino

    assert blobs.put(BINARY) == digest  # same bytes: no-op
    assert path.stat().st_ino == inode
    assert blobs.put(b"") == hashlib.sha256(b"").hexdigest()  # empty is a valid blob
    files = sorted(p.name for p in (tmp_path / "raw").rglob("*") if p.is_file())
    assert files == sorted([digest, hashlib.sha256(b"").hexdigest()])  # no temp files left
    assert not blobs.exists("0" * 64)


def test_content_store_under_a_regular_file_raises_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("not a folder", encoding="utf-8")
    blobs = ContentStore(blocker / "raw")

    with pytest.raises(StoreError) as info:
        blobs.put(b"Subject: x\r\n\r\nbody\r\n")
    assert isinstance(info.value, OSError)
    assert "cannot store blob" in str(info.value)
    assert blocker.read_text(encoding="utf-8") == "not a folder"


def test_upgrade_from_version_1_adds_the_ticket_lookup_index(database_url: str) -> None:
    from maild.storage.migrations import MIGRATIONS

    db = open_database(database_url)
    try:
        with bound(db):
            db.create_tables([SchemaVersion], safe=True)
            MIGRATIONS[0](db)  # a database made by the first release
            SchemaVersion.create(version=1)

        assert migrate(db) == (1, LATEST)

        names = {index.name for index in db.get_indexes("ticket")}
        assert {
            "ticket_requester_normalized_subject",
            "ticket_normalized_subject_department",
        } <= names
        assert "ticket_cc_address" in {index.name for index in db.get_indexes("ticket_cc")}
    finally:
        db.close()
