"""IMAP intake whose sole purpose is to turn one ``[[imap]]`` mailbox into ``ingest`` calls.

One :class:`ImapRunner` per source, each in its own thread (imapclient blocks). A pass
(:meth:`ImapRunner.run_once`) selects the folder, checks UIDVALIDITY against the
``ImapState`` row, fetches UIDs above ``last_uid`` in batches -- sizes first, so an
oversize message is never downloaded whole -- and hands each message to
``maild.pipeline.ingest``, which records the position in the same transaction as the
outcome. Only after that commit is the message flagged ``\\Seen`` and moved.

Between passes the runner waits in IDLE (renewed well before the 29-minute limit) or
polls; a pass runs at least every ``poll_seconds`` either way. Failures are logged once
per outage and retried with exponential backoff and jitter; nothing raises out of
:meth:`ImapRunner.run`. All sleeping goes through ``stop_event.wait`` so a stop is
immediate. Several daemons may share a database: a lease in ``ImapState`` lets one
instance at a time work a source, and sources spread across the live instances
(SPEC §10; see ``maild.intake.leases``).
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import structlog
from imapclient import IMAPClient

from maild.app import App
from maild.config import ImapSource
from maild.errors import StorageUnavailableError
from maild.faults import DATABASE_ERRORS
from maild.inbound_store import ImapPosition, Incoming
from maild.intake.imap_client import (
    BACKOFF_BASE_SECONDS,
    BACKOFF_CAP_SECONDS,
    CAP_IDLE,
    CONNECTION_ERRORS,
    FETCH_HEADER,
    FETCH_META,
    ITEM_HEADER,
    ITEM_SIZE,
    RESP_BYE,
    RESP_EXISTS,
    RESP_RECENT,
    Backoff,
    BodyReader,
    DefaultImapConnector,
    Filing,
    ImapConnectionLostError,
    ImapConnector,
    chunks,
    is_response,
    quiet_imaplib,
)
from maild.intake.leases import (
    SHARE_CHECK_SECONDS,
    STANDBY_RETRY_SECONDS,
    LeaseShare,
    SourceLease,
)
from maild.metrics import (
    SOURCE_CONNECTED,
    SOURCE_FAILING,
    SOURCE_NEEDS_AUTHORIZATION,
    SOURCE_STANDBY,
    SOURCE_STARTING,
    SOURCE_STOPPED,
)
from maild.oauth import NeedsAuthorizationError
from maild.pipeline import ingest_batch, process_inbound
from maild.policy.types import QUARANTINED
from maild.records import IngestResult, LeaseFencedError
from maild.storage.models import INBOUND_RECEIVED, ImapState, Inbound

__all__ = ["ImapRunner"]

log = structlog.get_logger("maild.imap")

IDLE_RENEW_SECONDS = 25 * 60  # RFC 2177: servers may drop an IDLE after 29 minutes
IDLE_CHECK_SECONDS = 1.0  # longest single idle_check, so a stop is seen within a second


class ImapRunner:
    """Works one IMAP source until ``stop_event`` is set; see the module docstring."""

    def __init__(
        self,
        app: App,
        source: ImapSource,
        connector: ImapConnector | None = None,
        *,
        owner: str,
        stop_event: threading.Event,
        on_ingested: Callable[[IngestResult], None] | None = None,
        rng: random.Random | None = None,
        batch_size: int | None = None,
        backoff_base: float = BACKOFF_BASE_SECONDS,
        backoff_cap: float = BACKOFF_CAP_SECONDS,
        share: LeaseShare | None = None,
    ) -> None:
        self.app = app
        self.source = source
        self.connector: ImapConnector = connector or DefaultImapConnector(tokens=app.oauth)
        self.owner = owner
        self.stop_event = stop_event
        self.on_ingested = on_ingested
        # Group commit (SPEC §2.3): UIDs per FETCH round of sizes and flags, and the
        # messages and bytes of one batch ([storage] batch_messages, batch_bytes).
        self.batch_size = batch_size or app.settings.storage.batch_messages
        self.batch_bytes = app.settings.storage.batch_bytes
        self.backoff = Backoff(rng or random.Random(), backoff_base, backoff_cap)
        self.lease = SourceLease(app, source.name, owner, share, self._log)
        self._client: IMAPClient | None = None
        self._swept = False  # leftovers of an earlier run finished on this connection
        self.filing = Filing(source, self._log)
        self._failing = False
        self._exists_at_select: int | None = None  # EXISTS answered by the pass's SELECT
        self._reauthenticate_at: datetime | None = None  # XOAUTH2: the token's end, less a margin
        self._state(SOURCE_STARTING)

    @property
    def holds_lease(self) -> bool:
        return self.lease.held

    # -- the loop ----------------------------------------------------------------------

    def run(self) -> None:
        """Work the source until ``stop_event`` is set; never raises."""
        try:
            while not self.stop_event.is_set():
                try:
                    # Mail that arrived while a pass worked was announced (EXISTS) in
                    # the answers to its commands, which IDLE never repeats: pass again
                    # until one finds nothing and heard of nothing new, then IDLE.
                    while (self.run_once() or self._announced()) and not self.stop_event.is_set():
                        pass
                    if not self.holds_lease:
                        self._wait(min(self.source.poll_seconds, STANDBY_RETRY_SECONDS))
                        continue
                    self._recovered()
                    self._state(SOURCE_CONNECTED)
                    if not self.stop_event.is_set():
                        self.wait_for_mail()
                    if self._token_due():
                        # A new login with a fresh token; mail that arrives meanwhile is
                        # above last_uid and fetched by the next pass.
                        self._disconnect("reauthenticate")
                except NeedsAuthorizationError as exc:
                    self._needs_authorization(exc)
                    self._disconnect("needs_authorization", graceful=False)
                    self._wait(self.source.poll_seconds)
                except LeaseFencedError as exc:
                    # Another instance holds the source now; what we had in hand
                    # rolled back and is left to it.
                    self.lease.fenced(exc)
                    self._disconnect("lease_fenced")
                    self._state(SOURCE_STANDBY)
                except StorageUnavailableError as exc:
                    # The message in hand stays unflagged on the server; keep the connection.
                    self._failed(exc, "storage")
                    self._wait(self.backoff.next_delay())
                except Exception as exc:  # one broken source never takes the daemon down
                    self._failed(exc, "connection" if isinstance(exc, CONNECTION_ERRORS) else "bug")
                    self._disconnect("error", graceful=False)
                    self._wait(self.backoff.next_delay())
        finally:
            self.close()
            self._state(SOURCE_STOPPED)

    def run_once(self) -> int:
        """One pass: connect if needed, fetch and ingest new mail; the count processed."""
        if not self._renew_lease():
            self._disconnect("lease_not_held")
            self._state(SOURCE_STANDBY)
            return 0
        client = self._connect()
        selected = client.select_folder(self.source.folder)
        uidvalidity = int(selected[b"UIDVALIDITY"])
        self._exists_at_select = int(selected.get(b"EXISTS", 0))
        last_uid = self._position(uidvalidity)
        if not self._swept:
            self._sweep(client, uidvalidity, last_uid)
            self._swept = True
        found = client.search(["UID", f"{last_uid + 1}:*"])
        uids = sorted(uid for uid in found if uid > last_uid)  # "n:*" always matches the last
        processed = 0
        for batch in chunks(uids, self.batch_size):
            if self.stop_event.is_set() or self.lease.hand_over_if_above_share():
                break  # handed over: the next pass finds the lease not held
            if not self._renew_lease():
                break
            processed += self._process_batch(client, uidvalidity, batch)
        return processed

    def _announced(self) -> bool:
        """Whether the server announced more messages during the last pass than its
        SELECT counted: one that arrived just as a SEARCH found nothing. imaplib
        keeps such untagged EXISTS aside (the next SELECT clears them)."""
        exists, self._exists_at_select = self._exists_at_select, None
        imap = getattr(self._client, "_imap", None)
        if exists is None or imap is None:
            return False
        try:
            return max(int(value) for value in imap.untagged_responses.get("EXISTS", [0])) > exists
        except (TypeError, ValueError):
            return False

    def wait_for_mail(self) -> bool:
        """Wait until new mail is signalled (True), or poll time, lease loss or stop (False).

        IDLE when the server offers it and the source allows it; plain waiting otherwise.
        Returns at the latest after ``poll_seconds``, so a pass runs at least that often.
        """
        client = self._client
        deadline = time.monotonic() + self.source.poll_seconds
        if client is None or not (self.source.idle and client.has_capability(CAP_IDLE)):
            while not self.stop_event.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._keep_lease() or self._token_due():
                    break
                self._wait(min(remaining, SHARE_CHECK_SECONDS))
            return False
        return self._idle(client, min(deadline, time.monotonic() + IDLE_RENEW_SECONDS))

    def close(self) -> None:
        """Log out, release the lease and this thread's database connection."""
        self._disconnect("stopped")
        self._release_lease()
        with contextlib.suppress(Exception):
            if not self.app.db.is_closed():
                self.app.db.close()

    # -- one batch ---------------------------------------------------------------------

    def _process_batch(self, client: IMAPClient, uidvalidity: int, uids: Sequence[int]) -> int:
        limit = self.app.settings.attachments.max_message_bytes
        meta = client.fetch(uids, FETCH_META)
        present = [uid for uid in uids if uid in meta]  # others were expunged meanwhile
        sizes = {uid: int(meta[uid].get(ITEM_SIZE, 0)) for uid in present}
        normal = [uid for uid in present if sizes[uid] <= limit]
        oversize = {uid for uid in present if sizes[uid] > limit}
        headers = client.fetch(sorted(oversize), FETCH_HEADER) if oversize else {}
        bodies = BodyReader(client, normal, sizes, self.batch_bytes)
        done: list[tuple[int, IngestResult]] = []
        # Group commit (SPEC §2.3): messages go to the pipeline in batches, bounded
        # by count and by bytes held in memory.
        pending: list[tuple[int, Incoming]] = []
        pending_bytes = 0

        def flush() -> None:
            nonlocal pending_bytes
            if pending:
                results = ingest_batch(self.app, [item for _, item in pending])
                uids = [uid for uid, _ in pending]
                done.extend(zip(uids, results, strict=True))
            pending.clear()
            pending_bytes = 0

        try:
            for uid in present:
                if self.stop_event.is_set():
                    break  # what is in hand is finished; the rest waits for next time
                position = ImapPosition(self.source.name, uidvalidity, uid, self.lease.generation)
                if uid in oversize:
                    head = headers.get(uid, {}).get(ITEM_HEADER)
                    item = (
                        None
                        if head is None
                        else Incoming(head, self._ingest_source, position, sizes[uid])
                    )
                else:
                    item = self._incoming(bodies, uid, position)
                if item is None:
                    continue
                pending.append((uid, item))
                pending_bytes += len(item.raw)
                # The batch holds the only reference: a large body is freed by its
                # flush, not kept alive by this loop while the next one is fetched.
                del item
                if pending_bytes >= self.batch_bytes or len(pending) >= self.batch_size:
                    flush()
            flush()
        except BaseException:
            with contextlib.suppress(Exception):
                self.filing.after_commit(client, [(uid, r.outcome) for uid, r in done])
            raise
        self._log(
            "info",
            "imap.fetched",
            count=len(done),
            bytes=sum(sizes[uid] for uid, _ in done),
            oversize=len(oversize),
        )
        self.filing.after_commit(client, [(uid, r.outcome) for uid, r in done])
        for _, result in done:
            self._report_ingested(result)
        return len(done)

    def _incoming(self, bodies: BodyReader, uid: int, position: ImapPosition) -> Incoming | None:
        raw = bodies.get(uid)
        return None if raw is None else Incoming(raw, self._ingest_source, position)

    @property
    def _ingest_source(self) -> str:
        return f"imap:{self.source.name}"

    def _sweep(self, client: IMAPClient, uidvalidity: int, last_uid: int) -> None:
        """Finish what an earlier run (or another instance) left below ``last_uid``:
        messages stored but not processed (a fenced or crashed holder) are processed
        now, then committed ones are flagged and moved."""
        if last_uid <= 0:
            return
        self._process_left_over(uidvalidity, last_uid)
        criteria: list[Any] = ["UID", f"1:{last_uid}"]
        if self.filing.destination(None) is None and self.filing.destination(QUARANTINED) is None:
            criteria.append("UNSEEN")  # nothing is moved: only flags can be missing
        leftovers = [uid for uid in client.search(criteria) if uid <= last_uid]
        done: list[tuple[int, str | None]] = []
        try:
            for chunk in chunks(leftovers, 500):
                rows = Inbound.select(Inbound.imap_uid, Inbound.outcome).where(
                    (Inbound.imap_source == self.source.name)
                    & (Inbound.imap_uidvalidity == uidvalidity)
                    & (Inbound.imap_uid.in_(list(chunk)))
                    & (Inbound.state != INBOUND_RECEIVED)
                )
                done.extend((int(row.imap_uid), row.outcome) for row in rows)
        except DATABASE_ERRORS as exc:
            raise StorageUnavailableError(f"database: {exc}") from exc
        if done:
            self.filing.after_commit(client, sorted(done))
            self._log("info", "imap.swept", count=len(done))

    def _process_left_over(self, uidvalidity: int, last_uid: int) -> None:
        """Stored messages of this source still ``received`` below the position: the
        lease's previous holder stored them and lost the lease (or died) before
        deciding them, and no later pass fetches them again."""
        try:
            left = list(
                Inbound.select().where(
                    (Inbound.imap_source == self.source.name)
                    & (Inbound.imap_uidvalidity == uidvalidity)
                    & (Inbound.imap_uid <= last_uid)
                    & (Inbound.state == INBOUND_RECEIVED)
                )
            )
            for inbound in left:
                position = ImapPosition(
                    self.source.name, uidvalidity, inbound.imap_uid, self.lease.generation
                )
                self._report_ingested(process_inbound(self.app, inbound, position=position))
        except DATABASE_ERRORS as exc:
            raise StorageUnavailableError(f"database: {exc}") from exc
        if left:
            self._log("info", "imap.left_over_processed", count=len(left))

    def _report_ingested(self, result: IngestResult) -> None:
        if self.on_ingested is None:
            return
        try:
            self.on_ingested(result)
        except Exception as exc:  # the caller's hook must not break intake
            self._log("error", "imap.callback_failed", error=repr(exc))

    # -- position ----------------------------------------------------------------------

    def _position(self, uidvalidity: int) -> int:
        """``last_uid`` for this UIDVALIDITY; a change starts over from UID 0."""
        try:
            state = ImapState.get_or_none(ImapState.source == self.source.name)
            if state is None:
                ImapState.create(source=self.source.name, uidvalidity=uidvalidity, last_uid=0)
                return 0
            if state.uidvalidity == uidvalidity:
                return int(state.last_uid or 0)
            if state.uidvalidity is not None:
                # Re-fetching everything is safe: known Message-IDs become duplicate_message.
                self._log(
                    "warning",
                    "imap.uidvalidity_changed",
                    old=state.uidvalidity,
                    new=uidvalidity,
                    last_uid=state.last_uid,
                )
            updated = (
                ImapState.update(uidvalidity=uidvalidity, last_uid=0)
                .where(
                    (ImapState.source == self.source.name)
                    & (ImapState.lease_generation == self.lease.generation)
                )
                .execute()
            )
            if not updated:
                raise LeaseFencedError(f"{self.source.name}: lease changed hands")
            self._swept = True  # nothing below UID 0 to finish
            return 0
        except DATABASE_ERRORS as exc:
            raise StorageUnavailableError(f"database: {exc}") from exc

    # -- lease (SPEC §10; maild.intake.leases) --------------------------------------

    def _renew_lease(self) -> bool:
        """Take or extend the lease if free, expired or ours; True when we hold it."""
        return self.lease.renew()

    def _keep_lease(self) -> bool:
        """Renew the lease when due; False once it is lost or handed over."""
        if self.lease.hand_over_if_above_share():
            return False
        return self.lease.keep()

    def _release_lease(self) -> None:
        self.lease.release()

    # -- connection --------------------------------------------------------------------

    def _connect(self) -> IMAPClient:
        if self._client is not None:
            return self._client
        client = self.connector.connect(self.source)
        quiet_imaplib(client)
        self._client = client
        if self.source.auth == "xoauth2":
            self._reauthenticate_at = self.app.oauth.reauthenticate_at(self.source.name)
        self._state(SOURCE_CONNECTED)
        self._swept = False
        self.filing.forget_folders()
        self._log(
            "info",
            "imap.connected",
            host=self.source.host,
            port=self.source.port,
            security=self.source.security,
            idle=bool(self.source.idle and client.has_capability(CAP_IDLE)),
        )
        return client

    def _disconnect(self, reason: str, *, graceful: bool = True) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            if graceful:
                client.logout()
            else:
                client.shutdown()  # a dead peer must not hold us up for a LOGOUT timeout
        except Exception:
            with contextlib.suppress(Exception):
                client.shutdown()
        self._log("info", "imap.disconnected", reason=reason)

    def _idle(self, client: IMAPClient, until: float) -> bool:
        client.idle()
        alive = True
        try:
            while not self.stop_event.is_set():
                remaining = until - time.monotonic()
                if remaining <= 0 or not self._keep_lease() or self._token_due():
                    return False
                timeout = min(IDLE_CHECK_SECONDS, remaining)
                started = time.monotonic()
                responses = client.idle_check(timeout=timeout)
                if any(is_response(resp, RESP_BYE) for resp in responses):
                    alive = False
                    raise ImapConnectionLostError("server said BYE during IDLE")
                if any(
                    is_response(resp, RESP_EXISTS) or is_response(resp, RESP_RECENT)
                    for resp in responses
                ):
                    return True
                if not responses and time.monotonic() - started < timeout / 2:
                    # Readable but nothing parsed: imapclient swallows EOF here. Leaving IDLE
                    # tells a live connection from a dead one (DONE fails on the latter).
                    return False
            return False
        finally:
            if alive:
                client.idle_done()

    # -- errors and waiting ------------------------------------------------------------

    def _failed(self, exc: BaseException, kind: str) -> None:
        """Log the first failure of an outage; the rest are retried quietly."""
        self._state(SOURCE_FAILING, f"{kind}: {type(exc).__name__}: {exc}")
        if self._failing:
            return
        self._failing = True
        fields: dict[str, Any] = {"kind": kind, "error_type": type(exc).__name__, "error": str(exc)}
        if kind == "bug":
            self._log("error", "imap.error", exc_info=exc, **fields)
        else:
            self._log("warning", "imap.error", **fields)

    def _token_due(self) -> bool:
        """XOAUTH2: the access token this connection logged in with is about to end
        (servers such as Microsoft's drop the session then), by the App's clock."""
        due = self._reauthenticate_at
        return due is not None and self._client is not None and self.app.clock.now() >= due

    def _needs_authorization(self, exc: NeedsAuthorizationError) -> None:
        """Logged once; the source waits for `maild oauth authorize`, the others go on."""
        if self._state_name != SOURCE_NEEDS_AUTHORIZATION:
            self._log("error", "imap.needs_authorization", error=str(exc))
        self._failing = True  # so that a later success logs imap.recovered
        self._state(SOURCE_NEEDS_AUTHORIZATION, str(exc))

    def _recovered(self) -> None:
        if self._failing:
            self._log("info", "imap.recovered", failures=self.backoff.failures)
        self._failing = False
        self.backoff.reset()

    def _state(self, state: str, detail: str = "") -> None:
        self._state_name = state
        self.app.metrics.set_source_state(self.source.name, state, detail)

    def _wait(self, seconds: float) -> None:
        self.stop_event.wait(max(0.0, seconds))

    def _log(self, level: str, event: str, **fields: Any) -> None:
        getattr(log, level)(event, source=self.source.name, **fields)
