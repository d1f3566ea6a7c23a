"""IMAP source leases: one instance works a source at a time, sources spread across
the live instances, and a lease generation fences an instance that lost its lease.

A lease is the ``lease_owner``/``lease_until`` pair of the source's ``ImapState`` row,
renewed while held and free once it expires or its owner is found dead
(``maild.takeover.recover_imap_leases``, every few seconds). Each time the lease
changes hands ``lease_generation`` goes up; the runner puts the generation it took
in every ``ImapPosition``, and the pipeline refuses a position write whose
generation is no longer the row's (``LeaseFencedError``): a stalled instance that
lost its lease can neither move the position nor decide a message its successor
now owns.

Spreading (SPEC §10): on PostgreSQL every instance with IMAP sources is counted
through ``maild.liveness`` (a shared advisory lock each holds while alive). An
instance takes a free lease only while it holds fewer than its fair share,
``ceil(sources / live instances)``, and one that holds more (an instance joined)
hands one source over at a time after finishing the batch in hand. A lease left
free for ``ORPHAN_SECONDS`` while everyone is at its share is taken anyway: no
other instance works that source (their ``[[imap]]`` lists differ), and unread
mail is worse than an uneven spread. On SQLite (one host) there is no share.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import peewee as pw

from maild.app import App
from maild.errors import StorageUnavailableError
from maild.faults import DATABASE_ERRORS
from maild.storage.models import ImapState, aware, to_storage

__all__ = [
    "LEASE_RENEW_SECONDS",
    "LEASE_SECONDS",
    "ORPHAN_SECONDS",
    "SHARE_CHECK_SECONDS",
    "STANDBY_RETRY_SECONDS",
    "LeaseShare",
    "SourceLease",
    "fair_share",
]

LEASE_SECONDS = 90  # SPEC §10: a lease not renewed within this long is free
LEASE_RENEW_SECONDS = 30  # renew well inside LEASE_SECONDS
# A standby instance asks for the lease this often: with the daemon's liveness pass
# freeing a dead holder's lease (maild.liveness), a takeover stays inside 10 s.
STANDBY_RETRY_SECONDS = 3.0
# How often a holder asks whether it holds more than its share, and how long the
# live-instance count is trusted: a newly started instance gets its share within
# a few seconds.
SHARE_CHECK_SECONDS = 2.0
LIVE_COUNT_SECONDS = 1.0
ORPHAN_SECONDS = 30.0

Log = Callable[..., None]


def fair_share(sources: int, instances: int) -> int:
    """The most sources one of ``instances`` live instances should hold."""
    return -(-max(0, sources) // max(1, instances))


class LeaseShare:
    """One per instance, shared by its runners: how many sources it may hold.

    ``live_instances`` answers how many instances work IMAP sources right now
    (None: unknown, or one host: no limit). ``lock`` serializes this instance's
    take and hand-over decisions, so two runners never both step over the line.
    """

    def __init__(
        self,
        owner: str,
        sources: int,
        live_instances: Callable[[], int | None],
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.owner = owner
        self.sources = sources
        self.lock = threading.Lock()
        self._live_instances = live_instances
        self._monotonic = monotonic
        self._instances: int | None = None
        self._asked_at: float | None = None
        self.beyond: set[str] = set()  # sources taken beyond the share (orphans)

    def limit(self) -> int | None:
        """This instance's fair share now; None when there is no limit."""
        now = self._monotonic()
        if self._asked_at is None or now - self._asked_at >= LIVE_COUNT_SECONDS:
            self._instances = self._live_instances()
            self._asked_at = now
        if self._instances is None:
            return None
        return fair_share(self.sources, self._instances)

    def held(self) -> int:
        """How many leases this instance holds within its share (by the database;
        orphans taken beyond the share do not count)."""
        count = ImapState.select().where(ImapState.lease_owner == self.owner).count()
        return count - len(self.beyond)


