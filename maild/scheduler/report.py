"""``maild report``: a month of the desk in figures, per department (SPEC §11).

Sole purpose: read tickets, their first agent reply, resolutions, ``sla_breached``
events and ratings for one month (in the desk's time zone) and return plain data;
the CLI prints it as a table or as JSON. Times are business hours (the
``[business_hours]`` calendar, holidays and breaks left out).

Definitions (written down because every help desk counts a little differently):

* ``opened``: tickets created in the month; ``resolved``: tickets whose (latest)
  resolution falls in the month.
* first response: from creation to the first agent reply, for tickets opened in
  the month that have one; resolution: from creation to the resolution, for
  tickets resolved in the month.
* median and p90 (nearest rank), in business hours with two decimals.
* SLA compliance: the share of tickets opened in the month with no
  ``sla_breached`` event (so far).
* ratings: of tickets resolved in the month: count, mean, and how many of each 1-5.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import peewee as pw

from maild.app import App
from maild.business_time import BusinessCalendar, business_time_between, calendar_for
from maild.storage.models import Event, ThreadEntry, Ticket, aware, to_storage


@dataclass(frozen=True)
class Month:
    year: int
    month: int

    @property
    def label(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def bounds(self, cal: BusinessCalendar) -> tuple[datetime, datetime]:
        start = datetime(self.year, self.month, 1, tzinfo=cal.tz)
        end = datetime(self.year + (self.month == 12), self.month % 12 + 1, 1, tzinfo=cal.tz)
        return start, end


def _hours(values: Sequence[timedelta]) -> dict[str, Any]:
    hours = sorted(v.total_seconds() / 3600 for v in values)
    if not hours:
        return {"count": 0, "median": None, "p90": None}
    p90 = hours[max(0, math.ceil(0.9 * len(hours)) - 1)]
    return {
        "count": len(hours),
        "median": round(statistics.median(hours), 2),
        "p90": round(p90, 2),
    }


def build_report(app: App, month: Month, department: str | None = None) -> dict[str, Any]:
    """The month's figures, one entry per department (configured ones first)."""
    cal = calendar_for(app.settings)
    start, end = month.bounds(cal)
    lo, hi = to_storage(start), to_storage(end)
    opened = list(Ticket.select().where((Ticket.created_at >= lo) & (Ticket.created_at < hi)))
    resolved = list(Ticket.select().where((Ticket.resolved_at >= lo) & (Ticket.resolved_at < hi)))
    first_reply, breached = _first_replies_and_breaches([t.id for t in opened])
    keys = [d.key for d in app.settings.departments]
    keys += sorted({t.department for t in (*opened, *resolved)} - set(keys))
    if department is not None:
        keys = [k for k in keys if k == department]
    out = []
    for key in keys:
        dept = app.settings.department(key)
        figures = _department_figures(
            cal,
            [t for t in opened if t.department == key],
            [t for t in resolved if t.department == key],
            first_reply,
            breached,
        )
        out.append({"department": key, "name": dept.name if dept else key} | figures)
    return {"month": month.label, "timezone": app.settings.daemon.timezone, "departments": out}


def _first_replies_and_breaches(ids: list[int]) -> tuple[dict[int, datetime], set[int]]:
    """Of the tickets ``ids``: when each was first answered by an agent, and which
    have breached an SLA."""
    if not ids:
        return {}, set()
    rows = (
        ThreadEntry.select(ThreadEntry.ticket, pw.fn.MIN(ThreadEntry.created_at))
        .where((ThreadEntry.kind == "agent") & ThreadEntry.ticket.in_(ids))
        .group_by(ThreadEntry.ticket)
        .tuples()
    )
    first_reply = {tid: aware(at) for tid, at in rows}  # type: ignore[misc]
    breached = {
        tid
        for (tid,) in Event.select(Event.ticket)
        .where((Event.kind == "sla_breached") & Event.ticket.in_(ids))
        .tuples()
    }
    return first_reply, breached


def _department_figures(
    cal: BusinessCalendar,
    opened: list[Ticket],
    resolved: list[Ticket],
    first_reply: dict[int, datetime],
    breached: set[int],
) -> dict[str, Any]:
    """The figures of one department's tickets opened and resolved in the month."""
    first = [
        business_time_between(cal, aware(t.created_at), first_reply[t.id])  # type: ignore[arg-type]
        for t in opened
        if t.id in first_reply
    ]
    resolution = [
        business_time_between(cal, aware(t.created_at), aware(t.resolved_at))  # type: ignore[arg-type]
        for t in resolved
    ]
    ratings = [t.rating for t in resolved if t.rating is not None]
    compliant = sum(1 for t in opened if t.id not in breached)
    return {
        "opened": len(opened),
        "resolved": len(resolved),
        "first_response_hours": _hours(first),
        "resolution_hours": _hours(resolution),
        "sla_breached": len(opened) - compliant,
        "sla_compliance_percent": round(100 * compliant / len(opened), 1) if opened else None,
        "ratings": {
            "count": len(ratings),
            "mean": round(statistics.fmean(ratings), 2) if ratings else None,
            "distribution": {str(n): ratings.count(n) for n in range(1, 6)},
        },
    }


def report_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat row per department, for a terminal table."""

    def num(value: Any) -> str:
        return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)

    rows = []
    for d in report["departments"]:
        fr, rs, rt = d["first_response_hours"], d["resolution_hours"], d["ratings"]
        dist = rt["distribution"]
        rows.append(
            {
                "department": d["department"],
                "opened": d["opened"],
                "resolved": d["resolved"],
                "first": f"{num(fr['median'])} / {num(fr['p90'])}",
                "resolution": f"{num(rs['median'])} / {num(rs['p90'])}",
                "sla": "-"
                if d["sla_compliance_percent"] is None
                else f"{num(d['sla_compliance_percent'])}%",
                "ratings": f"{rt['count']} (mean {num(rt['mean'])})",
                "dist": " ".join(f"{n}:{dist[str(n)]}" for n in range(1, 6)),
            }
        )
    return rows
