"""Pure parts of the scheduler: business time with breaks, backwards and between two
instants, and the plan of one ticket at its boundaries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from maild.business_time import (
    BusinessCalendar,
    business_time_between,
    due_for,
    is_open,
    next_opening,
    subtract_business_time,
)
from maild.scheduler.plan import Policy, TicketState, due_steps, plan

SP = ZoneInfo("America/Sao_Paulo")


def cal(breaks: tuple[str, ...] = (), holidays: str | None = "BR") -> BusinessCalendar:
    return BusinessCalendar.from_settings(
        ["mon", "tue", "wed", "thu", "fri"],
        "08:30",
        "17:30",
        "America/Sao_Paulo",
        holidays,
        breaks,
    )


def sp(*args: int) -> datetime:
    return datetime(*args, tzinfo=SP)


def test_breaks_are_closed() -> None:
    c = cal(("12:00-13:30",))
    assert is_open(c, sp(2026, 11, 24, 11, 59))
    assert not is_open(c, sp(2026, 11, 24, 12, 0))
    assert not is_open(c, sp(2026, 11, 24, 13, 29))
    assert is_open(c, sp(2026, 11, 24, 13, 30))
    assert next_opening(c, sp(2026, 11, 24, 12, 10)) == sp(2026, 11, 24, 13, 30)
    assert due_for(c, sp(2026, 11, 24, 11, 0), "2h") == sp(2026, 11, 24, 14, 30)
    assert due_for(c, sp(2026, 11, 24, 12, 30), "30m") == sp(2026, 11, 24, 14, 0)


@pytest.mark.parametrize(
    "bad", [("07:00-09:00",), ("12:00-13:00", "12:30-14:00"), ("17:00-18:00",)]
)
def test_breaks_must_fit_inside_the_day(bad: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="breaks"):
        cal(bad)


def test_subtract_is_the_inverse_of_add() -> None:
    c = cal(("12:00-13:30",))
    # Monday 09:00 minus 1h: Friday 16:30 -- but Friday 20/11 is a holiday: Thursday.
    assert subtract_business_time(c, sp(2026, 11, 23, 9, 0), timedelta(hours=1)) == sp(
        2026, 11, 19, 17, 0
    )
    assert subtract_business_time(c, sp(2026, 11, 24, 14, 0), timedelta(hours=1)) == sp(
        2026, 11, 24, 11, 30
    )
    for start in (sp(2026, 11, 24, 10, 0), sp(2026, 11, 19, 16, 0), sp(2026, 11, 21, 10, 0)):
        due = due_for(c, start, "5h")
        back = subtract_business_time(c, due, timedelta(hours=5))
        assert business_time_between(c, back, due) == timedelta(hours=5)


def test_business_time_between() -> None:
    c = cal(("12:00-13:30",))
    assert business_time_between(c, sp(2026, 11, 19, 16, 30), sp(2026, 11, 23, 9, 30)) == (
        timedelta(hours=2)
    )
    assert business_time_between(c, sp(2026, 11, 24, 11, 0), sp(2026, 11, 24, 14, 0)) == (
        timedelta(hours=1, minutes=30)
    )
    assert business_time_between(c, sp(2026, 11, 24, 14, 0), sp(2026, 11, 24, 11, 0)) == (
        timedelta(0)
    )


def test_the_state_holiday_counts_only_with_the_state() -> None:
    # 09/07 is São Paulo state's Revolução Constitucionalista day: not a national holiday.
    national, state = cal(holidays="BR"), cal(holidays="BR-SP")
    assert is_open(national, sp(2026, 7, 9, 10, 0))
    assert not is_open(state, sp(2026, 7, 9, 10, 0))


def policy(**kw: object) -> Policy:
    values = {
        "calendar": cal(),
        "warn_before": timedelta(hours=1),
        "pause_while_waiting": True,
        "remind_after": "3d",
        "autoresolve_after": "4d",
        "close_after": timedelta(days=7),
    }
    values.update(kw)
    return Policy(**values)  # type: ignore[arg-type]


def state(**kw: object) -> TicketState:
    values = {
        "id": 1,
        "status": "open",
        "created_at": sp(2026, 11, 24, 10, 0),
        "first_response_due": sp(2026, 11, 24, 14, 0).astimezone(UTC),
        "resolution_due": sp(2026, 12, 2, 10, 0).astimezone(UTC),
        "first_response_met": False,
        "waiting_since": None,
        "pauses": (),
        "resolved_at": None,
        "rated": False,
    }
    values.update(kw)
    return TicketState(**values)  # type: ignore[arg-type]


def jobs(steps: list) -> list[str]:
    return [s.job for s in steps]


def test_plan_warning_and_breach_boundaries() -> None:
    p, s = policy(), state()
    assert jobs(due_steps(plan(p, s, {}, sp(2026, 11, 24, 12, 59)), sp(2026, 11, 24, 12, 59))) == []
    now = sp(2026, 11, 24, 13, 0)
    assert jobs(due_steps(plan(p, s, {}, now), now)) == ["first_response_warning"]
    now = sp(2026, 11, 24, 14, 0)
    # Both due (nobody ran at 13:00): only the breach.
    assert jobs(due_steps(plan(p, s, {}, now), now)) == ["first_response_breach"]
    done = {"first_response:breach:1": now}
    assert jobs(due_steps(plan(p, s, done, now), now)) == []


def test_plan_nothing_for_a_paused_ticket_and_everything_moved_after() -> None:
    p = policy()
    waiting = state(
        status="waiting_customer", waiting_since=sp(2026, 11, 24, 10, 30), first_response_met=True
    )
    now = sp(2026, 12, 2, 12, 0)  # past the original resolution due time
    assert [j for j in jobs(plan(p, waiting, {}, now)) if "resolution" in j] == []
    resumed = state(
        first_response_met=True, pauses=((sp(2026, 11, 24, 10, 30), sp(2026, 11, 26, 10, 30)),)
    )
    steps = {s.job: s.at for s in plan(p, resumed, {}, now)}
    assert steps["resolution_breach"] == sp(2026, 12, 4, 10, 0)
    assert steps["resolution_warning"] == sp(2026, 12, 4, 9, 0)


def test_plan_rating_reminder_not_when_closing() -> None:
    p = policy()
    resolved = state(status="resolved", resolved_at=sp(2026, 10, 1, 10, 0).astimezone(UTC))
    now = sp(2026, 11, 24, 10, 0)
    assert jobs(due_steps(plan(p, resolved, {}, now), now)) == ["autoclose"]
    now = sp(2026, 10, 3, 10, 0)
    assert jobs(due_steps(plan(p, resolved, {}, now), now)) == ["rating_reminder"]
    rated = state(status="resolved", resolved_at=sp(2026, 10, 1, 10, 0), rated=True)
    assert jobs(due_steps(plan(p, rated, {}, now), now)) == []


def test_warn_before_in_days_is_a_full_business_day() -> None:
    from maild.config import Settings, SlaSettings

    settings = Settings(sla=SlaSettings(warn_before="1d"))
    p = Policy.from_settings(settings, cal())
    assert p.warn_before == timedelta(hours=9)
