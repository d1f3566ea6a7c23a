"""Blobs in the database (SPEC §2): raw mail and attachments that every instance on
every host can read, and the migration of files an earlier maild left on disk.

Tests taking ``db`` or ``database_url`` run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
import multiprocessing
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any

import peewee as pw
import pytest
from maild.storage.db import open_database
from maild.storage.models import Attachment, Blob, BlobChunk, Inbound, Ticket
from maild.storage.stores import CHUNK_BYTES, BlobMissingError, ContentStore, DatabaseStore

from maild.app import App
from maild.cli import run_cli
from maild.pipeline import ingest
from maild.recovery import release
from maild.web import data
from tests.shipped_settings import write_settings

pytestmark = pytest.mark.integration

PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452") + b"\x00" * 64


def customer_mail(message_id: str, subject: str = "Tela com erro") -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = "Cliente <cliente@example.com.br>"
    msg["To"] = "suporte@example.com"
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{message_id}>"
    msg.set_content("A tela mostra um erro, segue o print.")
    msg.add_attachment(PNG, maintype="image", subtype="png", filename="tela.png")
    return msg.as_bytes()


def test_put_get_in_chunks_and_idempotent(db: pw.Database) -> None:
    store = DatabaseStore(db)
    data = bytes(range(256)) * (CHUNK_BYTES * 5 // 2 // 256)  # two and a half chunks

    with db.atomic():
        digest = store.put(data)
        assert store.put(data) == digest  # the same bytes again: nothing added

    assert digest == hashlib.sha256(data).hexdigest()
    assert store.get(digest) == data
    assert (Blob.get_by_id(digest).chunks, BlobChunk.select().count()) == (3, 3)
    assert store.put(b"") == hashlib.sha256(b"").hexdigest()
    assert store.get(hashlib.sha256(b"").hexdigest()) == b""


def test_a_blob_commits_or_rolls_back_with_its_transaction(db: pw.Database) -> None:
    store = DatabaseStore(db)

    with pytest.raises(RuntimeError), db.atomic():
        digest = store.put(b"never recorded")
        raise RuntimeError("the message failed")

    assert not store.exists(digest)
    with pytest.raises(BlobMissingError):
        store.get(digest)
    assert BlobChunk.select().count() == 0


def test_missing_or_incomplete_blob_is_an_oserror(db: pw.Database) -> None:
    store = DatabaseStore(db)
    digest = store.put(b"x" * (CHUNK_BYTES + 1))
    BlobChunk.delete().where(BlobChunk.seq == 1).execute()

    with pytest.raises(OSError, match="incomplete"):
        store.get(digest)
    with pytest.raises(OSError, match="no blob"):
        store.get("0" * 64)


def _store_from_another_instance(database_url: str, data: bytes, barrier: Any) -> None:
    """One instance (its own process, as on another host) storing ``data``."""
    db = open_database(database_url)
    try:
        barrier.wait(10)
        with db.atomic():
            DatabaseStore(db).put(data)
    finally:
        db.close()


def test_two_writers_of_the_same_bytes_both_succeed(database_url: str) -> None:
    data = b"same attachment from two instances " * 1000
    open_database(database_url, migrate=True).close()
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(2)
    writers = [
        context.Process(target=_store_from_another_instance, args=(database_url, data, barrier))
        for _ in range(2)
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(30)

    assert [writer.exitcode for writer in writers] == [0, 0]
    db = open_database(database_url)
    try:
        assert DatabaseStore(db).get(hashlib.sha256(data).hexdigest()) == data
    finally:
        db.close()


def test_db_migrate_copies_old_files_in_and_verifies_them(tmp_path: Path, clock: Any) -> None:
    config = write_settings(tmp_path)
    var = tmp_path / "var"
    files = ContentStore(var / "raw")
    good = files.put(b"From: a@example.com\r\n\r\nold raw mail\r\n")
    bad = files.put(b"tampered later")
    files.path_for(bad).write_bytes(b"not what the name says")
    attachment = ContentStore(var / "attachments").put(PNG)

    def maild(*argv: str) -> tuple[int, str, str]:
        import io

        out, err = io.StringIO(), io.StringIO()
        code = run_cli(["--config", str(config), *argv], out, err, clock=clock)
        return code, out.getvalue(), err.getvalue()

    code, out, err = maild("db", "migrate")

    assert code == 1  # one file did not match its name: said, and not imported
    assert "1 raw file(s) copied into the database and verified" in out
    assert "1 attachments file(s) copied" in out
    assert f"{bad}: content does not match its SHA-256 name" in err
    db = open_database(f"sqlite:///{var / 'maild.sqlite3'}")
    try:
        store = DatabaseStore(db)
        assert store.exists(good) and store.exists(attachment) and not store.exists(bad)
    finally:
        db.close()
    files.path_for(bad).unlink()
    assert maild("db", "migrate")[0] == 0  # again: nothing left to copy, no error


def test_two_instances_on_one_postgresql_serve_each_others_blobs(
    make_app: Any, tmp_path: Path, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("the shared store is PostgreSQL")
    limits = {"max_messages_per_sender_per_hour": 1}
    first: App = make_app(database_url, daemon={"data_dir": str(tmp_path / "a")}, limits=limits)
    second: App = make_app(database_url, daemon={"data_dir": str(tmp_path / "b")}, limits=limits)

    created = ingest(first, customer_mail("blob-a@cliente.example"))
    ticket = Ticket.get(Ticket.number == created.ticket)
    attachment = Attachment.get()

    found = data.load_attachment(second, str(ticket.number), ticket.access_key, str(attachment.id))
    assert found is not None and found.content == PNG
    assert not (tmp_path / "a" / "attachments").exists()  # nothing on local disk

    # A message held on A (over the sender's hourly cap) is released from B, which
    # reads the raw bytes A stored.
    held = ingest(first, customer_mail("blob-b@cliente.example", "Outro pedido"))
    assert held.outcome == "rate_limited"
    assert release(second, held.inbound_id).outcome == "created"


def test_a_release_that_cannot_read_the_raw_bytes_changes_nothing(app: App) -> None:
    result = ingest(app, customer_mail("gone@cliente.example"))
    row = Inbound.get_by_id(result.inbound_id)
    Inbound.update(state="quarantined", outcome="quarantined").where(Inbound.id == row.id).execute()
    BlobChunk.delete().where(BlobChunk.blob == row.raw.sha256).execute()

    with pytest.raises(Exception, match="unreadable"):
        release(app, row.id)

    assert Inbound.get_by_id(row.id).state == "quarantined"  # not stranded in 'received'
