"""What is written on a message's record once it is decided: its result, its
quarantine, and the position of its IMAP source (fenced by the lease generation,
SPEC §10). Used by ``maild.pipeline`` and ``maild.recovery``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from maild.app import App
from maild.context import dedupe_key
from maild.inbound_store import ImapPosition
from maild.parsers.message import parse_message
from maild.policy import types as outcomes
from maild.storage.models import INBOUND_QUARANTINED, ImapState, Inbound, to_storage


class LeaseFencedError(Exception):
    """The position write of a runner whose lease changed hands: its transaction
    rolls back and the message is left ``received`` for the current holder."""


@dataclass(frozen=True)
class IngestResult:
    outcome: str
    ticket: int | None
    message_id: str | None
    inbound_id: int | None = None
    detail: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "ticket": self.ticket, "message_id": self.message_id}


def quarantine(
    app: App,
    inbound: Inbound,
    error: str,
    position: ImapPosition | None,
    raw: bytes | None,
    *,
    count_attempt: bool = True,
) -> IngestResult:
    """Mark a message quarantined. ``raw`` None: do not even parse it again (it may
    be what crashed the process); its dedupe key is then its SHA-256."""
    now = app.clock.now()
    key = (
        _safe_dedupe_key(raw, inbound.raw.sha256)
        if raw is not None
        else (dedupe_key(None, inbound.raw.sha256))
    )
    with app.db.atomic():
        # Claim the dedupe key (unless another copy holds it) so that the same
        # message arriving again is a duplicate_message, not a second entry in
        # the quarantine; `release` clears it before processing again.
        taken = (
            Inbound.select()
            .where((Inbound.dedupe_key == key) & (Inbound.id != inbound.id))
            .exists()
        )
        Inbound.update(
            state=INBOUND_QUARANTINED,
            outcome=outcomes.QUARANTINED,
            detail=error[:2000] or "processing failed",
            attempts=Inbound.attempts + (1 if count_attempt else 0),
            processed_at=to_storage(now),
            **({} if taken else {"dedupe_key": key}),
        ).where(Inbound.id == inbound.id).execute()
        if position is not None:
            record_position(position)
    fresh = Inbound.get_by_id(inbound.id)
    return result_of(fresh)


def _safe_dedupe_key(raw: bytes, sha: str) -> str:
    try:
        message_id = parse_message(raw).message_id
    except Exception:  # the parse may be what failed
        message_id = None
    return dedupe_key(message_id, sha)


def record_position(position: ImapPosition) -> None:
    """Advance the source's UIDVALIDITY/UID; never touches the lease columns,
    which another instance may be renewing concurrently. With a ``generation``,
    only while the lease still has it (else LeaseFencedError: the caller's
    transaction rolls back, the message stays for the lease's current holder)."""
    state = ImapState.get_or_none(ImapState.source == position.source)
    if state is None:
        if position.generation is not None:
            raise LeaseFencedError(f"{position.source}: no lease row")
        ImapState.create(
            source=position.source, uidvalidity=position.uidvalidity, last_uid=position.uid
        )
        return
    if state.uidvalidity != position.uidvalidity:
        last_uid = position.uid
    else:
        last_uid = max(state.last_uid or 0, position.uid)
    where = ImapState.id == state.id
    if position.generation is not None:
        # Checked by the UPDATE itself: on PostgreSQL it waits for a concurrent
        # takeover's commit and then sees the new generation.
        where &= ImapState.lease_generation == position.generation
    updated = (
        ImapState.update(uidvalidity=position.uidvalidity, last_uid=last_uid).where(where).execute()
    )
    if not updated and position.generation is not None:
        raise LeaseFencedError(
            f"{position.source}: lease generation {position.generation} no longer holds"
        )


def result_of(inbound: Inbound) -> IngestResult:
    """The result a handled message ended with."""
    return IngestResult(
        outcome=inbound.outcome or inbound.state,
        ticket=inbound.ticket.number if inbound.ticket_id else None,
        message_id=inbound.message_id,
        inbound_id=inbound.id,
        detail=inbound.detail,
    )
