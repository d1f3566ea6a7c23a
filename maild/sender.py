"""The outbox sender: claims due rows, hands them to a transport, records the result.

The transports are in ``maild.transports``. A 4xx answer
or a connection problem defers the row with backoff (SPEC §4); a 5xx answer
fails it for good, with a system note on its ticket. A failure before the
message is offered (connection, TLS, EHLO, AUTH) says nothing about the message
and always defers. TLS failures never fall back to plaintext.

A row whose previous delivery was interrupted (the sender died between starting
DATA and recording the answer) is sent again, byte for byte with the same
Message-ID (SPEC §4, RFC 5321 §6.1: a duplicate is preferred to a loss; mail
stores and clients collapse identical copies); the attempt log says so. The claim
is renewed right before DATA; a row whose claim was lost meanwhile is left to
the sender that holds it.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
from collections.abc import Sequence
from datetime import datetime

import structlog

from maild.app import App
from maild.storage import outbox as ob
from maild.storage import tickets as store
from maild.storage.models import Outbox, Ticket, aware, to_storage
from maild.transports import DeliveryResult, Transport

log = structlog.get_logger("maild.sender")

INTERRUPTED_DETAIL = (
    "delivery interrupted: the sender stopped while handing this message over; "
    "sent again as an identical copy (same Message-ID)"
)


def default_owner() -> str:
    """A claim owner unique to this sender: host, process and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def _note_failure(
    row: Outbox, recipients: Sequence[str], verb: str, detail: str, now: datetime
) -> None:
    """A system note and a delivery_failed event on the row's ticket (SPEC §4)."""
    if not row.ticket_id:
        return
    ticket = Ticket.get_by_id(row.ticket_id)
    store.add_entry(
        ticket,
        kind="system",
        now=now,
        text=f"Mail to {', '.join(recipients)} {verb} (outbox {row.id}): {detail}",
    )
    store.add_event(
        ticket,
        "delivery_failed",
        "system",
        now,
        outbox=row.id,
        recipients=list(recipients),
        error=detail,
    )


class OutboxSender:
    """Drains due outbox rows. ``run_once`` is one pass; the daemon loops it."""

    def __init__(self, app: App, transport: Transport, owner: str | None = None) -> None:
        self.app = app
        self.transport = transport
        # Claims are per owner: two senders must never share a name, or one could
        # take over (and send) rows the other is still working on.
        self.owner = owner or default_owner()
        self._outage_logged = False
        self.stop_requested = threading.Event()
        # Results of deliveries not committed yet: they commit with the next row's
        # "being delivered" mark, or at the end of the pass (see _send).
        self._results: list[tuple[Outbox, DeliveryResult]] = []

    def run_once(self, limit: int = 50) -> int:
        """Send what is due now; return how many rows were claimed."""
        rows = ob.claim_due(self.owner, self.app.clock.now(), limit)
        try:
            doubtful = ob.in_doubt_ids(rows)
            for index, row in enumerate(rows):
                if self.stop_requested.is_set():
                    # Shutting down: the rest go back to the queue untouched.
                    ob.release_claims(rows[index:], self.owner)
                    break
                if row.id in doubtful:
                    self._interrupted(row)
                self._send(row)
        finally:
            try:
                self._commit_results()
            finally:
                self.transport.close()
        return len(rows)

    def stop(self, *, abort: bool = False) -> None:
        """Finish the message in hand, then stop (SIGTERM); safe from any thread.
        ``abort`` also cuts a connection that hangs (the shutdown grace ran out)."""
        self.stop_requested.set()
        if abort:
            cut = getattr(self.transport, "abort", None)
            if cut is not None:
                cut()

    def drain(self, max_rounds: int = 100) -> int:
        total = 0
        for _ in range(max_rounds):
            n = self.run_once()
            total += n
            if n == 0:
                break
        return total

    def _interrupted(self, row: Outbox) -> None:
        """Close the attempt that never reported back; the row is then sent again."""
        with self.app.db.atomic():
            ob.record_interrupted(row, self.app.clock.now(), INTERRUPTED_DETAIL)
        log.warning("outbox.resending_interrupted", outbox_id=row.id, template=row.template)

    def _send(self, row: Outbox) -> None:
        claimed = True

        def before_data() -> bool:
            # Renew the claim and commit the "being delivered" mark (storage.outbox),
            # in one commit with the results of the rows delivered before this one: one
            # durable commit per mail, not two. A crash before that commit leaves the
            # previous row marked as being delivered, so it is sent again (an identical
            # copy, SPEC §4) -- as a crash between its DATA and its own commit would.
            nonlocal claimed
            with self.app.db.atomic():
                self._record_results()
                claimed = ob.begin_attempt(row, self.owner, self.app.clock.now())
            return claimed

        result = self.transport.deliver(
            row.mail_from, list(row.recipients), bytes(row.raw), before_data=before_data
        )
        if not claimed:
            log.warning("outbox.claim_lost", outbox_id=row.id, owner=self.owner)
            return
        self._results.append((row, result))

    def _commit_results(self) -> None:
        """Commit the results still held (the end of a pass)."""
        if self._results:
            with self.app.db.atomic():
                self._record_results()

    def _record_results(self) -> None:
        # Cleared only once all are recorded: the caller's transaction rolls back
        # whole when one fails, and the end of the pass tries again.
        for row, result in self._results:
            self._record(row, result)
        self._results.clear()

    def _partly_refused(self, row: Outbox, result: DeliveryResult, now: datetime) -> None:
        if result.deferred:
            # The same message, for the recipients that asked us to try later.
            retry, created = ob.enqueue(
                idem_key=f"{row.idem_key}:retry:{row.id}",
                now=now,
                recipients=result.deferred,
                ticket=row.ticket_id,
                inbound=row.inbound_id,
                template=row.template,
                automatic=row.automatic,
                mail_from=row.mail_from,
                message_id=row.message_id,
                subject=row.subject,
                raw=bytes(row.raw),
            )
            if created:  # first retry after the usual backoff, like any 4xx
                Outbox.update(next_attempt_at=to_storage(now + ob.next_delay(1))).where(
                    Outbox.id == retry.id
                ).execute()
        if result.rejected:
            _note_failure(row, result.rejected, "refused", result.detail, now)

    def _record(self, row: Outbox, result: DeliveryResult) -> None:
        now = self.app.clock.now()
        with self.app.db.atomic():
            if result.ok:
                ob.record_sent(row, now, result.detail)
                self._partly_refused(row, result, now)
                self._outage_logged = False
                queued = aware(row.created_at)
                self.app.metrics.delivery(
                    "sent", (now - queued).total_seconds() if queued else None
                )
                log.info(
                    "outbox.sent", outbox_id=row.id, template=row.template, detail=result.detail
                )
                return
            status = ob.record_failure(row, now, result.detail, permanent=result.permanent)
            self.app.metrics.delivery(status if status == ob.OUTBOX_FAILED else "deferred")
            if status == ob.OUTBOX_FAILED:
                _note_failure(row, row.recipients, "failed", result.detail, now)
        if status == ob.OUTBOX_FAILED:
            log.warning("outbox.failed", outbox_id=row.id, error=result.detail)
        elif not self._outage_logged:
            # One line per outage, not one per message.
            log.warning("outbox.deferred", outbox_id=row.id, error=result.detail)
            self._outage_logged = True
