"""Schema creation and upgrades, with the version recorded in the database.

``MIGRATIONS`` is an ordered list; entry N brings the schema from version N to
N+1. ``migrate`` applies the missing ones inside a transaction each, so a second
run is a no-op and a later release only appends to the list.
"""

from __future__ import annotations

from collections.abc import Callable

import peewee as pw
from maild.storage.binding import bound
from maild.storage.models import (
    MODELS,
    Blob,
    BlobChunk,
    Customer,
    CustomerLink,
    ImapState,
    OAuthToken,
    SchedulerMark,
    SchemaVersion,
    Ticket,
)
from playhouse import migrate as schema


def _v1_initial(db: pw.Database) -> None:
    db.create_tables([m for m in MODELS if m is not SchemaVersion], safe=True)


def _v2_ticket_lookup_indexes(db: pw.Database) -> None:
    # The duplicate-subject and subject-threading lookups otherwise scan every
    # ticket of the department (and every CC row): linear in the desk's history.
    for statement in (
        "CREATE INDEX IF NOT EXISTS ticket_requester_normalized_subject "
        "ON ticket (requester, normalized_subject)",
        "CREATE INDEX IF NOT EXISTS ticket_normalized_subject_department "
        "ON ticket (normalized_subject, department)",
        "CREATE INDEX IF NOT EXISTS ticket_cc_address ON ticket_cc (address)",
    ):
        db.execute_sql(statement)


def _v3_blob_store(db: pw.Database) -> None:
    # Raw mail and attachments in the database (SPEC §2); files already under
    # data_dir are copied in by `maild db migrate` (storage.stores.import_files).
    db.create_tables([Blob, BlobChunk], safe=True)


def _v4_scheduler(db: pw.Database) -> None:
    # The scheduler's done-marks, and the ticket's SLA pause bookkeeping (SPEC §11).
    from playhouse import migrate as schema

    db.create_tables([SchedulerMark], safe=True)
    have = {c.name for c in db.get_columns(Ticket._meta.table_name)}
    migrator = schema.SchemaMigrator.from_database(db)
    operations = [
        migrator.add_column(Ticket._meta.table_name, name, Ticket._meta.fields[name])
        for name in ("waiting_since", "sla_pauses")
        if name not in have
    ]
    if operations:
        schema.migrate(*operations)
        # A ticket already waiting started its pause at its last change, near enough.
        Ticket.update(waiting_since=Ticket.updated_at).where(
            Ticket.status == "waiting_customer"
        ).execute()


def _v5_customers(db: pw.Database) -> None:
    # Known customers (SPEC §13) and the per-address ticket-list keys (SPEC §12).
    db.create_tables([Customer, CustomerLink], safe=True)


def _v6_oauth(db: pw.Database) -> None:
    # Encrypted OAuth2 tokens of XOAUTH2 sources and [smtp] (SPEC §14).
    db.create_tables([OAuthToken], safe=True)


def _v7_lease_generation(db: pw.Database) -> None:
    # IMAP leases fence position writes by generation (SPEC §10).
    table = ImapState._meta.table_name
    if "lease_generation" in {c.name for c in db.get_columns(table)}:
        return
    migrator = schema.SchemaMigrator.from_database(db)
    schema.migrate(
        migrator.add_column(table, "lease_generation", ImapState._meta.fields["lease_generation"])
    )


MIGRATIONS: list[Callable[[pw.Database], None]] = [
    _v1_initial,
    _v2_ticket_lookup_indexes,
    _v3_blob_store,
    _v4_scheduler,
    _v5_customers,
    _v6_oauth,
    _v7_lease_generation,
]
LATEST = len(MIGRATIONS)


def current_version(db: pw.Database) -> int:
    if not db.table_exists(SchemaVersion._meta.table_name):
        return 0
    with bound(db):
        row = SchemaVersion.select(pw.fn.MAX(SchemaVersion.version)).scalar()
    return int(row or 0)


def migrate(db: pw.Database) -> tuple[int, int]:
    """Bring the schema to LATEST; return (from_version, to_version)."""
    with bound(db):  # the models' tables are created and versioned in ``db``
        db.create_tables([SchemaVersion], safe=True)
        start = current_version(db)
        if start > LATEST:
            raise RuntimeError(
                f"database schema is version {start}, newer than this maild ({LATEST}); "
                "upgrade maild"
            )
        for version in range(start, LATEST):
            with db.atomic():
                MIGRATIONS[version](db)
                SchemaVersion.create(version=version + 1)
    return start, LATEST
