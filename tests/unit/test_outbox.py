"""storage.outbox on SQLite and PostgreSQL: backoff, give-up, idempotency, cap, cool-down, retry."""

from __future__ import annotations

from datetime import timedelta

import peewee as pw
import pytest
from maild.storage import outbox as ob
from maild.storage.models import Outbox, OutboxAttempt, aware

from maild.app import App
from maild.clock import FrozenClock
from maild.outbound import MailRequest, queue_mail


def add_row(clock: FrozenClock, key: str = "ack:1", to: str = "cliente@example.com.br") -> Outbox:
    row, created = ob.enqueue(
        idem_key=key,
        now=clock.now(),
        recipients=[to],
        template="confirmation",
        mail_from="suporte@example.com",
        message_id=f"{key.replace(':', '.')}@example.com",
        raw=b"Subject: x\r\n\r\nbody\r\n",
    )
    assert created
    return row


def fail(row: Outbox, clock: FrozenClock, permanent: bool = False) -> str:
    return ob.record_failure(
        Outbox.get_by_id(row.id), clock.now(), "451 later", permanent=permanent
    )


@pytest.mark.parametrize(
    ("failures", "minutes"), [(1, 1), (2, 5), (3, 15), (4, 60), (5, 60), (20, 60)]
)
def test_backoff_schedule(failures: int, minutes: int) -> None:
    assert ob.next_delay(failures) == timedelta(minutes=minutes)


