"""What a dead instance (kill -9, a lost host) leaves behind, freed by a live one:
its outbox claims and its IMAP source leases (SPEC §10). The daemon's liveness
pass calls these every few seconds with the liveness verdict as ``alive``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import structlog

from maild.app import App
from maild.liveness import same_host_owner_alive
from maild.storage import outbox as outbox_store
from maild.storage.models import OUTBOX_PENDING, ImapState, Outbox, OutboxAttempt, aware
from maild.transports import MaildirTransport, Transport

log = structlog.get_logger("maild.daemon")


def _maildir_holds(folder: Path, message_id: str, since: float) -> bool:
    """True when Maildir ``folder`` has a message ``message_id`` written after ``since``."""
    wanted = f"<{message_id.strip('<>')}>".encode()
    for sub in ("new", "cur"):
        box = folder / sub
        if not box.is_dir():
            continue
        for path in box.iterdir():
            try:
                if path.stat().st_mtime < since:
                    continue
                with path.open("rb") as fh:
                    head = fh.read(16384).split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
            except OSError:
                continue
            for line in head.splitlines():
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"message-id" and value.strip() == wanted:
                    return True
    return False


def recover_outbox(
    app: App, transport: Transport, alive: Callable[[str], bool] = same_host_owner_alive
) -> int:
    """Free outbox rows claimed by an instance that is gone (kill -9; ``alive`` says).

    Their claims would otherwise hold them for the whole lease (minutes). A row
    whose delivery had begun is "in doubt"; with the Maildir
    transport the doubt can be settled by looking: the message is in the Maildir
    (it was delivered: record it sent) or it is not (Maildir writes are atomic
    renames, so it never arrived: send it). SMTP rows stay in doubt for the sender.
    """
    now = app.clock.now()
    released = 0
    rows = Outbox.select().where(
        (Outbox.status == OUTBOX_PENDING) & Outbox.claimed_by.is_null(False)
    )
    verdicts: dict[str, bool] = {}
    for row in list(rows):
        owner = str(row.claimed_by)
        if owner not in verdicts:
            verdicts[owner] = alive(owner)
        if verdicts[owner]:
            continue
        with app.db.atomic():
            sending = OutboxAttempt.get_or_none(
                (OutboxAttempt.outbox == row.id)
                & (OutboxAttempt.result == outbox_store.ATTEMPT_SENDING)
            )
            if sending is not None and isinstance(transport, MaildirTransport):
                since = (aware(sending.at) or now).timestamp() - 60
                if _maildir_holds(transport.path, row.message_id, since):
                    outbox_store.record_sent(row, now, "found in the Maildir after a crash")
                    released += 1
                    continue
                sending.result = outbox_store.ATTEMPT_DEFERRED
                sending.detail = "interrupted by a crash before reaching the Maildir"
                sending.save()
            Outbox.update(claimed_by=None, claimed_until=None).where(
                (Outbox.id == row.id) & (Outbox.claimed_by == row.claimed_by)
            ).execute()
            released += 1
    return released


def recover_imap_leases(app: App, alive: Callable[[str], bool] = same_host_owner_alive) -> int:
    """Free IMAP source leases held by an instance that is gone (kill -9; ``alive``
    says), so a live one picks the mailboxes up at once, not when the lease expires."""
    released = 0
    for state in list(ImapState.select().where(ImapState.lease_owner.is_null(False))):
        if alive(str(state.lease_owner)):
            continue
        log.info("imap.lease_freed", source=state.source, owner=state.lease_owner)
        released += (
            ImapState.update(lease_owner=None, lease_until=None)
            .where((ImapState.id == state.id) & (ImapState.lease_owner == state.lease_owner))
            .execute()
        )
    return released
