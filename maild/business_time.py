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

The calendar itself (weekdays, hours, breaks, holidays) is ``maild.business_calendar``;
its names are re-exported here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from maild.business_calendar import (
    DAY_NAMES,
    MAX_DAYS_SEARCHED,
    BusinessCalendar,
    calendar_for,
    first_business_day_from,
    is_business_day,
)

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

LANGUAGES: tuple[str, ...] = ("pt_BR", "en")

_DURATION_RE = re.compile(r"(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?")


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


def _require_aware(at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("business time needs a timezone-aware datetime")


def _local(tz: tzinfo, day: date, wall: time) -> datetime:
    # Round-trip through UTC so that a wall time inside a DST gap is normalized
    # to the instant clocks actually show after the switch.
    return datetime.combine(day, wall, tzinfo=tz).astimezone(UTC).astimezone(tz)


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
    day = first_business_day_from(cal, day + timedelta(days=1))
    return _local(cal.tz, day, cal.open)


def _add_days(cal: BusinessCalendar, start: datetime, days: int) -> datetime:
    if is_open(cal, start):
        day = start.date()
        for _ in range(days):
            day = first_business_day_from(cal, day + timedelta(days=1))
        return _local(cal.tz, day, start.time())
    day = next_opening(cal, start).date()
    for _ in range(days - 1):
        day = first_business_day_from(cal, day + timedelta(days=1))
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
    for _ in range(MAX_DAYS_SEARCHED):
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
    raise ValueError(f"no business time within {MAX_DAYS_SEARCHED} days before {end}")


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
