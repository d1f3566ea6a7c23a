"""When the help desk is staffed: weekdays, opening hours and breaks, timezone, holidays.

``BusinessCalendar`` is built from the ``[business_hours]`` settings (once per
distinct configuration, by ``calendar_for``) and answers which days are business
days; ``maild.business_time`` does the arithmetic on top of it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_lib

# Weekday keys as written in settings.toml, in datetime.weekday() order (0 = Monday).
DAY_NAMES: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# A calendar with at least one business day always has one within a fortnight;
# the generous bound only guards against a year of holidays in a custom calendar.
MAX_DAYS_SEARCHED = 400

_CLOCK_RE = re.compile(r"(?P<h>\d{1,2}):(?P<m>\d{2})")


@functools.lru_cache(maxsize=64)
def _holiday_dates(country: str, subdiv: str | None, year: int) -> frozenset[date]:
    # The holidays package computes a whole year at a time; caching here (rather
    # than on the calendar) keeps BusinessCalendar frozen and hashable.
    return frozenset(holidays_lib.country_holidays(country, subdiv=subdiv, years=year).keys())


def _parse_clock(value: str, key: str) -> time:
    match = _CLOCK_RE.fullmatch(value.strip())
    if match is None or int(match["h"]) > 23 or int(match["m"]) > 59:
        raise ValueError(f'{key}: invalid time {value!r}, expected "HH:MM" such as "08:30"')
    return time(int(match["h"]), int(match["m"]))


@dataclass(frozen=True)
class BusinessCalendar:
    """When the help desk is staffed: weekdays, opening hours, timezone, holidays."""

    days: frozenset[int]  # datetime.weekday() numbers, 0 = Monday
    open: time
    close: time
    tz: ZoneInfo
    holiday_country: str | None
    holiday_subdiv: str | None = None
    breaks: tuple[tuple[time, time], ...] = ()

    @property
    def windows(self) -> tuple[tuple[time, time], ...]:
        """The day's staffed wall-clock windows, in order: ``[open, close)`` minus breaks."""
        out: list[tuple[time, time]] = []
        start = self.open
        for b_start, b_end in self.breaks:
            out.append((start, b_start))
            start = b_end
        out.append((start, self.close))
        return tuple(out)

    def __post_init__(self) -> None:
        if not self.days:
            raise ValueError("business_hours.days: at least one business day is required")
        if not self.days <= frozenset(range(7)):
            raise ValueError("business_hours.days: weekday numbers must be 0 (Mon) to 6 (Sun)")
        if self.open >= self.close:
            raise ValueError("business_hours: open must be earlier than close")
        if self.open.tzinfo is not None or self.close.tzinfo is not None:
            raise ValueError("business_hours: open and close are wall-clock times without tz")
        last = self.open
        for b_start, b_end in self.breaks:
            if not last < b_start < b_end < self.close:
                raise ValueError(
                    "business_hours.breaks: each break must lie between open and close, "
                    "in order, without overlapping another"
                )
            last = b_end
        if self.holiday_subdiv is not None and self.holiday_country is None:
            raise ValueError("business_hours.holidays: a subdivision needs a country")
        if self.holiday_country is not None:
            try:
                holidays_lib.country_holidays(self.holiday_country, subdiv=self.holiday_subdiv)
            except NotImplementedError as exc:
                raise ValueError(f"business_hours.holidays: {exc}") from None

    @classmethod
    def from_settings(
        cls,
        days: Sequence[str],
        open: str,
        close: str,
        timezone: str,
        holidays: str | None,
        breaks: Sequence[str] = (),
    ) -> BusinessCalendar:
        """Build a calendar from the ``[business_hours]`` keys and ``daemon.timezone``.

        ``holidays`` is a country code (``"BR"``), optionally with a subdivision
        (``"BR-SP"``), or ``""``/``None`` for no holidays. Raises ValueError naming
        the offending key.
        """
        weekdays: set[int] = set()
        for name in days:
            key = name.strip().lower()
            if key not in DAY_NAMES:
                raise ValueError(
                    f"business_hours.days: unknown day {name!r}, expected one of "
                    + ", ".join(DAY_NAMES)
                )
            weekdays.add(DAY_NAMES.index(key))
        try:
            tz = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"daemon.timezone: unknown timezone {timezone!r}") from None
        country: str | None = None
        subdiv: str | None = None
        if holidays:
            country, _, rest = holidays.strip().partition("-")
            country = country.upper()
            subdiv = rest.upper() or None
        parsed_breaks: list[tuple[time, time]] = []
        for item in breaks:
            first, sep, second = item.partition("-")
            if not sep:
                raise ValueError(f'business_hours.breaks: {item!r} is not "HH:MM-HH:MM"')
            parsed_breaks.append(
                (
                    _parse_clock(first, "business_hours.breaks"),
                    _parse_clock(second, "business_hours.breaks"),
                )
            )
        return cls(
            breaks=tuple(sorted(parsed_breaks)),
            days=frozenset(weekdays),
            open=_parse_clock(open, "business_hours.open"),
            close=_parse_clock(close, "business_hours.close"),
            tz=tz,
            holiday_country=country,
            holiday_subdiv=subdiv,
        )


@functools.lru_cache(maxsize=8)
def _cached_calendar(
    days: tuple[str, ...],
    open_: str,
    close: str,
    timezone: str,
    holidays: str,
    breaks: tuple[str, ...],
) -> BusinessCalendar:
    return BusinessCalendar.from_settings(days, open_, close, timezone, holidays or None, breaks)


def calendar_for(settings: Any) -> BusinessCalendar:
    """The calendar of a ``Settings`` (``[business_hours]`` and ``daemon.timezone``),
    built once per distinct configuration: building one loads holiday tables."""
    bh = settings.business_hours
    return _cached_calendar(
        tuple(bh.days), bh.open, bh.close, settings.daemon.timezone, bh.holidays, tuple(bh.breaks)
    )


def is_business_day(cal: BusinessCalendar, day: date) -> bool:
    """Whether ``day`` is a configured weekday and not a public holiday."""
    if day.weekday() not in cal.days:
        return False
    if cal.holiday_country is None:
        return True
    return day not in _holiday_dates(cal.holiday_country, cal.holiday_subdiv, day.year)


def first_business_day_from(cal: BusinessCalendar, first: date) -> date:
    """The first business day on or after ``first``."""
    day = first
    for _ in range(MAX_DAYS_SEARCHED):
        if is_business_day(cal, day):
            return day
        day += timedelta(days=1)
    raise ValueError(f"no business day within {MAX_DAYS_SEARCHED} days of {first}")