class SourceLease:
    """The lease of one source as one runner sees it."""

    def __init__(
        self,
        app: App,
        source: str,
        owner: str,
        share: LeaseShare | None,
        log: Log,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.source = source
        self.owner = owner
        self.share = share
        self.held = False
        self.generation: int | None = None  # the one we took, while held
        self._log = log
        self._monotonic = monotonic
        self._renewed_at = 0.0
        self._share_checked_at = 0.0
        self._free_since: float | None = None
        self._waiting_logged = False

    # -- taking and keeping ------------------------------------------------------------

    def renew(self) -> bool:
        """Take the lease if free, expired or ours (and within our share), or extend
        it; True when we hold it."""
        try:
            held = self._extend() if self.held else self._take_within_share()
        except DATABASE_ERRORS as exc:
            raise StorageUnavailableError(f"database: {exc}") from exc
        if held and not self.held:
            self._log("info", "imap.lease_acquired", owner=self.owner, generation=self.generation)
        elif not held and self.held:
            self._log("warning", "imap.lease_lost", owner=self.owner, generation=self.generation)
        if held:
            self._renewed_at = self._monotonic()
            self._free_since = None
            self._waiting_logged = False
        else:
            self._not_held()
            if not self._waiting_logged:
                self._log("info", "imap.lease_waiting", owner=self.owner)
                self._waiting_logged = True
        self.held = held
        return held

    def keep(self) -> bool:
        """Renew when due; False once the lease is lost."""
        if self._monotonic() - self._renewed_at < LEASE_RENEW_SECONDS:
            return self.held
        return self.renew()

    def _now(self) -> datetime:
        return to_storage(self.app.clock.now())

    def _extend(self) -> bool:
        until = self._now() + timedelta(seconds=LEASE_SECONDS)
        return bool(
            ImapState.update(lease_until=until)
            .where(
                (ImapState.source == self.source)
                & (ImapState.lease_owner == self.owner)
                & (ImapState.lease_generation == self.generation)
            )
            .execute()
        )

    def _take_within_share(self) -> bool:
        if self.share is None:
            return self._take()
        with self.share.lock:
            limit = self.share.limit()
            if limit is None or self.share.held() < limit:
                return self._take()
            if not self._orphaned():
                return False
            taken = self._take()
            if taken:
                self.share.beyond.add(self.source)
                self._log("info", "imap.lease_orphan_taken", owner=self.owner, share=limit)
            return taken

    def _take(self) -> bool:
        now = self._now()
        until = now + timedelta(seconds=LEASE_SECONDS)
        mine = ImapState.lease_owner == self.owner
        with self.app.db.atomic():
            taken = (
                ImapState.update(
                    lease_owner=self.owner,
                    lease_until=until,
                    # Changing hands (from nobody included) is a new generation.
                    lease_generation=pw.Case(
                        None,
                        [(mine, ImapState.lease_generation)],
                        ImapState.lease_generation + 1,
                    ),
                )
                .where(
                    (ImapState.source == self.source)
                    & (
                        ImapState.lease_owner.is_null()
                        | mine
                        | ImapState.lease_until.is_null()
                        | (ImapState.lease_until < now)
                    )
                )
                .execute()
            )
            if taken:
                self.generation = int(
                    ImapState.select(ImapState.lease_generation)
                    .where(ImapState.source == self.source)
                    .scalar()
                )
                return True
        if ImapState.select().where(ImapState.source == self.source).exists():
            return False
        try:
            with self.app.db.atomic():
                ImapState.create(
                    source=self.source,
                    last_uid=0,
                    lease_owner=self.owner,
                    lease_until=until,
                    lease_generation=1,
                )
        except pw.IntegrityError:
            return False  # another instance created it first; its lease stands
        self.generation = 1
        return True

    def _orphaned(self) -> bool:
        """Free (by the row) for ORPHAN_SECONDS in a row of asking."""
        row: Any = ImapState.get_or_none(ImapState.source == self.source)
        until = aware(row.lease_until) if row is not None else None
        free = (
            row is None or row.lease_owner is None or until is None or until < self.app.clock.now()
        )
        if not free:
            self._free_since = None
            return False
        now = self._monotonic()
        if self._free_since is None:
            self._free_since = now
        return now - self._free_since >= ORPHAN_SECONDS

    # -- handing over ------------------------------------------------------------------

    def hand_over_if_above_share(self) -> bool:
        """Release the lease when this instance holds more than its fair share
        (another instance joined); True when released. Call between batches."""
        if not self.held or self.share is None or self.source in self.share.beyond:
            return False
        now = self._monotonic()
        if now - self._share_checked_at < SHARE_CHECK_SECONDS:
            return False
        self._share_checked_at = now
        try:
            with self.share.lock:
                limit = self.share.limit()
                if limit is None:
                    return False
                held = self.share.held()
                if held <= limit:
                    return False
                self.release()
        except DATABASE_ERRORS as exc:
            raise StorageUnavailableError(f"database: {exc}") from exc
        self._log("info", "imap.lease_handed_over", owner=self.owner, held=held, share=limit)
        self._waiting_logged = True  # it is waiting by choice: no "lease_waiting" line
        return True

    def release(self) -> None:
        """Give the lease up (stopping, or handing it over); a failure lets it expire."""
        if not self.held:
            return
        generation = self.generation
        self._not_held()
        try:
            ImapState.update(lease_owner=None, lease_until=None).where(
                (ImapState.source == self.source)
                & (ImapState.lease_owner == self.owner)
                & (ImapState.lease_generation == generation)
            ).execute()
        except DATABASE_ERRORS as exc:  # it expires by itself
            self._log("warning", "imap.lease_release_failed", error=repr(exc))
            return
        self._log("info", "imap.lease_released", owner=self.owner, generation=generation)

    def fenced(self, error: BaseException) -> None:
        """A position write was refused: the lease changed hands under us."""
        self._log(
            "warning",
            "imap.lease_fenced",
            owner=self.owner,
            generation=self.generation,
            error=str(error),
        )
        self._not_held()

    def _not_held(self) -> None:
        self.held = False
        self.generation = None
        if self.share is not None:
            self.share.beyond.discard(self.source)
