"""Tables for business-hours arithmetic: SLA due dates, openings, holidays, DST."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from maild.business_time import (
    BusinessCalendar,
    BusinessDuration,
    add_business_time,
    due_for,
    format_due,
    is_business_day,
    is_open,
    next_opening,
    parse_duration,
)

SP = ZoneInfo("America/Sao_Paulo")
NY = ZoneInfo("America/New_York")

# The shape of the default settings.toml: mon-fri 08:30-17:30, Brazilian holidays.
BR_CAL = BusinessCalendar.from_settings(
    days=["mon", "tue", "wed", "thu", "fri"],
    open="08:30",
    close="17:30",
    timezone="America/Sao_Paulo",
    holidays="BR",
)
NY_CAL = BusinessCalendar.from_settings(
    days=["mon", "tue", "wed", "thu", "fri"],
    open="08:30",
    close="17:30",
    timezone="America/New_York",
    holidays=None,
)
# Open all day every day: business time equals real time, which exposes DST.
NY_ALWAYS = BusinessCalendar(
    days=frozenset(range(7)),
    open=time(0, 0),
    close=time(23, 59),
    tz=NY,
    holiday_country=None,
)


def sp(*args: int) -> datetime:
    return datetime(*args, tzinfo=SP)  # type: ignore[misc]


def ny(*args: int) -> datetime:
    return datetime(*args, tzinfo=NY)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4h", BusinessDuration(minutes=240)),
        ("30m", BusinessDuration(minutes=30)),
        ("1h30m", BusinessDuration(minutes=90)),
        ("6d", BusinessDuration(days=6)),
        ("1d4h", BusinessDuration(days=1, minutes=240)),
        (" 2H ", BusinessDuration(minutes=120)),
        ("1h 15m", BusinessDuration(minutes=75)),
        ("90m", BusinessDuration(minutes=90)),
    ],
)
def test_parse_duration(text: str, expected: BusinessDuration) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text", ["", "4", "h", "4x", "0h", "0d0m", "-4h", "4h30", "30m1h", "1.5h", "quatro horas"]
)
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_negative_duration_rejected() -> None:
    with pytest.raises(ValueError, match="negative"):
        BusinessDuration(minutes=-1)


@pytest.mark.parametrize(
    ("start", "duration", "expected", "why"),
    [
        (sp(2026, 11, 13, 17, 0), "4h", sp(2026, 11, 16, 12, 0), "friday 30 min, weekend"),
        (sp(2026, 11, 13, 16, 30), "4h", sp(2026, 11, 16, 11, 30), "friday 1h, weekend"),
        (sp(2026, 11, 19, 16, 30), "4h", sp(2026, 11, 23, 11, 30), "Consciência Negra friday"),
        (sp(2026, 11, 19, 17, 0), "4h", sp(2026, 11, 23, 12, 0), "Consciência Negra friday"),
        (sp(2026, 11, 17, 7, 0), "4h", sp(2026, 11, 17, 12, 30), "before opening"),
        (sp(2026, 11, 17, 18, 0), "4h", sp(2026, 11, 18, 12, 30), "after closing"),
        (sp(2026, 11, 17, 17, 30), "1h", sp(2026, 11, 18, 9, 30), "exactly at closing"),
        (sp(2026, 11, 20, 10, 0), "4h", sp(2026, 11, 23, 12, 30), "on a holiday"),
        (sp(2026, 12, 24, 15, 0), "4h", sp(2026, 12, 28, 10, 0), "christmas friday"),
        (sp(2026, 4, 2, 17, 0), "1h", sp(2026, 4, 6, 9, 0), "good friday"),
        (sp(2026, 2, 16, 9, 0), "1h", sp(2026, 2, 16, 10, 0), "carnival is a working day"),
        (sp(2026, 11, 14, 10, 0), "30m", sp(2026, 11, 16, 9, 0), "saturday"),
        (sp(2026, 11, 16, 9, 0), "1h30m", sp(2026, 11, 16, 10, 30), "same day"),
        (sp(2026, 11, 16, 13, 30), "4h", sp(2026, 11, 16, 17, 30), "uses the day up exactly"),
        (sp(2026, 11, 16, 9, 0), "18h", sp(2026, 11, 18, 9, 0), "two whole days"),
        (sp(2026, 1, 15, 16, 0), "2h", sp(2026, 1, 16, 9, 0), "summer: no DST since 2019"),
        # business days
        (sp(2026, 11, 16, 10, 0), "6d", sp(2026, 11, 25, 10, 0), "6 days over a holiday"),
        (sp(2026, 11, 14, 10, 0), "1d", sp(2026, 11, 16, 17, 30), "saturday: close of monday"),
        (sp(2026, 11, 13, 18, 0), "2d", sp(2026, 11, 17, 17, 30), "after closing friday"),
        (sp(2026, 11, 17, 7, 0), "1d", sp(2026, 11, 17, 17, 30), "before opening"),
        (sp(2026, 11, 20, 9, 0), "1d", sp(2026, 11, 23, 17, 30), "on a holiday"),
        (sp(2026, 11, 16, 10, 0), "1d4h", sp(2026, 11, 17, 14, 0), "days then hours"),
        (sp(2026, 11, 16, 15, 0), "1d4h", sp(2026, 11, 18, 10, 0), "days then hours, spills"),
    ],
)
def test_due_for_sao_paulo(start: datetime, duration: str, expected: datetime, why: str) -> None:
    due = due_for(BR_CAL, start, duration)
    assert due == expected, why
    assert due.tzinfo == SP
    assert due.utcoffset() == timedelta(hours=-3)


@pytest.mark.parametrize(
    ("cal", "start", "duration", "expected", "offset_hours"),
    [
        # spring forward on Sunday 2026-03-08: friday is EST, monday EDT
        (NY_CAL, ny(2026, 3, 6, 16, 0), "4h", ny(2026, 3, 9, 11, 0), -4),
        (NY_CAL, ny(2026, 3, 6, 10, 0), "1d", ny(2026, 3, 9, 10, 0), -4),
        # fall back on Sunday 2026-11-01
        (NY_CAL, ny(2026, 10, 30, 17, 0), "1h", ny(2026, 11, 2, 9, 0), -5),
        # around the clock: the skipped and the repeated hour are real time
        (NY_ALWAYS, ny(2026, 3, 8, 0, 0), "4h", ny(2026, 3, 8, 5, 0), -4),
        (NY_ALWAYS, ny(2026, 11, 1, 0, 0), "4h", ny(2026, 11, 1, 3, 0), -5),
    ],
)
def test_due_for_dst_zone(
    cal: BusinessCalendar,
    start: datetime,
    duration: str,
    expected: datetime,
    offset_hours: int,
) -> None:
    due = due_for(cal, start, duration)
    assert due == expected
    assert (due.hour, due.minute) == (expected.hour, expected.minute)
    assert due.utcoffset() == timedelta(hours=offset_hours)


def test_start_in_other_timezone_is_converted() -> None:
    start = datetime(2026, 11, 16, 12, 0, tzinfo=UTC)  # 09:00 in Sao Paulo
    due = due_for(BR_CAL, start, "1h")
    assert due == sp(2026, 11, 16, 10, 0)
    assert due.tzinfo == SP


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (sp(2026, 11, 16, 8, 29), False),
        (sp(2026, 11, 16, 8, 30), True),
        (sp(2026, 11, 16, 17, 29), True),
        (sp(2026, 11, 16, 17, 30), False),
        (sp(2026, 11, 14, 10, 0), False),  # saturday
        (sp(2026, 11, 20, 10, 0), False),  # holiday
        (sp(2026, 12, 25, 10, 0), False),  # christmas
    ],
)
def test_is_open(at: datetime, expected: bool) -> None:
    assert is_open(BR_CAL, at) is expected


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (sp(2026, 11, 16, 10, 0), sp(2026, 11, 16, 10, 0)),  # open: itself
        (sp(2026, 11, 16, 7, 0), sp(2026, 11, 16, 8, 30)),
        (sp(2026, 11, 16, 17, 30), sp(2026, 11, 17, 8, 30)),
        (sp(2026, 11, 19, 20, 0), sp(2026, 11, 23, 8, 30)),  # holiday friday, weekend
        (sp(2026, 12, 31, 18, 0), sp(2027, 1, 4, 8, 30)),  # new year, weekend
    ],
)
def test_next_opening(at: datetime, expected: datetime) -> None:
    assert next_opening(BR_CAL, at) == expected


def test_subdivision_holidays() -> None:
    sp_state = BusinessCalendar.from_settings(
        ["mon", "tue", "wed", "thu", "fri"], "08:30", "17:30", "America/Sao_Paulo", "BR-SP"
    )
    revolution_day = date(2026, 7, 9)  # a thursday, a holiday in the state of São Paulo only
    assert sp_state.holiday_subdiv == "SP"
    assert not is_business_day(sp_state, revolution_day)
    assert is_business_day(BR_CAL, revolution_day)


def test_no_holidays() -> None:
    cal = BusinessCalendar.from_settings(["mon", "fri"], "09:00", "18:00", "America/Sao_Paulo", "")
    assert cal.holiday_country is None
    assert cal.days == frozenset({0, 4})
    assert is_business_day(cal, date(2026, 12, 25))  # a friday
    assert not is_business_day(cal, date(2026, 12, 24))  # thursday: not configured


def test_calendar_is_hashable() -> None:
    assert hash(BR_CAL) == hash(
        BusinessCalendar.from_settings(
            ["fri", "thu", "wed", "tue", "mon"], "08:30", "17:30", "America/Sao_Paulo", "br"
        )
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"days": ["mon", "funday"]}, "business_hours.days"),
        ({"days": []}, "business_hours.days"),
        ({"open": "8h30"}, "business_hours.open"),
        ({"close": "25:00"}, "business_hours.close"),
        ({"open": "18:00"}, "open must be earlier"),
        ({"timezone": "Mars/Olympus"}, "daemon.timezone"),
        ({"holidays": "XX"}, "business_hours.holidays"),
        ({"holidays": "BR-ZZ"}, "business_hours.holidays"),
    ],
)
def test_from_settings_rejects(kwargs: dict[str, object], message: str) -> None:
    settings: dict[str, object] = {
        "days": ["mon"],
        "open": "08:30",
        "close": "17:30",
        "timezone": "America/Sao_Paulo",
        "holidays": "BR",
    }
    settings.update(kwargs)
    with pytest.raises(ValueError, match=message):
        BusinessCalendar.from_settings(**settings)  # type: ignore[arg-type]


def test_naive_datetime_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        is_open(BR_CAL, datetime(2026, 11, 16, 10, 0))


@pytest.mark.parametrize(
    ("dt", "language", "expected"),
    [
        (sp(2026, 11, 23, 11, 30), "pt_BR", "segunda-feira, 23/11/2026 às 11:30"),
        (sp(2026, 11, 23, 11, 30), "en", "Monday, 23 Nov 2026 at 11:30"),
        (sp(2026, 3, 7, 9, 5), "pt_BR", "sábado, 07/03/2026 às 09:05"),
        (sp(2026, 3, 7, 9, 5), "en", "Saturday, 7 Mar 2026 at 09:05"),
        (sp(2026, 4, 1, 17, 0), "pt_BR", "quarta-feira, 01/04/2026 às 17:00"),
    ],
)
def test_format_due(dt: datetime, language: str, expected: str) -> None:
    assert format_due(dt, language) == expected


def test_format_due_unknown_language() -> None:
    with pytest.raises(ValueError, match="language"):
        format_due(sp(2026, 11, 23, 11, 30), "fr")


_starts = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(SP)
)
_minutes = st.integers(min_value=1, max_value=60 * 40)


@given(start=_starts, first=_minutes, second=_minutes)
def test_minutes_compose(start: datetime, first: int, second: int) -> None:
    whole = add_business_time(BR_CAL, start, BusinessDuration(minutes=first + second))
    stepwise = add_business_time(
        BR_CAL,
        add_business_time(BR_CAL, start, BusinessDuration(minutes=first)),
        BusinessDuration(minutes=second),
    )
    assert whole == stepwise
    assert whole > start
    assert is_open(BR_CAL, whole) or whole.time() == BR_CAL.close
