"""``maild tickets list|show|rotate-link`` (SPEC §7): tickets as the web view and the
JSON API show them, with their SLA due times computed at the command's clock."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from maild.app import App
from maild.cli_args import month_range
from maild.cli_env import EX_OK, CliEnv
from maild.cli_output import cell, print_json, print_table
from maild.config import Settings
from maild.due_times import due_summary
from maild.errors import UsageError
from maild.storage import queries
from maild.storage.models import Ticket, to_storage
from maild.storage.tickets import rotate_access_key

STATUSES = ("open", "in_progress", "waiting_customer", "resolved", "closed")
LIST_COLUMNS = [
    ("number", "NUMBER"),
    ("status", "STATUS"),
    ("priority", "PRIORITY"),
    ("department", "DEPT"),
    ("requester", "REQUESTER"),
    ("created_at", "CREATED"),
    ("due", "DUE"),
    ("message_count", "MSGS"),
    ("subject", "SUBJECT"),
]
SHOW_FIELDS = (
    "status",
    "priority",
    "department",
    "requester",
    "cc",
    "assignee",
    "created_at",
    "updated_at",
    "first_response_due",
    "resolution_due",
    "link",
)


def add_parser(sub: Any) -> None:
    t = sub.add_parser("tickets", help="list and inspect tickets")
    t_sub = t.add_subparsers(dest="tickets_command", metavar="SUBCOMMAND", required=True)
    tl = t_sub.add_parser("list", help="list tickets, oldest first")
    tl.add_argument("--status", choices=STATUSES)
    tl.add_argument("--pending", action="store_true", help="open + in_progress")
    tl.add_argument("--answered", action="store_true", help="waiting_customer")
    tl.add_argument("--department")
    tl.add_argument("--requester")
    tl.add_argument("--month", metavar="YYYY-MM")
    tl.add_argument("--overdue", action="store_true", help="past an SLA due time")
    tl.add_argument("--json", action="store_true")
    ts = t_sub.add_parser("show", help="one ticket with its thread and events")
    ts.add_argument("number", type=int)
    ts.add_argument("--json", action="store_true")
    tr = t_sub.add_parser("rotate-link", help="give a ticket a new quick-access key")
    tr.add_argument("number", type=int)


def cmd_tickets(
    args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO, env: CliEnv
) -> int:
    app = env.open_app()
    try:
        if args.tickets_command == "list":
            _list(app, args, settings, out, env)
            return EX_OK
        ticket = Ticket.get_or_none(Ticket.number == args.number)
        if ticket is None:
            raise UsageError(f"no ticket {args.number}")
        if args.tickets_command == "show":
            _show(app, ticket, args, settings, out, env)
            return EX_OK
        # rotate-link
        with app.db.atomic():
            rotate_access_key(ticket, actor="cli", now=app.clock.now())
        print(queries.ticket_link(settings.daemon.base_url, ticket), file=out)
        return EX_OK
    finally:
        app.close()


def _list(app: App, args: argparse.Namespace, settings: Settings, out: TextIO, env: CliEnv) -> None:
    month = None
    if args.month:
        start, end = month_range(args.month)
        month = (to_storage(start.replace(tzinfo=app.tz)), to_storage(end.replace(tzinfo=app.tz)))
    tickets = queries.list_tickets(
        status=args.status,
        pending=args.pending,
        answered=args.answered,
        department=args.department,
        requester=args.requester,
        month=month,
    )
    now = env.clock.now()
    rows = [
        queries.ticket_json(t, settings.daemon.base_url, app.tz) | due_summary(app, t, now)
        for t in tickets
    ]
    if args.overdue:
        rows = [r for r in rows if r["overdue"]]
    if args.json:
        print_json(rows, out)
        return
    for row in rows:
        row["created_at"] = _short_time(row["created_at"])
        due = min(
            (d for d in (row["first_response_due"], row["resolution_due"]) if d), default=None
        )
        row["due"] = f"{_short_time(due)}{' OVERDUE' if row['overdue'] else ''}" if due else None
    print_table(rows, LIST_COLUMNS, out, empty="no tickets")


def _show(
    app: App,
    ticket: Ticket,
    args: argparse.Namespace,
    settings: Settings,
    out: TextIO,
    env: CliEnv,
) -> None:
    detail = queries.ticket_detail_json(ticket, settings.daemon.base_url, app.tz)
    thread_events = {k: detail.pop(k) for k in ("thread", "events")}
    data = detail | due_summary(app, ticket, env.clock.now()) | thread_events
    if args.json:
        print_json(data, out)
    else:
        _print_ticket(data, out)


def _short_time(value: str | None) -> str | None:
    """ISO time to the minute, for human tables: 2026-11-24 10:00."""
    return value[:16].replace("T", " ") if value else value


def _print_ticket(data: dict[str, Any], out: TextIO) -> None:
    print(f"#{data['number']}  {data['subject']}", file=out)
    for key in SHOW_FIELDS:
        print(f"  {key:<11} {cell(data[key], 100)}", file=out)
    for entry in data["thread"]:
        print("", file=out)
        print(
            f"--- {entry['kind']} {entry['author']} {entry['created_at']} [{entry['outcome']}]",
            file=out,
        )
        print(entry["text"] or "(no text)", file=out)
        for a in entry["attachments"]:
            print(
                f"  [attachment] {a['filename']} ({a['content_type']}, {a['size']} bytes)", file=out
            )
        for r in entry["refused_attachments"]:
            print(f"  [refused] {r['filename']}: {r['reason']}", file=out)
    if data["events"]:
        print("", file=out)
        print("events:", file=out)
        for ev in data["events"]:
            print(
                f"  {ev['created_at']}  {ev['kind']:<20} {ev['actor']}  {cell(ev['data'], 80)}",
                file=out,
            )
