"""IMAP source leases on the database (SPEC §10, maild.intake.leases): sources spread
across the live instances, and a lease generation fences an instance that lost its
lease. The live-instance count is given here (on PostgreSQL ``maild.liveness``
counts it; tests/integration/test_imap_spread.py runs real instances)."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from maild.storage.db import open_database
from maild.storage.models import INBOUND_RECEIVED, ImapState, Inbound, Ticket

from maild.app import App
from maild.inbound_store import ImapPosition
from maild.intake.leases import (
    LEASE_SECONDS,
    ORPHAN_SECONDS,
    SHARE_CHECK_SECONDS,
    LeaseShare,
    SourceLease,
)
from maild.liveness import Liveness
from maild.pipeline import ingest
from maild.records import LeaseFencedError
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

SOURCES = ["s1", "s2", "s3", "s4"]


class Instance:
    """One instance's share and the leases of its runners, on a hand-moved clock."""

    def __init__(self, app: App, owner: str, live: list[int], now: list[float]) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.share = LeaseShare(
            owner, len(SOURCES), lambda: live[0], monotonic=lambda: now[0] + 1000
        )
        self.leases = {
            name: SourceLease(app, name, owner, self.share, self._log, monotonic=lambda: now[0])
            for name in SOURCES
        }

    def _log(self, level: str, event: str, **fields: Any) -> None:
        self.events.append((event, fields))

    def renew_all(self) -> None:
        for lease in self.leases.values():
            lease.renew()

    def held(self) -> set[str]:
        return {name for name, lease in self.leases.items() if lease.held}

    def named(self, event: str) -> list[dict[str, Any]]:
        return [fields for name, fields in self.events if name == event]


def owners() -> dict[str, str | None]:
    return {row.source: row.lease_owner for row in ImapState.select()}


def test_a_joining_instance_gets_its_share_one_hand_over_at_a_time(app_any_db: App) -> None:
    live, now = [1], [0.0]
    first = Instance(app_any_db, "host-a:1", live, now)
    second = Instance(app_any_db, "host-b:2", live, now)

    first.renew_all()  # alone: every source
    assert first.held() == set(SOURCES)
    generations = {row.source: row.lease_generation for row in ImapState.select()}
    assert generations == dict.fromkeys(SOURCES, 1)

    live[0] = 2  # the second instance started
    second.renew_all()
    assert second.held() == set()  # nothing free: it waits
    now[0] += SHARE_CHECK_SECONDS
    handed = [n for n, lease in first.leases.items() if lease.hand_over_if_above_share()]
    assert len(handed) == 2  # 4 held, share 2: two go, one after the other, no more
    assert [f["held"] for f in first.named("imap.lease_handed_over")] == [4, 3]

    first.renew_all()  # at its share: it takes nothing back
    assert len(first.held()) == 2
    second.renew_all()
    assert second.held() == set(handed)
    assert list(owners().values()).count("host-b:2") == 2
    for row in ImapState.select().where(ImapState.source.in_(handed)):
        assert row.lease_generation == 2  # changed hands: a new generation

    now[0] += SHARE_CHECK_SECONDS  # balanced: nobody hands anything over
    for instance in (first, second):
        assert not any(lease.hand_over_if_above_share() for lease in instance.leases.values())

    # The second dies; its leases are freed (maild.takeover.recover_imap_leases).
    live[0] = 1
    now[0] += SHARE_CHECK_SECONDS
    ImapState.update(lease_owner=None, lease_until=None).where(
        ImapState.lease_owner == "host-b:2"
    ).execute()
    first.renew_all()
    assert first.held() == set(SOURCES)
    assert set(owners().values()) == {"host-a:1"}


def test_a_source_nobody_else_works_is_taken_beyond_the_share(app_any_db: App) -> None:
    live, now = [2], [0.0]
    only = Instance(app_any_db, "host-a:1", live, now)  # the other instance has no such source
    only.renew_all()
    assert len(only.held()) == 2

    now[0] += ORPHAN_SECONDS - 1
    only.renew_all()
    assert len(only.held()) == 2
    now[0] += 1
    only.renew_all()
    assert only.held() == set(SOURCES)
    assert len(only.named("imap.lease_orphan_taken")) == 2
    now[0] += SHARE_CHECK_SECONDS  # kept: handing over would only have it taken back
    assert not any(lease.hand_over_if_above_share() for lease in only.leases.values())

    # One is released (a stop): it is an orphan again only after the same wait.
    orphan = next(iter(only.share.beyond))
    only.leases[orphan].release()
    assert orphan not in only.share.beyond and len(only.share.beyond) == 1
    only.renew_all()
    assert orphan not in only.held()
    now[0] += ORPHAN_SECONDS
    only.renew_all()
    assert only.held() == set(SOURCES)


