"""Run the scheduler's due work at ``now``: SLA warnings and breaches, customer
reminders, auto-resolve, auto-close, rating reminders, the agents' digest and
housekeeping (SPEC §11).

``run_due`` is what ``maild tick`` and the daemon's scheduler task call; ``next_due``
tells the daemon when to wake. Each ticket's due steps run in one transaction with
the ticket row locked (``FOR UPDATE SKIP LOCKED`` on PostgreSQL: a row another
instance holds is left to the next pass), and each step writes a ``SchedulerMark``
under a unique key together with its mail (outbox, same key), event and status
change. A crash loses only an uncommitted transaction, which the next pass
redoes; a committed step is never done again. On PostgreSQL a session advisory
lock also keeps a second instance from running a pass at the same time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import peewee as pw
import structlog

from maild.app import App
from maild.business_time import calendar_for, due_for, is_business_day, shift_business_time
from maild.due_times import agent_replied, policy_for, ticket_state
from maild.scheduler import mail
from maild.scheduler.plan import ACTIVE, Policy, Step, due_steps, paused_time, plan
from maild.storage import tickets as ticket_store
from maild.storage.db import advisory_unlock, for_update, try_advisory_lock, write_transaction
from maild.storage.models import (
    AddressCooldown,
    AutoMailLog,
    RateWindowNotice,
    SchedulerMark,
    Ticket,
    aware,
    to_storage,
)

log = structlog.get_logger("maild.scheduler")

# The scheduler pass's lock (storage.db.try_advisory_lock: per schema).
ADVISORY_LOCK_NAME = "maild:scheduler"
HOUSEKEEPING_EVERY = timedelta(hours=1)
MARK_RETENTION = timedelta(days=8)  # digest and housekeeping marks: a week is plenty
AUTO_MAIL_WINDOW = timedelta(hours=1)  # the per-recipient cap and rate windows count one hour


@dataclass(frozen=True)
class Action:
    job: str
    ticket: int | None = None
    detail: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"job": self.job, "ticket": self.ticket, "detail": self.detail}


@dataclass
class TickResult:
    now: datetime
    actions: list[Action] = field(default_factory=list)
    skipped: str = ""  # why nothing ran (another instance holds the scheduler)
    next_due: datetime | None = None


def _candidates() -> pw.ModelSelect:
    return Ticket.select().where(Ticket.status.in_([*ACTIVE, "resolved"])).order_by(Ticket.id)


def _marks(ticket_ids: list[int]) -> dict[int, dict[str, datetime]]:
    out: dict[int, dict[str, datetime]] = {}
    if not ticket_ids:
        return out
    query = SchedulerMark.select(SchedulerMark.ticket, SchedulerMark.key, SchedulerMark.done_at)
    for tid, key, done_at in query.where(SchedulerMark.ticket.in_(ticket_ids)).tuples():
        out.setdefault(tid, {})[key] = aware(done_at)  # type: ignore[assignment]
    return out


def _plans(app: App, policy: Policy, now: datetime) -> list[tuple[Ticket, list[Step]]]:
    tickets = list(_candidates())
    out: list[tuple[Ticket, list[Step]]] = []
    for start in range(0, len(tickets), 500):
        chunk = tickets[start : start + 500]
        ids = [t.id for t in chunk]
        replied = agent_replied(ids)
        marks = _marks(ids)
        for ticket in chunk:
            state = ticket_state(ticket, ticket.id in replied)
            out.append((ticket, plan(policy, state, marks.get(ticket.id, {}), now)))
    return out


def next_due(app: App, now: datetime) -> datetime | None:
    """The earliest instant at which some step falls due: after ``now``, or at or
    before it when a step is still owed (left to the next pass)."""
    policy = policy_for(app)
    times = [s.at for _t, steps in _plans(app, policy, now) for s in steps]
    times.extend(t for t in (_next_digest(app, now), _next_housekeeping(now)) if t is not None)
    return min(times) if times else None


# ---------------------------------------------------------------------------
# the pass
# ---------------------------------------------------------------------------


def run_due(app: App, now: datetime, *, dry_run: bool = False) -> TickResult:
    """Do everything due at ``now``; with ``dry_run`` report it and change nothing."""
    result = TickResult(now=now)
    db = app.db
    if not _try_lock(db):
        result.skipped = "another instance is running the scheduler"
        return result
    try:
        if dry_run:
            with db.atomic() as txn:
                _pass(app, now, result, counted=False)
                txn.rollback()
        else:
            _pass(app, now, result, counted=True)
    finally:
        _unlock(db)
    return result


def _pass(app: App, now: datetime, result: TickResult, *, counted: bool) -> None:
    policy = policy_for(app)
    for ticket, steps in _plans(app, policy, now):
        if due_steps(steps, now) or ticket.sla_pauses or _lacks_due_times(ticket):
            try:
                _run_ticket(app, policy, ticket.id, now, result)
            except Exception as exc:  # one ticket (a broken template) must not stop the rest
                log.error(
                    "scheduler.ticket_failed",
                    ticket=ticket.number,
                    error=f"{type(exc).__name__}: {exc}",
                )
    _run_digest(app, now, result)
    _run_housekeeping(app, now, result)
    if counted:
        for action in result.actions:
            app.metrics.scheduler_runs.labels(job=action.job).inc()


def _locked_ticket(db: pw.Database, ticket_id: int) -> Ticket | None:
    query = Ticket.select().where(Ticket.id == ticket_id)
    return for_update(query, db, skip_locked=True).first()


def _run_ticket(
    app: App, policy: Policy, ticket_id: int, now: datetime, result: TickResult
) -> None:
    db = app.db
    atomic = write_transaction(db)
    if db.in_transaction():  # a dry run: a savepoint inside the outer transaction
        atomic = db.atomic()
    with atomic:
        ticket = _locked_ticket(db, ticket_id)
        if ticket is None:
            return  # another instance is working on it: the next pass will see
        _settle_pauses(policy, ticket, now)
        _backfill_due_times(app, ticket)
        met = bool(agent_replied([ticket.id]))
        done = _marks([ticket.id]).get(ticket.id, {})
        for step in due_steps(plan(policy, ticket_state(ticket, met), done, now), now):
            try:
                with db.atomic():
                    SchedulerMark.create(
                        key=step.key, job=step.job, ticket=ticket, done_at=to_storage(now)
                    )
            except pw.IntegrityError:
                continue  # done by another instance since we read the marks
            detail = _STEPS[step.job](app, ticket, step, now)
            result.actions.append(Action(step.job, ticket.number, detail))
            log.info("scheduler.step", job=step.job, ticket=ticket.number)
        ticket.save()


def _lacks_due_times(ticket: Ticket) -> bool:
    return ticket.status in ACTIVE and (
        ticket.first_response_due is None or ticket.resolution_due is None
    )


def _backfill_due_times(app: App, ticket: Ticket) -> None:
    """Tickets opened before the scheduler (or by a path that set none) get the due
    times SPEC §11 defines: creation plus the SLA, in business time."""
    if not _lacks_due_times(ticket):
        return

    cal = calendar_for(app.settings)
    created = aware(ticket.created_at)
    assert created is not None
    sla = app.settings.sla
    if ticket.first_response_due is None:
        ticket.first_response_due = to_storage(due_for(cal, created, sla.first_response))
    if ticket.resolution_due is None:
        ticket.resolution_due = to_storage(due_for(cal, created, sla.resolution))


def _settle_pauses(policy: Policy, ticket: Ticket, now: datetime) -> None:
    """Fold closed waiting periods into the stored due times, so that a ticket's
    due times are plain columns again once it is no longer waiting."""
    if not ticket.sla_pauses:
        return

    state = ticket_state(ticket, False)
    paused = paused_time(policy, state.pauses, None, now)
    if paused:
        for name in ("first_response_due", "resolution_due"):
            value = aware(getattr(ticket, name))
            if value is not None:
                moved = shift_business_time(policy.calendar, value, paused)
                setattr(ticket, name, to_storage(moved))
    ticket.sla_pauses = []


# ---------------------------------------------------------------------------
# the steps
# ---------------------------------------------------------------------------


def _sla_warning(app: App, ticket: Ticket, step: Step, now: datetime) -> str:
    kind = step.job.removesuffix("_warning")
    ticket_store.add_event(ticket, "sla_warning", "system", now, sla=kind, due=_iso(step.due))
    mail.sla_mail(app, ticket, "sla_warning", kind, step, now)
    return f"{kind} due {_desk_time(app, step.due)}"


def _sla_breach(app: App, ticket: Ticket, step: Step, now: datetime) -> str:
    kind = step.job.removesuffix("_breach")
    ticket_store.add_event(ticket, "sla_breached", "system", now, sla=kind, due=_iso(step.due))
    mail.sla_mail(app, ticket, "sla_escalation", kind, step, now)
    return f"{kind} was due {_desk_time(app, step.due)}"


def _reminder(app: App, ticket: Ticket, step: Step, now: datetime) -> str:
    ticket_store.add_event(ticket, "reminder_sent", "system", now)
    mail.customer_reminder(app, ticket, step, now)
    return "customer reminded"


def _autoresolve(app: App, ticket: Ticket, step: Step, now: datetime) -> str:
    ticket_store.set_status(ticket, "resolved", "system", now)
    ticket_store.add_event(ticket, "auto_resolved", "system", now)
    ticket_store.touch(ticket, now)
    mail.autoresolved(app, ticket, step, now)
    return "resolved: no answer from the customer"


def _autoclose(app: App, ticket: Ticket, step: Step, now: datetime) -> str:
    ticket_store.set_status(ticket, "closed", "system", now)
    ticket_store.touch(ticket, now)
    return "closed"


def _rating_reminder(app: App, ticket: Ticket, step: Step, now: datetime) -> str:
    mail.rating_reminder(app, ticket, step, now)
    ticket_store.add_event(ticket, "rating_reminder_sent", "system", now)
    return "rating requested again"


_STEPS = {
    "first_response_warning": _sla_warning,
    "resolution_warning": _sla_warning,
    "first_response_breach": _sla_breach,
    "resolution_breach": _sla_breach,
    "reminder": _reminder,
    "autoresolve": _autoresolve,
    "autoclose": _autoclose,
    "rating_reminder": _rating_reminder,
}


def _desk_time(app: App, value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(calendar_for(app.settings).tz).isoformat(timespec="minutes")


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


# ---------------------------------------------------------------------------
# digest and housekeeping
# ---------------------------------------------------------------------------


def _digest_at(app: App, now: datetime) -> datetime | None:
    """Today's digest instant (local ``digest.at``) if today is a business day."""
    settings = app.settings
    if not settings.digest.enabled or not settings.agents:
        return None
    cal = calendar_for(settings)
    local = now.astimezone(cal.tz)
    if not is_business_day(cal, local.date()):
        return None
    hour, minute = (int(x) for x in settings.digest.at.split(":"))
    return local.replace(hour=hour, minute=minute, second=0, microsecond=0).astimezone(UTC)


