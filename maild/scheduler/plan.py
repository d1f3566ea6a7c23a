"""What the scheduler owes one ticket, and when: pure, ``now`` and the ticket's state in.

Sole purpose: turn a ticket snapshot (its due times, status, waiting period, SLA
pauses and the jobs already done for it) into the list of ``Step``s SPEC §11 asks
for, each with the instant it falls due. The runner executes the steps due at
``now``; the daemon sleeps until the earliest step still ahead. One function
answers both, so what ``maild tick`` does and when ``maild run`` wakes agree.

Job keys (also the scheduler marks and the outbox idempotency keys):

* ``first_response:warn:<ticket id>``, ``first_response:breach:<id>``,
  ``resolution:warn:<id>``, ``resolution:breach:<id>`` -- once per ticket;
* ``remind:<id>:<waiting since>``, ``autoresolve:<id>:<waiting since>`` -- once
  per waiting period;
* ``close:<id>:<resolved at>`` -- once per resolution;
* ``rating_reminder:<id>`` -- once per ticket.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from maild.business_time import (
    BusinessCalendar,
    add_business_time,
    business_time_between,
    parse_duration,
    shift_business_time,
    subtract_business_time,
)

# SPEC §11: the rating reminder goes out two days after the resolution.
RATING_REMINDER_AFTER = timedelta(days=2)

ACTIVE = ("open", "in_progress", "waiting_customer")

SLA_KINDS = ("first_response", "resolution")


@dataclass(frozen=True)
class Policy:
    """The settings the plan depends on, parsed once."""

    calendar: BusinessCalendar
    warn_before: timedelta
    pause_while_waiting: bool
    remind_after: str
    autoresolve_after: str
    close_after: timedelta

    @classmethod
    def from_settings(cls, settings: object, calendar: BusinessCalendar) -> Policy:
        sla = settings.sla  # type: ignore[attr-defined]
        tickets = settings.tickets  # type: ignore[attr-defined]
        warn = parse_duration(sla.warn_before)
        close = parse_duration(tickets.close_after)
        return cls(
            calendar=calendar,
            warn_before=timedelta(days=warn.days, minutes=warn.minutes)
            if not warn.days
            else _business_days_as_time(calendar, warn.days, warn.minutes),
            pause_while_waiting=sla.pause_while_waiting,
            remind_after=tickets.remind_after,
            autoresolve_after=tickets.autoresolve_after,
            close_after=timedelta(days=close.days, minutes=close.minutes),
        )


def _business_days_as_time(cal: BusinessCalendar, days: int, minutes: int) -> timedelta:
    """A warning written in days (``"1d"``) as the business time of that many full days."""
    per_day = timedelta(0)
    for start, end in cal.windows:
        per_day += datetime.combine(datetime.min, end) - datetime.combine(datetime.min, start)
    return per_day * days + timedelta(minutes=minutes)


@dataclass(frozen=True)
class TicketState:
    """What the plan reads of a ticket (aware UTC datetimes)."""

    id: int
    status: str
    created_at: datetime
    first_response_due: datetime | None
    resolution_due: datetime | None
    first_response_met: bool
    waiting_since: datetime | None
    pauses: tuple[tuple[datetime, datetime], ...]
    resolved_at: datetime | None
    rated: bool


@dataclass(frozen=True)
class Step:
    job: str  # first_response_warning, first_response_breach, ..., autoclose, rating_reminder
    key: str
    at: datetime
    due: datetime | None = None  # the SLA due time a warning or breach is about


def paused_time(
    policy: Policy,
    pauses: Sequence[tuple[datetime, datetime]],
    waiting_since: datetime | None,
    now: datetime,
) -> timedelta:
    """Business time spent waiting for the customer, the open period up to ``now``."""
    if not policy.pause_while_waiting:
        return timedelta(0)
    total = sum(
        (business_time_between(policy.calendar, start, end) for start, end in pauses),
        timedelta(0),
    )
    if waiting_since is not None:
        total += business_time_between(policy.calendar, waiting_since, now)
    return total


def effective_due(
    policy: Policy, base: datetime | None, state: TicketState, now: datetime
) -> datetime | None:
    """A due time moved later by the waiting periods (``sla.pause_while_waiting``)."""
    if base is None:
        return None
    paused = paused_time(policy, state.pauses, state.waiting_since, now)
    return shift_business_time(policy.calendar, base, paused).astimezone(UTC) if paused else base


def plan(
    policy: Policy, state: TicketState, done: Mapping[str, datetime], now: datetime
) -> list[Step]:
    """Every step still owed to the ticket, due or not, in the order they run."""
    steps: list[Step] = []
    waiting = state.status == "waiting_customer"
    paused = waiting and policy.pause_while_waiting
    tid = state.id
    for kind, base, met in (
        ("first_response", state.first_response_due, state.first_response_met),
        ("resolution", state.resolution_due, state.status not in ACTIVE),
    ):
        breach_key = f"{kind}:breach:{tid}"
        if base is None or met or paused or breach_key in done or state.status not in ACTIVE:
            continue
        due = effective_due(policy, base, state, now)
        assert due is not None
        warn_key = f"{kind}:warn:{tid}"
        if warn_key not in done:
            warn_at = subtract_business_time(policy.calendar, due, policy.warn_before)
            steps.append(Step(f"{kind}_warning", warn_key, warn_at.astimezone(UTC), due))
        steps.append(Step(f"{kind}_breach", breach_key, due, due))
    if waiting and state.waiting_since is not None:
        cycle = state.waiting_since.isoformat()
        remind_key = f"remind:{tid}:{cycle}"
        resolve_key = f"autoresolve:{tid}:{cycle}"
        if remind_key not in done:
            at = add_business_time(
                policy.calendar, state.waiting_since, parse_duration(policy.remind_after)
            )
            steps.append(Step("reminder", remind_key, at.astimezone(UTC)))
        elif resolve_key not in done:
            at = add_business_time(
                policy.calendar, done[remind_key], parse_duration(policy.autoresolve_after)
            )
            steps.append(Step("autoresolve", resolve_key, at.astimezone(UTC)))
    if state.status == "resolved" and state.resolved_at is not None:
        if not state.rated and f"rating_reminder:{tid}" not in done:
            at = state.resolved_at + RATING_REMINDER_AFTER
            steps.append(Step("rating_reminder", f"rating_reminder:{tid}", at))
        close_key = f"close:{tid}:{state.resolved_at.isoformat()}"
        if close_key not in done:
            steps.append(Step("autoclose", close_key, state.resolved_at + policy.close_after))
    return steps


def due_steps(steps: Sequence[Step], now: datetime) -> list[Step]:
    """The steps to run at ``now``. A warning whose breach is due as well is not sent:
    the breach says more (a daemon that was down wakes past both); nor is a rating
    reminder for a ticket that is being closed (resolved long before an upgrade)."""
    due = [s for s in steps if s.at <= now]
    breached = {s.job.removesuffix("_breach") for s in due if s.job.endswith("_breach")}
    closing = any(s.job == "autoclose" for s in due)
    return [
        s
        for s in due
        if not (s.job.endswith("_warning") and s.job.removesuffix("_warning") in breached)
        and not (closing and s.job == "rating_reminder")
    ]
