"""``maild tick`` and ``maild report`` (SPEC §7, §11): the scheduler's due work run
once, and a month per department. Both take "now" from the command's clock."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from maild.business_time import calendar_for
from maild.cli_args import month_range, parse_now
from maild.cli_env import EX_OK, CliEnv
from maild.cli_output import print_json, print_table
from maild.config import Settings
from maild.errors import UsageError
from maild.scheduler.report import Month, build_report, report_rows
from maild.scheduler.runner import run_due
from maild.wakeup import poke

REPORT_COLUMNS = [
    ("department", "DEPT"),
    ("opened", "OPENED"),
    ("resolved", "RESOLVED"),
    ("first", "1ST RESP MED/P90"),
    ("resolution", "RESOLUTION MED/P90"),
    ("sla", "SLA OK"),
    ("ratings", "RATINGS"),
    ("dist", "1-5"),
]


def add_parsers(sub: Any) -> None:
    """The ``tick`` and ``report`` commands, added to ``maild``'s subparsers."""
    tk = sub.add_parser("tick", help="run the scheduler's due work once (SPEC §11)")
    tk.add_argument("--now", metavar="ISO", help="the instant to run at (default: now)")
    tk.add_argument("--dry-run", action="store_true", help="print what would happen")
    tk.add_argument("--json", action="store_true")

    rp = sub.add_parser("report", help="a month per department: volumes, SLA, times, ratings")
    rp.add_argument("--month", metavar="YYYY-MM", help="default: this month")
    rp.add_argument("--department")
    rp.add_argument("--json", action="store_true")


def cmd_tick(
    args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO, env: CliEnv
) -> int:
    now = parse_now(args.now) if args.now else env.clock.now()
    app = env.open_app()
    try:
        result = run_due(app, now, dry_run=args.dry_run)
        if result.actions and not args.dry_run:
            poke(settings.daemon.data_dir)  # a running daemon sends what this queued, now
        rows = [a.as_json() for a in result.actions]
        if args.json:
            print_json(
                {
                    "now": now.isoformat(),
                    "dry_run": args.dry_run,
                    "skipped": result.skipped or None,
                    "actions": rows,
                },
                out,
            )
        elif result.skipped:
            print(result.skipped, file=out)
        else:
            verb = "would run" if args.dry_run else "ran"
            for row in rows:
                ticket = f"#{row['ticket']}" if row["ticket"] else "-"
                print(f"{verb} {row['job']:<24} {ticket:<10} {row['detail']}", file=out)
            if not rows:
                print("nothing due", file=out)
        return EX_OK
    finally:
        app.close()


def cmd_report(
    args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO, env: CliEnv
) -> int:
    if args.month:
        start, _end = month_range(args.month)
        month = Month(start.year, start.month)
    else:
        local = env.clock.now().astimezone(calendar_for(settings).tz)
        month = Month(local.year, local.month)
    if args.department and settings.department(args.department) is None:
        raise UsageError(f"--department: no department {args.department!r}")
    app = env.open_app()
    try:
        report = build_report(app, month, args.department)
    finally:
        app.close()
    if args.json:
        print_json(report, out)
        return EX_OK
    print(f"{month.label} ({settings.daemon.timezone}; times in business hours)", file=out)
    print_table(report_rows(report), REPORT_COLUMNS, out, empty="no departments")
    return EX_OK
