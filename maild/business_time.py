"""Business-hours arithmetic for SLA due dates, and a locale-free due-date formatter.

Pure: nothing here reads the clock; every instant is an argument. All results are
timezone-aware datetimes in the calendar's own timezone.

Semantics (the contract the pipeline and the mail templates rely on):

* Business hours are the half-open wall-clock interval ``[open, close)`` on every
  configured weekday that is not a public holiday. ``close`` itself is closed.
  Breaks (``breaks = ["12:00-13:30"]``) cut that interval into windows; a break's
  start is closed and its end is open again, and break time never counts.
* Hours and minutes (``"4h"``, ``"30m"``, ``"1h30m"``) count only elapsed time
  inside business hours. Elapsed time is real time (computed in UTC), so a day
  whose business window contains a DST switch counts its true length. A duration
  that uses up a window exactly lands on that day's close (17:30), not on the
  next opening.
* Days (``"6d"``) count business days. From inside business hours the due date is
  the N-th following business day at the same wall time. From outside business
  hours (before opening, after closing, on a weekend or holiday) the due date is
  the *close* of the N-th business day, counting the next business day as the
  first: a ticket opened Saturday with ``"1d"`` is due Monday at closing time.
  (That close is the same business instant as the following opening; the close
  reads better in a confirmation.)
* A combined duration (``"1d4h"``) applies the days first, then the hours.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_lib

__all__ = [
    "DAY_NAMES",
    "LANGUAGES",
    "BusinessCalendar",
    "BusinessDuration",
    "add_business_time",
    "business_time_between",
    "calendar_for",
    "due_for",
    "format_due",
    "is_business_day",
    "is_open",
    "next_opening",
    "parse_duration",
    "shift_business_time",
    "subtract_business_time",
]

# Weekday keys as written in settings.toml, in datetime.weekday() order (0 = Monday).
DAY_NAMES: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

LANGUAGES: tuple[str, ...] = ("pt_BR", "en")

# A calendar with at least one business day always has one within a fortnight;
# the generous bound only guards against a year of holidays in a custom calendar.
_MAX_DAYS_SEARCHED = 400

_DURATION_RE = re.compile(r"(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?")
_CLOCK_RE = re.compile(r"(?P<h>\d{1,2}):(?P<m>\d{2})")


@dataclass(frozen=True)
class BusinessDuration:
    """An amount of business time: whole business days plus business minutes."""

    days: int = 0
    minutes: int = 0

    def __post_init__(self) -> None:
        if self.days < 0 or self.minutes < 0:
            raise ValueError("a business duration cannot be negative")


def parse_duration(text: str) -> BusinessDuration:
    """Parse ``"4h"``, ``"30m"``, ``"1h30m"``, ``"6d"`` (d = business days), ``"1d4h"``."""
    cleaned = text.strip().lower().replace(" ", "")
    match = _DURATION_RE.fullmatch(cleaned)
    if not cleaned or match is None:
        raise ValueError(
            f"invalid duration {text!r}: expected business time such as "
            '"4h", "30m", "1h30m" or "6d" (d = business days)'
        )
    days = int(match["d"] or 0)
    minutes = int(match["h"] or 0) * 60 + int(match["m"] or 0)
    if days == 0 and minutes == 0:
        raise ValueError(f"invalid duration {text!r}: must be greater than zero")
    return BusinessDuration(days=days, minutes=minutes)


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


def _require_aware(at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("business time needs a timezone-aware datetime")


def _local(tz: tzinfo, day: date, wall: time) -> datetime:
    # Round-trip through UTC so that a wall time inside a DST gap is normalized
    # to the instant clocks actually show after the switch.
    return datetime.combine(day, wall, tzinfo=tz).astimezone(UTC).astimezone(tz)


def is_business_day(cal: BusinessCalendar, day: date) -> bool:
    """Whether ``day`` is a configured weekday and not a public holiday."""
    if day.weekday() not in cal.days:
        return False
    if cal.holiday_country is None:
        return True
    return day not in _holiday_dates(cal.holiday_country, cal.holiday_subdiv, day.year)


def is_open(cal: BusinessCalendar, at: datetime) -> bool:
    """Whether the desk is staffed at instant ``at`` (``close`` itself is closed)."""
    _require_aware(at)
    local = at.astimezone(cal.tz)
    if not is_business_day(cal, local.date()):
        return False
    wall = local.time()
    return any(start <= wall < end for start, end in cal.windows)


def _window_end(cal: BusinessCalendar, local: datetime) -> datetime:
    """End of the window that ``local`` (an open instant) is in."""
    wall = local.time()
    for start, end in cal.windows:
        if start <= wall < end:
            return _local(cal.tz, local.date(), end)
    raise ValueError("not inside business hours")  # pragma: no cover - callers check


def _business_days_from(cal: BusinessCalendar, first: date) -> date:
    """The first business day on or after ``first``."""
    day = first
    for _ in range(_MAX_DAYS_SEARCHED):
        if is_business_day(cal, day):
            return day
        day += timedelta(days=1)
    raise ValueError(f"no business day within {_MAX_DAYS_SEARCHED} days of {first}")


def next_opening(cal: BusinessCalendar, at: datetime) -> datetime:
    """The earliest instant at or after ``at`` when the desk is open.

    Returns ``at`` itself (in the calendar's timezone) when the desk is open then.
    """
    _require_aware(at)
    local = at.astimezone(cal.tz)
    if is_open(cal, local):
        return local
    day = local.date()
    if is_business_day(cal, day):
        for start, _end in cal.windows:
            if local.time() < start:
                return _local(cal.tz, day, start)
    day = _business_days_from(cal, day + timedelta(days=1))
    return _local(cal.tz, day, cal.open)


def _add_days(cal: BusinessCalendar, start: datetime, days: int) -> datetime:
    if is_open(cal, start):
        day = start.date()
        for _ in range(days):
            day = _business_days_from(cal, day + timedelta(days=1))
        return _local(cal.tz, day, start.time())
    day = next_opening(cal, start).date()
    for _ in range(days - 1):
        day = _business_days_from(cal, day + timedelta(days=1))
    return _local(cal.tz, day, cal.close)


def _add_minutes(cal: BusinessCalendar, start: datetime, minutes: int) -> datetime:
    return shift_business_time(cal, start, timedelta(minutes=minutes))


def add_business_time(
    cal: BusinessCalendar, start: datetime, duration: BusinessDuration
) -> datetime:
    """``start`` plus ``duration`` of business time (see the module docstring)."""
    _require_aware(start)
    result = start.astimezone(cal.tz)
    if duration.days:
        result = _add_days(cal, result, duration.days)
    if duration.minutes:
        result = _add_minutes(cal, result, duration.minutes)
    return result


def shift_business_time(cal: BusinessCalendar, start: datetime, delta: timedelta) -> datetime:
    """``start`` moved later by ``delta`` of business time (an SLA pause folded in)."""
    _require_aware(start)
    if delta <= timedelta(0):
        return start.astimezone(cal.tz)
    remaining = delta
    cursor = start.astimezone(cal.tz)
    while True:
        cursor = next_opening(cal, cursor)
        window_end = _window_end(cal, cursor)
        available = window_end.astimezone(UTC) - cursor.astimezone(UTC)
        if remaining <= available:
            return (cursor.astimezone(UTC) + remaining).astimezone(cal.tz)
        remaining -= available
        cursor = window_end


def subtract_business_time(cal: BusinessCalendar, end: datetime, delta: timedelta) -> datetime:
    """The instant ``delta`` of business time before ``end`` (a warning before a due time)."""
    _require_aware(end)
    remaining = delta
    cursor = end.astimezone(cal.tz)
    day = cursor.date()
    for _ in range(_MAX_DAYS_SEARCHED):
        if is_business_day(cal, day):
            for w_start, w_end in reversed(cal.windows):
                lo = _local(cal.tz, day, w_start)
                hi = min(_local(cal.tz, day, w_end), cursor)
                if hi <= lo:
                    continue
                available = hi.astimezone(UTC) - lo.astimezone(UTC)
                if remaining <= available:
                    return (hi.astimezone(UTC) - remaining).astimezone(cal.tz)
                remaining -= available
                cursor = lo
        day -= timedelta(days=1)
    raise ValueError(f"no business time within {_MAX_DAYS_SEARCHED} days before {end}")


def business_time_between(cal: BusinessCalendar, start: datetime, end: datetime) -> timedelta:
    """How much business time passes from ``start`` to ``end`` (zero when end <= start)."""
    _require_aware(start)
    _require_aware(end)
    if end <= start:
        return timedelta(0)
    total = timedelta(0)
    first = start.astimezone(cal.tz).date()
    last = end.astimezone(cal.tz).date()
    day = first
    while day <= last:
        if is_business_day(cal, day):
            for w_start, w_end in cal.windows:
                lo = max(start, _local(cal.tz, day, w_start))
                hi = min(end, _local(cal.tz, day, w_end))
                if hi > lo:
                    total += hi.astimezone(UTC) - lo.astimezone(UTC)
        day += timedelta(days=1)
    return total


def due_for(cal: BusinessCalendar, start: datetime, duration_text: str) -> datetime:
    """Due instant for an SLA written as in settings.toml (``"4h"``, ``"6d"``)."""
    return add_business_time(cal, start, parse_duration(duration_text))


_WEEKDAYS: dict[str, tuple[str, ...]] = {
    "pt_BR": (
        "segunda-feira",
        "terça-feira",
        "quarta-feira",
        "quinta-feira",
        "sexta-feira",
        "sábado",
        "domingo",
    ),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
_EN_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def format_due(dt: datetime, language: str) -> str:
    """Format a due instant for a customer, in its own wall time, without system locales.

    pt_BR: ``segunda-feira, 23/11/2026 às 11:30``; en: ``Monday, 23 Nov 2026 at 11:30``.
    """
    if language not in _WEEKDAYS:
        raise ValueError(f"unsupported language {language!r}, expected one of {LANGUAGES}")
    weekday = _WEEKDAYS[language][dt.weekday()]
    if language == "pt_BR":
        return f"{weekday}, {dt:%d/%m/%Y} às {dt:%H:%M}"
    return f"{weekday}, {dt.day} {_EN_MONTHS[dt.month - 1]} {dt.year} at {dt:%H:%M}"
