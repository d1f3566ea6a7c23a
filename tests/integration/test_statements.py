"""Rows inserted with a remembered statement (storage.statements) are the rows
peewee itself would insert: same keys, same values, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import peewee as pw
import pytest
from maild.storage.models import Event, Inbound, Outbox, RawMessage, Ticket, to_storage
from maild.storage.statements import cached_shapes, insert_row

pytestmark = pytest.mark.integration

NOW = to_storage(datetime(2026, 11, 24, 13, 0, 0, 123456, tzinfo=UTC))


def _ticket_fields(number: int) -> dict[str, object]:
    return {
        "number": number,
        "subject": "Nota fiscal não emite",
        "normalized_subject": "nota fiscal nao emite",
        "department": "suporte",
        "requester": "mariana@padaria.example.com.br",
        "access_key": f"k{number}",
        "created_at": NOW,
        "updated_at": NOW,
    }


def _ticket(number: int, **fields: object) -> Ticket:
    return Ticket.create(**(_ticket_fields(number) | fields))


def _outbox(idem_key: str, message_id: str, raw: bytes = b"x") -> Outbox:
    return Outbox.create(
        idem_key=idem_key,
        recipients=["a@x.example"],
        created_at=NOW,
        next_attempt_at=NOW,
        template="t",
        mail_from="s@x.example",
        message_id=message_id,
        subject="s",
        raw=raw,
    )


def test_remembered_inserts_match_peewee(db: pw.Database) -> None:
    first = _ticket(100001)
    second = _ticket(100002, priority="urgent")  # the same statement, other values
    assert second.id == first.id + 1
    assert cached_shapes() >= 1
    reread = Ticket.get_by_id(second.id)
    assert (reread.number, reread.priority, reread.status) == (100002, "urgent", "open")
    assert reread.created_at == NOW
    assert not second.is_dirty()

    # peewee's own way for the same shape gives the same row, field for field.
    third = Ticket(**_ticket_fields(100003))
    third.save(force_insert=True)
    mine = Ticket.get_by_id(first.id).__data__
    theirs = Ticket.get_by_id(third.id).__data__
    differing = {k for k in mine if mine[k] != theirs[k]}
    assert differing == {"id", "number", "access_key"}

    # JSON, a foreign key given as a row, and a later update of the inserted row.
    event = Event.create(
        ticket=second, kind="created", actor="x", data={"a": [1, "ç"]}, created_at=NOW
    )
    assert Event.get_by_id(event.id).data == {"a": [1, "ç"]}
    assert Event.get_by_id(event.id).ticket_id == second.id
    second.status = "resolved"
    second.save()
    assert Ticket.get_by_id(second.id).status == "resolved"


def test_what_a_statement_cannot_do_goes_peewees_way(db: pw.Database) -> None:
    raw = RawMessage(sha256="a" * 64, size=10, created_at=NOW)
    raw.id = 5000  # a chosen key: not an auto-increment insert
    assert not insert_row(raw)
    unsaved = RawMessage(sha256="b" * 64, size=3, created_at=NOW)
    inbound = Inbound(raw=unsaved, source="ingest", received_at=NOW)
    assert not insert_row(inbound)  # its raw row is not saved yet


def test_a_unique_clash_is_peewees_integrity_error(db: pw.Database) -> None:
    _outbox("k", "<m@x>")
    with pytest.raises(pw.IntegrityError), db.atomic():
        _outbox("k", "<m2@x>")


def test_remembered_updates_write_only_the_changed_columns(db: pw.Database) -> None:
    ticket = _ticket(100010)
    twin = Ticket.get_by_id(ticket.id)  # another copy of the same row
    ticket.status = "resolved"
    assert ticket.save() == 1
    twin.priority = "urgent"
    assert twin.save() == 1  # its own column only: the status above stands
    again = Ticket.get_by_id(ticket.id)
    assert (again.status, again.priority) == ("resolved", "urgent")
    assert not ticket.is_dirty() and ticket.save() is False  # nothing to save

    event = Event.create(ticket=ticket, kind="k", actor="a", data={"n": 1}, created_at=NOW)
    event.data = {"n": 2, "ç": ["x"]}
    event.ticket = twin
    assert event.save() == 1
    assert Event.get_by_id(event.id).data == {"n": 2, "ç": ["x"]}


def test_a_related_row_saved_after_it_was_assigned_goes_peewees_way(db: pw.Database) -> None:
    ticket = _ticket(100020)
    event = Event.create(ticket=ticket, kind="k", actor="a", data={}, created_at=NOW)
    later = Ticket(**_ticket_fields(100021))
    event.ticket = later  # unsaved when assigned: its key is not in the row's data yet
    later.save()
    assert event.save() == 1
    assert Event.get_by_id(event.id).ticket_id == later.id
    fresh = Event(ticket=Ticket(number=100022), kind="k", actor="a", data={}, created_at=NOW)
    assert not insert_row(fresh)  # the same for an insert


def test_remembered_single_row_lookups_match_peewee(db: pw.Database) -> None:
    ticket = _ticket(100030, priority="high")
    event = Event.create(ticket=ticket, kind="k", actor="a", data={"ç": [1]}, created_at=NOW)
    raw = RawMessage.create(sha256="c" * 64, size=3, created_at=NOW)
    inbound = Inbound.create(raw=raw, source="ingest", received_at=NOW)
    _outbox("look", "<look@x>", raw=b"\x00\xffbytes")
    for model, term in (
        (Ticket, Ticket.number == 100030),
        (Ticket, ticket.id),
        (Event, Event.id == event.id),
        (RawMessage, RawMessage.sha256 == "c" * 64),
        (Inbound, Inbound.id == inbound.id),
        (Outbox, Outbox.idem_key == "look"),
    ):
        theirs = model.select().where(term if not isinstance(term, int) else model.id == term).get()
        mine = model.get(term)
        assert not mine.is_dirty()
        assert {
            k: bytes(v) if isinstance(v, memoryview) else v for k, v in mine.__data__.items()
        } == {k: bytes(v) if isinstance(v, memoryview) else v for k, v in theirs.__data__.items()}
    assert Inbound.get_by_id(inbound.id).raw.sha256 == "c" * 64  # a related row, loaded lazily
    assert Ticket.get_or_none(Ticket.number == 999999) is None
    with pytest.raises(Ticket.DoesNotExist):
        Ticket.get(Ticket.number == 999999)
    assert cached_shapes() >= 1