def test_an_expired_lease_changes_hands_with_a_new_generation(app_any_db: App) -> None:
    first = SourceLease(app_any_db, "s1", "host-a:1", None, lambda *a, **k: None)
    second = SourceLease(app_any_db, "s1", "host-b:2", None, lambda *a, **k: None)
    assert first.renew() and first.generation == 1
    assert not second.renew()
    assert first.renew() and first.generation == 1  # renewing is no change of hands

    app_any_db.clock.advance(seconds=LEASE_SECONDS + 1)  # type: ignore[attr-defined]
    assert second.renew() and second.generation == 2
    assert not first.renew()  # it notices at its next renewal
    assert first.generation is None


def raw_mail(n: int) -> bytes:
    return (
        f"From: Cliente <cliente{n}@empresa.example.com.br>\r\n"
        "To: suporte@example.com\r\n"
        f"Subject: Pedido {n}\r\n"
        f"Message-ID: <fence-{n}@cliente.example>\r\n"
        "\r\nOlá.\r\n"
    ).encode()


def test_a_stale_generation_moves_no_position_and_decides_nothing(app_any_db: App) -> None:
    holder = SourceLease(app_any_db, "suporte", "host-a:1", None, lambda *a, **k: None)
    assert holder.renew()
    stale = holder.generation
    assert stale is not None
    ingest(app_any_db, raw_mail(1), "imap:suporte", ImapPosition("suporte", 7, 1, stale))
    assert ImapState.get().last_uid == 1

    # Another instance took the lease over (it expired while this one stalled).
    ImapState.update(lease_owner="host-b:2", lease_generation=stale + 1).execute()
    with pytest.raises(LeaseFencedError):
        ingest(app_any_db, raw_mail(2), "imap:suporte", ImapPosition("suporte", 7, 2, stale))
    with pytest.raises(LeaseFencedError):  # nor back to another UIDVALIDITY
        ingest(app_any_db, raw_mail(3), "imap:suporte", ImapPosition("suporte", 8, 1, stale))

    state = ImapState.get()
    assert (state.uidvalidity, state.last_uid) == (7, 1)
    assert Ticket.select().count() == 1
    left = Inbound.select().where(Inbound.state == INBOUND_RECEIVED).order_by(Inbound.id)
    assert [(i.imap_uidvalidity, i.imap_uid) for i in left] == [(7, 2), (8, 1)]

    # The holder's write of the same message goes through, once.
    ingest(app_any_db, raw_mail(2), "imap:suporte", ImapPosition("suporte", 7, 2, stale + 1))
    assert ImapState.get().last_uid == 2
    assert Ticket.select().count() == 2
    # Without a generation (recovery at start) there is no fencing.
    ingest(app_any_db, raw_mail(4), "imap:suporte", ImapPosition("suporte", 7, 3))
    assert ImapState.get().last_uid == 3


def test_live_imap_instances_are_counted_per_deployment(database_url: str) -> None:
    """On PostgreSQL: the instances holding the shared lock of this schema, not
    those without IMAP sources, nor another deployment's (another schema)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("one host on SQLite: no count")
    other_schema = f"t_{secrets.token_hex(6)}"
    admin = open_database(database_url)
    admin.execute_sql(f'CREATE SCHEMA "{other_schema}"')
    db = open_database(database_url)
    other_db = open_database(database_url.rsplit("%3D", 1)[0] + f"%3D{other_schema}")
    made = [
        Liveness(db, "host-a:101", imap=True),
        Liveness(db, "host-b:202", imap=True),
        Liveness(db, "host-c:303"),  # no [[imap]]: not counted
        Liveness(other_db, "host-d:404", imap=True),  # another deployment
    ]
    try:
        for liveness in made:
            liveness.start()
        first, second, plain, other = made
        assert first.imap_instances() == 2
        assert second.imap_instances() == 2
        assert plain.imap_instances() is None
        assert other.imap_instances() == 1

        second.close()  # as the server does when the instance dies
        wait_for(lambda: first.imap_instances() == 1, 5, "the dead instance to go uncounted")
    finally:
        for liveness in made:
            liveness.close()
        db.close()
        other_db.close()
        admin.execute_sql(f'DROP SCHEMA "{other_schema}" CASCADE')
        admin.close()
