"""peewee models: every durable thing maild keeps.

Every model uses the database bound where it runs (``storage.binding``): the
running App's, never a process-wide global.
Times are stored as naive UTC (the same on SQLite and PostgreSQL) and converted
to aware datetimes at the edges (``storage.models.aware``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import peewee as pw
from maild.storage.binding import MODELS_DATABASE
from maild.storage.statements import NOT_CACHED, insert_row, select_by_field, update_row

TICKET_STATUSES = ("open", "in_progress", "waiting_customer", "resolved", "closed")
ACTIVE_STATUSES = ("open", "in_progress", "waiting_customer")
PRIORITIES = ("low", "normal", "high", "urgent")
ENTRY_KINDS = ("customer", "agent", "note", "system")

# Inbound processing states (the outcome is a separate column).
INBOUND_RECEIVED = "received"  # raw stored, not processed yet (or crashed mid-way)
INBOUND_PROCESSED = "processed"  # outcome committed
INBOUND_HELD = "held"  # rate limited: waits for `maild quarantine release`
INBOUND_QUARANTINED = "quarantined"  # could not be processed; raw kept

OUTBOX_PENDING = "pending"
OUTBOX_SENT = "sent"
OUTBOX_FAILED = "failed"
OUTBOX_BOUNCED = "bounced"
OUTBOX_HELD = "suppressed"  # automatic mail not sent (cap / cool-down); kept for the record
OUTBOX_STATUSES = (OUTBOX_PENDING, OUTBOX_SENT, OUTBOX_FAILED, OUTBOX_BOUNCED, OUTBOX_HELD)


def utcnow() -> datetime:
    """Naive UTC now, the storage representation. Only IO code calls this."""
    return datetime.now(UTC).replace(tzinfo=None)


def to_storage(dt: datetime) -> datetime:
    """Aware (or naive UTC) datetime -> naive UTC for a column."""
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt


def aware(dt: datetime | None) -> datetime | None:
    """Column value -> aware UTC datetime."""
    if dt is None:
        return None
    if isinstance(dt, str):  # SQLite may hand back text for odd values
        dt = datetime.fromisoformat(dt)
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt


class JSONField(pw.TextField):
    """JSON kept as text, portable between SQLite and PostgreSQL."""

    def db_value(self, value: Any) -> str | None:
        return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)

    def python_value(self, value: Any) -> Any:
        return None if value is None else json.loads(value)


class BytesField(pw.BlobField):
    """A BLOB (bytea) whose ``bytes`` go to the driver as they are: sqlite3 and
    psycopg2 both take them. peewee's BlobField wraps them first (a ``bytearray``
    when models are bound through a proxy, see storage.binding): one more copy of
    every raw message, attachment chunk and outbound mail."""

    def db_value(self, value: Any) -> Any:
        if isinstance(value, str):
            return value.encode("utf-8")
        return value


class BaseModel(pw.Model):
    class Meta:
        database = MODELS_DATABASE
        legacy_table_names = False
        # save() writes only the columns that changed: two transactions changing
        # different fields of one row never undo each other.
        only_save_dirty = True

    @classmethod
    def create(cls, **query: Any) -> Any:
        """A new row, inserted with a statement built once per column set."""
        instance = cls(**query)
        if not insert_row(instance):
            instance.save(force_insert=True)
        return instance

    @classmethod
    def get(cls, *query: Any, **filters: Any) -> Any:
        """``field == value`` lookups with a statement built once per field."""
        found = select_by_field(cls, query, filters)
        if found is NOT_CACHED:
            return super().get(*query, **filters)
        if found is None:
            raise cls.DoesNotExist(f"{cls.__name__} instance matching query does not exist")
        return found

    def save(self, force_insert: bool = False, only: Any = None) -> Any:
        """Only the changed columns (``only_save_dirty``), with a statement built once
        per column set."""
        if not force_insert and only is None:
            rows = update_row(self)
            if rows is not None:
                return rows
        return super().save(force_insert=force_insert, only=only)


class SchemaVersion(BaseModel):
    version = pw.IntegerField()
    applied_at = pw.DateTimeField(default=utcnow)


class RawMessage(BaseModel):
    """A content-addressed raw message file under data_dir/raw/."""

    sha256 = pw.CharField(max_length=64, unique=True)
    size = pw.BigIntegerField()
    headers_only = pw.BooleanField(default=False)  # too_large: only the header block kept
    created_at = pw.DateTimeField(default=utcnow)


class Ticket(BaseModel):
    number = pw.BigIntegerField(unique=True)
    subject = pw.TextField()
    normalized_subject = pw.TextField(index=True)
    status = pw.CharField(max_length=20, default="open", index=True)
    priority = pw.CharField(max_length=10, default="normal")
    department = pw.CharField(max_length=64, index=True)
    requester = pw.CharField(max_length=320, index=True)
    requester_name = pw.TextField(default="")
    assignee = pw.CharField(max_length=320, null=True)
    access_key = pw.CharField(max_length=64)
    language = pw.CharField(max_length=8, default="pt_BR")
    rating = pw.SmallIntegerField(null=True)
    rating_comment = pw.TextField(null=True)
    first_response_due = pw.DateTimeField(null=True)
    resolution_due = pw.DateTimeField(null=True)
    created_at = pw.DateTimeField(default=utcnow, index=True)
    updated_at = pw.DateTimeField(default=utcnow)
    resolved_at = pw.DateTimeField(null=True)
    closed_at = pw.DateTimeField(null=True)
    # SLA clock (SPEC §11): when the ticket went waiting_customer (None when not
    # waiting), and the waiting periods [start, end] (ISO UTC) not yet folded into
    # the due times by the scheduler.
    waiting_since = pw.DateTimeField(null=True)
    sla_pauses = JSONField(default=list)


class TicketCC(BaseModel):
    ticket = pw.ForeignKeyField(Ticket, backref="ccs", on_delete="CASCADE")
    address = pw.CharField(max_length=320)

    class Meta:
        indexes = ((("ticket", "address"), True),)


class Inbound(BaseModel):
    """One message that came in, from any source, with its single outcome."""

    raw = pw.ForeignKeyField(RawMessage, backref="inbound")
    source = pw.CharField(max_length=128)  # "ingest", "lmtp", "imap:<name>", "web"
    message_id = pw.TextField(null=True, index=True)
    # Set on the first processed copy only: "mid:<Message-ID>" or "sha:<sha256>".
    dedupe_key = pw.TextField(null=True, unique=True)
    sender = pw.CharField(max_length=320, default="", index=True)
    subject = pw.TextField(default="")
    state = pw.CharField(max_length=16, default=INBOUND_RECEIVED, index=True)
    outcome = pw.CharField(max_length=40, null=True, index=True)
    ticket = pw.ForeignKeyField(Ticket, null=True, backref="inbound", on_delete="SET NULL")
    detail = pw.TextField(null=True)  # human reason: quarantine error, rule that fired
    attempts = pw.IntegerField(default=0)
    imap_source = pw.CharField(max_length=128, null=True)
    imap_uidvalidity = pw.BigIntegerField(null=True)
    imap_uid = pw.BigIntegerField(null=True)
    received_at = pw.DateTimeField(default=utcnow, index=True)
    processed_at = pw.DateTimeField(null=True)

    class Meta:
        indexes = ((("sender", "received_at"), False),)


class ThreadEntry(BaseModel):
    ticket = pw.ForeignKeyField(Ticket, backref="entries", on_delete="CASCADE")
    kind = pw.CharField(max_length=10)  # customer | agent | note | system
    author = pw.CharField(max_length=320, default="")
    author_name = pw.TextField(default="")
    message_id = pw.TextField(null=True)
    inbound = pw.ForeignKeyField(Inbound, null=True, backref="entries", on_delete="SET NULL")
    outcome = pw.CharField(max_length=40, null=True)
    text = pw.TextField(default="")  # stripped: what is relayed and shown
    full_text = pw.TextField(default="")  # the whole body, quotes and all
    created_at = pw.DateTimeField(default=utcnow)


class Attachment(BaseModel):
    entry = pw.ForeignKeyField(ThreadEntry, backref="attachments", on_delete="CASCADE")
    filename = pw.TextField()
    content_type = pw.CharField(max_length=128)
    size = pw.BigIntegerField()
    sha256 = pw.CharField(max_length=64, index=True)
    inline = pw.BooleanField(default=False)
    content_id = pw.TextField(null=True)


class RefusedAttachment(BaseModel):
    entry = pw.ForeignKeyField(
        ThreadEntry, null=True, backref="refused_attachments", on_delete="CASCADE"
    )
    inbound = pw.ForeignKeyField(Inbound, backref="refused_attachments", on_delete="CASCADE")
    filename = pw.TextField()
    reason = pw.TextField()
    reason_code = pw.CharField(max_length=40)


class Event(BaseModel):
    """Audit log: every change to a ticket, by whom, with details."""

    ticket = pw.ForeignKeyField(Ticket, backref="events", on_delete="CASCADE")
    kind = pw.CharField(max_length=40)
    actor = pw.CharField(max_length=320, default="system")
    data = JSONField(default=dict)
    created_at = pw.DateTimeField(default=utcnow)


class KnownMessageId(BaseModel):
    """Every Message-ID a ticket has sent or received, for In-Reply-To threading."""

    message_id = pw.TextField()
    ticket = pw.ForeignKeyField(Ticket, backref="message_ids", on_delete="CASCADE")

    class Meta:
        indexes = ((("message_id", "ticket"), True),)


class Outbox(BaseModel):
    """Durable queue of outbound mail: nothing is sent except through it."""

    idem_key = pw.CharField(max_length=255, unique=True)
    ticket = pw.ForeignKeyField(Ticket, null=True, backref="outbox", on_delete="SET NULL")
    inbound = pw.ForeignKeyField(Inbound, null=True, backref="outbox", on_delete="SET NULL")
    template = pw.CharField(max_length=64)
    automatic = pw.BooleanField(default=True)
    mail_from = pw.CharField(max_length=320)  # envelope sender
    recipients = JSONField()  # list of addresses
    message_id = pw.TextField(index=True)
    subject = pw.TextField(default="")
    raw = BytesField()
    status = pw.CharField(max_length=12, default=OUTBOX_PENDING, index=True)
    attempts = pw.IntegerField(default=0)
    next_attempt_at = pw.DateTimeField(default=utcnow, index=True)
    last_error = pw.TextField(null=True)
    claimed_by = pw.CharField(max_length=128, null=True)
    claimed_until = pw.DateTimeField(null=True)
    created_at = pw.DateTimeField(default=utcnow)
    sent_at = pw.DateTimeField(null=True)


class OutboxAttempt(BaseModel):
    outbox = pw.ForeignKeyField(Outbox, backref="attempt_log", on_delete="CASCADE")
    at = pw.DateTimeField(default=utcnow)
    result = pw.CharField(max_length=16)  # sent | deferred | failed
    detail = pw.TextField(default="")


class AutoMailLog(BaseModel):
    """One row per automatic mail queued to an address (per-recipient hourly cap)."""

    address = pw.CharField(max_length=320)
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("address", "created_at"), False),)


class AddressCooldown(BaseModel):
    """An address that bounced: no automatic mail to it until ``until``."""

    address = pw.CharField(max_length=320, unique=True)
    until = pw.DateTimeField()
    reason = pw.TextField(default="")


class ImapState(BaseModel):
    """Position in one IMAP source, plus the lease that lets one instance work it."""

    source = pw.CharField(max_length=128, unique=True)
    uidvalidity = pw.BigIntegerField(null=True)
    last_uid = pw.BigIntegerField(default=0)
    lease_owner = pw.CharField(max_length=128, null=True)
    lease_until = pw.DateTimeField(null=True)
    # Bumped each time the lease changes hands: a position write carrying an older
    # generation comes from an instance that lost the lease, and is refused.
    lease_generation = pw.BigIntegerField(default=0)


class RateWindowNotice(BaseModel):
    """One rate-limit notice per sender per window."""

    address = pw.CharField(max_length=320)
    window_start = pw.DateTimeField()

    class Meta:
        indexes = ((("address", "window_start"), True),)


class Blob(BaseModel):
    """A content-addressed blob (raw message or attachment) kept in the database, so
    that every instance on every host reads what any of them stored (SPEC §2)."""

    sha256 = pw.CharField(max_length=64, primary_key=True)
    size = pw.BigIntegerField()
    chunks = pw.IntegerField()


class BlobChunk(BaseModel):
    """One piece of a blob: large blobs go in and out a chunk at a time, never as one
    value the driver would copy and escape whole."""

    blob = pw.CharField(max_length=64)  # Blob.sha256; no FK: chunks are written first
    seq = pw.IntegerField()
    data = BytesField()

    class Meta:
        primary_key = pw.CompositeKey("blob", "seq")


class SchedulerMark(BaseModel):
    """One scheduler job done (a warning, a breach, a reminder, a digest...), under a
    unique key, committed with what the job changed: never done twice, never lost."""

    key = pw.CharField(max_length=255, unique=True)
    job = pw.CharField(max_length=40)
    ticket = pw.ForeignKeyField(Ticket, null=True, backref="marks", on_delete="CASCADE")
    done_at = pw.DateTimeField(default=utcnow, index=True)


class Customer(BaseModel):
    """A known customer (SPEC §13): one address, or a whole domain (``email`` NULL)."""

    email = pw.CharField(max_length=320, null=True, unique=True)
    domain = pw.CharField(max_length=255, null=True, unique=True)
    name = pw.TextField(default="")
    organization = pw.TextField(default="")
    created_at = pw.DateTimeField(default=utcnow)


class CustomerLink(BaseModel):
    """The private key of one address's ticket list, ``/c/{key}`` (SPEC §12).

    Per address, known customer or not: anyone with tickets may ask for the list."""

    address = pw.CharField(max_length=320, unique=True)
    access_key = pw.CharField(max_length=64, unique=True)
    created_at = pw.DateTimeField(default=utcnow)


class OAuthToken(BaseModel):
    """The OAuth2 tokens of one account (an IMAP source's name, or "smtp"), SPEC §14.

    Tokens are kept encrypted (Fernet, key from ``oauth_key_file``): a database dump
    alone does not open the mailbox. ``needs_authorization`` is set when the provider
    refused the refresh token (revoked, expired); ``maild oauth authorize`` clears it.
    """

    account = pw.CharField(max_length=128, unique=True)
    refresh_token = pw.TextField(null=True)  # encrypted
    access_token = pw.TextField(null=True)  # encrypted
    expires_at = pw.DateTimeField(null=True)  # of the access token
    needs_authorization = pw.BooleanField(default=False)
    error = pw.TextField(default="")
    updated_at = pw.DateTimeField(default=utcnow)


MODELS: list[type[pw.Model]] = [
    SchemaVersion,
    RawMessage,
    Ticket,
    TicketCC,
    Inbound,
    ThreadEntry,
    Attachment,
    RefusedAttachment,
    Event,
    KnownMessageId,
    Outbox,
    OutboxAttempt,
    AutoMailLog,
    AddressCooldown,
    ImapState,
    RateWindowNotice,
    Blob,
    BlobChunk,
    SchedulerMark,
    Customer,
    CustomerLink,
    OAuthToken,
]
