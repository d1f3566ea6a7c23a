"""Stage 1 of the pipeline, raw first (SPEC §2): a source's bytes become a durable
``Inbound`` row before anything reads them, so whatever happens after, the
message can be processed again. Several messages commit together (SPEC §2.3)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from maild.app import App
from maild.errors import StorageUnavailableError
from maild.faults import DATABASE_ERRORS, detect_resource_fault
from maild.storage.models import Inbound, RawMessage, to_storage
from maild.storage.stores import StoreError
from maild.storage_health import storage_unavailable


@dataclass(frozen=True)
class ImapPosition:
    """Where a message came from in an IMAP source; recorded with its outcome.
    ``generation`` is the lease generation the runner holds (None: no fencing,
    e.g. recovery at start)."""

    source: str
    uidvalidity: int
    uid: int
    generation: int | None = None


@dataclass(frozen=True)
class Incoming:
    """One message handed over by a source, for ``ingest_batch``.

    ``declared_size`` is the size a source reported for a message it did not
    download whole (IMAP ``RFC822.SIZE`` of an oversize message): ``raw`` then
    holds only its headers and the message is ``too_large``.
    """

    raw: bytes
    source: str = "ingest"
    position: ImapPosition | None = None
    declared_size: int | None = None


def split_headers(raw: bytes) -> bytes:
    """The header block of a message (for too_large: only headers are kept)."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        index = raw.find(sep)
        if index != -1:
            return raw[: index + len(sep)]
    return raw[:65536]


def header_length(raw: bytes) -> int:
    """Bytes up to and including the blank line after the headers; ``len(raw)``
    when there is none (a message of headers only, or not a message at all)."""
    ends = [index + len(sep) for sep in (b"\r\n\r\n", b"\n\n") if (index := raw.find(sep)) != -1]
    return min(ends) if ends else len(raw)


def kept_headers(raw: bytes, max_header_bytes: int) -> bytes:
    """What a too_large message keeps: its headers, cut to ``max_header_bytes`` at
    a line end (a header bomb is kept as evidence, not parsed whole)."""
    head = split_headers(raw)
    if len(head) <= max_header_bytes:
        return head
    head = head[:max_header_bytes]
    cut = head.rfind(b"\n")
    head = head[: cut + 1] if cut > 0 else head
    while head[:1] in (b" ", b"\t") or head.startswith((b"\r\n", b"\n")):
        head = head[1:]  # never start inside a folded line
    return head.rstrip(b"\r\n") + b"\r\n\r\n"


def is_too_large(raw: bytes, size: int, settings: Any) -> bool:
    """Over ``attachments.max_message_bytes`` whole, or over ``limits.max_header_bytes``
    of headers: either way only (at most that many bytes of) the headers are kept."""
    if size > settings.attachments.max_message_bytes:
        return True
    return header_length(raw) > settings.limits.max_header_bytes


def store_inbound(
    app: App,
    raw: bytes,
    source: str,
    position: ImapPosition | None = None,
    declared_size: int | None = None,
) -> Inbound:
    """Write the raw bytes and an ``Inbound`` row durably; raise StorageUnavailableError."""
    return store_inbound_batch(app, [Incoming(raw, source, position, declared_size)])[0]


def store_inbound_batch(app: App, items: Sequence[Incoming]) -> list[Inbound]:
    """``store_inbound`` for several messages, committed together (SPEC §2.3: one
    durable commit for the raw rows of a batch instead of one per message)."""
    try:
        with app.db.atomic():
            # In the database (the default) the bytes commit with the rows that record
            # them; as files they are fsynced before. Either way: raw first.
            return [_store_one(app, item) for item in items]
    except Exception as exc:
        fault = detect_resource_fault(exc)
        if fault is not None:
            raise storage_unavailable(app, fault) from exc
        if isinstance(exc, (StoreError, *DATABASE_ERRORS)):
            # A passing conflict (two writers of the same row): the sender retries.
            raise StorageUnavailableError(f"not stored: {exc}") from exc
        raise


def _store_one(app: App, item: Incoming) -> Inbound:
    raw, position = item.raw, item.position
    size = max(len(raw), item.declared_size or 0)
    headers_only = is_too_large(raw, size, app.settings)
    kept = kept_headers(raw, app.settings.limits.max_header_bytes) if headers_only else raw
    digest = app.raw_store.put(kept)
    if position is not None:
        existing = Inbound.get_or_none(
            (Inbound.imap_source == position.source)
            & (Inbound.imap_uidvalidity == position.uidvalidity)
            & (Inbound.imap_uid == position.uid)
        )
        if existing is not None:
            return existing
    raw_row = RawMessage.get_or_none(RawMessage.sha256 == digest)
    if raw_row is None:
        raw_row = RawMessage.create(
            sha256=digest,
            size=size,
            headers_only=headers_only,
            created_at=to_storage(app.clock.now()),
        )
    return Inbound.create(
        raw=raw_row,
        source=item.source,
        received_at=to_storage(app.clock.now()),
        imap_source=position.source if position else None,
        imap_uidvalidity=position.uidvalidity if position else None,
        imap_uid=position.uid if position else None,
    )


def load_raw(app: App, inbound: Inbound) -> bytes:
    """The stored bytes of ``inbound``; StorageUnavailableError when unreadable."""
    try:
        return app.raw_store.get(inbound.raw.sha256)
    except Exception as exc:
        fault = detect_resource_fault(exc)
        if fault is not None:
            raise storage_unavailable(app, fault) from exc
        if not isinstance(exc, OSError):
            raise
        raise StorageUnavailableError(
            f"raw message {inbound.raw.sha256} unreadable: {exc}"
        ) from exc
