"""The customer's ticket list, "Meus chamados" (SPEC §12): one unit of work.

``/c/{key}`` names one address; its tickets are those it requested or is a CC
of. Tabs are Todos / Pendentes / Respondidos (all; open + in_progress;
waiting_customer), counted within the month filter; months are months of
opening in the desk's time zone; rows are sorted by last activity, newest first.
Run through ``data.run_db`` like every other page; returns frozen data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from maild.app import App
from maild.parsers.subject import format_token
from maild.render import LANGUAGES, STATUS_LABELS
from maild.storage.customers import address_for_key, tickets_query
from maild.storage.models import Ticket, aware
from maild.web.access import plausible_key
from maild.web.links import page_path

TABS: tuple[str, ...] = ("all", "pending", "answered")
TAB_STATUSES: dict[str, tuple[str, ...] | None] = {
    "all": None,
    "pending": ("open", "in_progress"),
    "answered": ("waiting_customer",),
}
_MONTH_RE = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")


@dataclass(frozen=True)
class ListRow:
    number: int
    token: str
    path: str
    subject: str
    department: str
    requester: str
    created_at: datetime
    updated_at: datetime
    status: str
    status_label: str


@dataclass(frozen=True)
class ListPage:
    key: str
    address: str
    language: str
    tab: str
    month: str  # "" or "YYYY-MM"
    counts: dict[str, int]  # per tab, within the month filter
    months: tuple[str, ...]  # newest first
    rows: tuple[ListRow, ...]
    total: int  # every ticket of the address, whatever the filters


def parse_tab(value: str) -> str:
    return value if value in TABS else "all"


def parse_month(value: str) -> str:
    return value if _MONTH_RE.fullmatch(value) else ""


def _language(app: App, tickets: list[Ticket]) -> str:
    """The customer's language: that of their latest ticket, else the desk's."""
    for ticket in tickets:
        if ticket.language in LANGUAGES:
            return ticket.language
    return app.settings.daemon.language


def load_list(app: App, key: str, tab: str, month: str) -> ListPage | None:
    """The list the key opens, or None for a key that opens nothing (404)."""
    if not plausible_key(key):
        return None
    # The key is looked up through its unique index: 192 random bits, so what a
    # timing difference of the index could tell an attacker is not worth having.
    address = address_for_key(key)
    if address is None:
        return None
    tab, month = parse_tab(tab), parse_month(month)
    tickets = list(tickets_query(address).order_by(Ticket.updated_at.desc(), Ticket.id.desc()))
    language = _language(app, tickets)
    tz = app.tz
    prefix = app.settings.tickets.token_prefix

    def month_of(ticket: Ticket) -> str:
        return aware(ticket.created_at).astimezone(tz).strftime("%Y-%m")  # type: ignore[union-attr]

    months = tuple(sorted({month_of(t) for t in tickets}, reverse=True))
    in_month = [t for t in tickets if not month or month_of(t) == month]
    counts = {
        name: sum(1 for t in in_month if statuses is None or t.status in statuses)
        for name, statuses in TAB_STATUSES.items()
    }
    wanted = TAB_STATUSES[tab]
    rows = []
    for t in in_month:
        if wanted is not None and t.status not in wanted:
            continue
        dept = app.settings.department(t.department)
        rows.append(
            ListRow(
                number=t.number,
                token=format_token(t.number, prefix),
                path=page_path(t),
                subject=t.subject,
                department=dept.name if dept else t.department,
                requester=t.requester,
                created_at=aware(t.created_at),  # type: ignore[arg-type]
                updated_at=aware(t.updated_at),  # type: ignore[arg-type]
                status=t.status,
                status_label=STATUS_LABELS[language].get(t.status, t.status),
            )
        )
    return ListPage(
        key=key,
        address=address,
        language=language,
        tab=tab,
        month=month,
        counts=counts,
        months=months,
        rows=tuple(rows),
        total=len(tickets),
    )