def test_failures_follow_the_schedule_and_give_up_after_24h(
    app_any_db: App, clock: FrozenClock
) -> None:
    row = add_row(clock)
    start = clock.now()
    waits = []
    while True:
        status = fail(row, clock)
        current = Outbox.get_by_id(row.id)
        if status == ob.OUTBOX_FAILED:
            break
        assert current.status == ob.OUTBOX_PENDING
        wait = aware(current.next_attempt_at) - clock.now()
        waits.append(int(wait.total_seconds() // 60))
        assert ob.claim_due("s", clock.now()) == []  # not due before the wait is over
        clock.advance(minutes=waits[-1])
        assert [r.id for r in ob.claim_due("s", clock.now())] == [row.id]
    assert waits[:5] == [1, 5, 15, 60, 60]
    assert set(waits[4:]) == {60}
    assert clock.now() - start >= timedelta(hours=24)
    assert clock.now() - start < timedelta(hours=25)
    failed = Outbox.get_by_id(row.id)
    assert failed.status == ob.OUTBOX_FAILED
    assert failed.attempts == len(waits) + 1
    assert ob.claim_due("s", clock.now() + timedelta(days=2)) == []
    results = [a.result for a in OutboxAttempt.select().order_by(OutboxAttempt.id)]
    assert results == ["deferred"] * len(waits) + ["failed"]


def test_permanent_failure_is_final(app_any_db: App, clock: FrozenClock) -> None:
    row = add_row(clock)
    assert fail(row, clock, permanent=True) == ob.OUTBOX_FAILED


def test_idempotency_key_is_unique(app_any_db: App, clock: FrozenClock) -> None:
    first = add_row(clock)
    again, created = ob.enqueue(
        idem_key="ack:1",
        now=clock.now(),
        recipients=["other@example.org"],
        template="confirmation",
        mail_from="suporte@example.com",
        message_id="other@example.com",
        raw=b"x",
    )
    assert (again.id, created) == (first.id, False)
    assert Outbox.select().count() == 1
    with pytest.raises(pw.IntegrityError), app_any_db.db.atomic():
        Outbox.create(
            idem_key="ack:1",
            recipients=[],
            template="t",
            mail_from="a@b",
            message_id="m",
            raw=b"",
        )


def test_claim_is_exclusive_until_the_lease_expires(app_any_db: App, clock: FrozenClock) -> None:
    row = add_row(clock)
    assert [r.id for r in ob.claim_due("a", clock.now())] == [row.id]
    assert ob.claim_due("b", clock.now()) == []
    clock.advance(minutes=6)
    [taken] = ob.claim_due("b", clock.now())
    assert not ob.begin_attempt(taken, "a", clock.now())  # a lost it
    assert ob.begin_attempt(taken, "b", clock.now())
    assert ob.in_doubt(taken)
    ob.record_sent(taken, clock.now(), "250 ok")
    assert not ob.in_doubt(taken)
    assert Outbox.get_by_id(row.id).status == ob.OUTBOX_SENT


def test_hourly_cap_per_recipient(app_any_db: App, clock: FrozenClock) -> None:
    cap = 2
    for _ in range(cap):
        assert ob.allowed_automatic_recipients(["a@example.org"], clock.now(), cap) == (
            ["a@example.org"],
            [],
        )
    allowed, suppressed = ob.allowed_automatic_recipients(
        ["A@Example.org", "b@example.org"], clock.now(), cap
    )
    assert (allowed, suppressed) == (["b@example.org"], ["a@example.org"])
    clock.advance(hours=1, seconds=1)
    assert ob.allowed_automatic_recipients(["a@example.org"], clock.now(), cap)[0] == [
        "a@example.org"
    ]


def test_bounce_cooldown(app_any_db: App, clock: FrozenClock) -> None:
    ob.start_cooldown("Cliente@Example.com.br", clock.now(), reason="bounce")
    assert ob.allowed_automatic_recipients(["cliente@example.com.br"], clock.now(), 10) == (
        [],
        ["cliente@example.com.br"],
    )
    clock.advance(hours=24, seconds=1)
    assert ob.allowed_automatic_recipients(["cliente@example.com.br"], clock.now(), 10)[0] == [
        "cliente@example.com.br"
    ]


def test_suppressed_automatic_mail_is_kept_and_never_claimed(
    app_any_db: App, clock: FrozenClock
) -> None:
    settings = app_any_db.settings
    ob.start_cooldown("cliente@example.com.br", clock.now(), reason="bounce")

    def notice(key: str) -> Outbox | None:
        request = MailRequest(
            idem_key=key,
            template="notice_empty",
            to=("cliente@example.com.br",),
            department=settings.default_department,
            subject="Re: nada",
            context={"original_subject": "nada"},
        )
        return queue_mail(settings, app_any_db.renderer, request, clock.now())

    row = notice("notice:1")
    assert row is not None and row.status == ob.OUTBOX_HELD == "suppressed"
    assert ob.claim_due("s", clock.now()) == []
    clock.advance(hours=25)
    later = notice("notice:2")
    assert later is not None and later.status == ob.OUTBOX_PENDING


def test_cap_from_settings_suppresses_the_eleventh(app_any_db: App, clock: FrozenClock) -> None:
    settings = app_any_db.settings
    cap = settings.limits.max_auto_replies_per_recipient_per_hour
    statuses = []
    for n in range(cap + 1):
        request = MailRequest(
            idem_key=f"notice:{n}",
            template="notice_empty",
            to=("cliente@example.com.br",),
            department=settings.default_department,
            subject="x",
            context={"original_subject": "x"},
        )
        row = queue_mail(settings, app_any_db.renderer, request, clock.now())
        assert row is not None
        statuses.append(row.status)
    assert statuses == [ob.OUTBOX_PENDING] * cap + [ob.OUTBOX_HELD]


def test_retry_now(app_any_db: App, clock: FrozenClock) -> None:
    row = add_row(clock)
    fail(row, clock, permanent=True)
    clock.advance(hours=30)
    retried = ob.retry_now(row.id, clock.now())
    assert retried.status == ob.OUTBOX_PENDING
    assert [r.id for r in ob.claim_due("s", clock.now())] == [row.id]
    # The 24 h give-up window starts again from the retry.
    assert fail(row, clock) == ob.OUTBOX_PENDING

    with pytest.raises(ob.OutboxError, match="no outbox message 999"):
        ob.retry_now(999, clock.now())
    sent = add_row(clock, key="ack:2")
    ob.record_sent(sent, clock.now())
    with pytest.raises(ob.OutboxError, match="already sent"):
        ob.retry_now(sent.id, clock.now())


def test_mark_bounced_accepts_brackets(app_any_db: App, clock: FrozenClock) -> None:
    row = add_row(clock)
    ob.record_sent(row, clock.now())
    assert ob.mark_bounced("<ack.1@example.com>").id == row.id  # type: ignore[union-attr]
    assert Outbox.get_by_id(row.id).status == ob.OUTBOX_BOUNCED
    assert ob.mark_bounced("unknown@example.com") is None