def _next_digest(app: App, now: datetime) -> datetime | None:
    settings = app.settings
    if not settings.digest.enabled or not settings.agents:
        return None
    cal = calendar_for(settings)
    day = now.astimezone(cal.tz).date()
    hour, minute = (int(x) for x in settings.digest.at.split(":"))
    for _ in range(30):
        if is_business_day(cal, day):
            at = datetime(day.year, day.month, day.day, hour, minute, tzinfo=cal.tz)
            if at.astimezone(UTC) > now:
                return at.astimezone(UTC)
        day += timedelta(days=1)
    return None


def _run_digest(app: App, now: datetime, result: TickResult) -> None:
    at = _digest_at(app, now)
    if at is None or now < at:
        return
    date_key = at.astimezone(calendar_for(app.settings).tz).date().isoformat()
    for agent in app.settings.agents:
        key = f"digest:{agent.email}:{date_key}"
        with app.db.atomic():
            try:
                with app.db.atomic():
                    SchedulerMark.create(key=key, job="digest", done_at=to_storage(now))
            except pw.IntegrityError:
                continue
            count = mail.digest(app, agent, key, now)
        if count:  # an agent with nothing open gets no mail
            result.actions.append(Action("digest", None, f"{agent.email}: {count} ticket(s)"))


def _next_housekeeping(now: datetime) -> datetime:
    hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return hour + HOUSEKEEPING_EVERY


