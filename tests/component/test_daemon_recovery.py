"""Start-up recovery of the daemon: leases left by a killed process are freed."""

from __future__ import annotations

import os
import socket
from datetime import timedelta

from maild.storage.models import ImapState, to_storage

from maild.app import App
from maild.daemon import recover_imap_leases


def _dead_pid() -> int:
    pid = 2**22 - 1  # above the default pid_max: never a live process
    return pid


def test_imap_leases_of_dead_local_processes_are_freed(app: App) -> None:
    host = socket.gethostname()
    until = to_storage(app.clock.now() + timedelta(seconds=90))
    ImapState.create(source="dead", lease_owner=f"{host}:{_dead_pid()}", lease_until=until)
    # A live process other than us (our own pid at start-up can only be a previous run).
    ImapState.create(source="alive", lease_owner=f"{host}:{os.getppid()}", lease_until=until)
    ImapState.create(source="remote", lease_owner="elsewhere:1", lease_until=until)

    assert recover_imap_leases(app) == 1

    owners = {s.source: s.lease_owner for s in ImapState.select()}
    assert owners == {
        "dead": None,
        "alive": f"{host}:{os.getppid()}",
        "remote": "elsewhere:1",
    }


def test_a_stopping_sender_sends_nothing_more_and_frees_its_claims(app: App) -> None:
    from maild.storage.models import OUTBOX_PENDING, Outbox

    from maild.pipeline import ingest
    from maild.sender import OutboxSender
    from maild.transports import MaildirTransport
    from tests.component.conftest import mail

    ingest(app, mail())
    pending = Outbox.select().where(Outbox.status == OUTBOX_PENDING).count()
    assert pending >= 2  # confirmation + agent notification

    sender = OutboxSender(app, MaildirTransport(app.settings.daemon.data_dir / "outbox"))
    sender.stop()
    assert sender.run_once() == pending  # claimed, then handed straight back

    rows = list(Outbox.select())
    assert all(r.status == OUTBOX_PENDING and r.claimed_by is None for r in rows)
    assert not any((app.settings.daemon.data_dir / "outbox" / "new").iterdir())


def test_a_message_that_keeps_killing_the_process_is_quarantined(app: App) -> None:
    from maild.storage.models import INBOUND_QUARANTINED, Inbound

    from maild.inbound_store import store_inbound
    from maild.pipeline import MAX_ATTEMPTS
    from maild.recovery import recover
    from tests.component.conftest import mail

    inbound = store_inbound(app, mail(), "lmtp")
    # Each start that found it in hand counted an attempt, then the process died.
    Inbound.update(attempts=MAX_ATTEMPTS).where(Inbound.id == inbound.id).execute()

    (result,) = recover(app)

    assert result.outcome == "quarantined"
    row = Inbound.get_by_id(inbound.id)
    assert row.state == INBOUND_QUARANTINED
    assert "interrupted" in (row.detail or "")


def test_recovery_counts_an_attempt_and_processes(app: App) -> None:
    from maild.storage.models import Inbound

    from maild.inbound_store import store_inbound
    from maild.recovery import recover
    from tests.component.conftest import mail

    inbound = store_inbound(app, mail(), "lmtp")

    (result,) = recover(app)

    assert result.outcome == "created"
    assert Inbound.get_by_id(inbound.id).attempts == 2  # the recovery, then the processing
