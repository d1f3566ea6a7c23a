"""Option values the ``maild`` commands read: ``--month YYYY-MM`` and ``--now ISO``."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from maild.errors import UsageError


def month_range(value: str) -> tuple[datetime, datetime]:
    """``2026-11`` -> the first instants of that month and of the next (naive)."""
    m = re.fullmatch(r"(\d{4})-(\d{2})", value)
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise UsageError(f"--month: {value!r} is not YYYY-MM")
    year, month = int(m.group(1)), int(m.group(2))
    start = datetime(year, month, 1)
    end = datetime(year + (month == 12), month % 12 + 1, 1)
    return start, end


def parse_now(value: str) -> datetime:
    """An ISO 8601 time with its offset, in UTC."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"--now: {value!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise UsageError(f"--now: {value!r} needs an offset, e.g. 2026-11-24T10:00-03:00")
    return moment.astimezone(UTC)