def _run_housekeeping(app: App, now: datetime, result: TickResult) -> None:
    hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    key = f"housekeeping:{hour.isoformat()}"
    with app.db.atomic():
        try:
            with app.db.atomic():
                SchedulerMark.create(key=key, job="housekeeping", done_at=to_storage(now))
        except pw.IntegrityError:
            return
        window = to_storage(now - AUTO_MAIL_WINDOW)
        stamp = to_storage(now)
        pruned = AutoMailLog.delete().where(AutoMailLog.created_at <= window).execute()
        pruned += RateWindowNotice.delete().where(RateWindowNotice.window_start <= window).execute()
        pruned += AddressCooldown.delete().where(AddressCooldown.until <= stamp).execute()
        pruned += (
            SchedulerMark.delete()
            .where(
                SchedulerMark.ticket.is_null()
                & (SchedulerMark.done_at < to_storage(now - MARK_RETENTION))
            )
            .execute()
        )
    result.actions.append(Action("housekeeping", None, f"{pruned} row(s) pruned"))


# ---------------------------------------------------------------------------
# several instances
# ---------------------------------------------------------------------------


def _try_lock(db: pw.Database) -> bool:
    return try_advisory_lock(db, ADVISORY_LOCK_NAME)


def _unlock(db: pw.Database) -> None:
    advisory_unlock(db, ADVISORY_LOCK_NAME)
