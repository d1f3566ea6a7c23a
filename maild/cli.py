"""The ``maild`` command line (SPEC §7).

Every listing takes ``--json`` and then prints only JSON on stdout. Errors go to
stderr as one readable line each, with a non-zero exit; never a traceback.
"""

from __future__ import annotations

import argparse
import calendar
import contextlib
import contextvars
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

import peewee

from maild.app import App, build_app
from maild.cli_output import cell, print_json, print_table
from maild.clock import Clock, SystemClock
from maild.config import LOG_LEVELS, ConfigError, Settings, config_path, load_settings
from maild.due_times import due_summary
from maild.errors import StorageUnavailableError, UsageError
from maild.storage.binding import bind_context
from maild.wakeup import poke

EX_OK = 0
EX_ERROR = 1
EX_USAGE = 2
EX_TEMPFAIL = 75
EX_CONFIG = 78


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="maild", description="maild: an email-driven help desk daemon."
    )
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="settings file (default: $MAILD_CONFIG or ./settings.toml)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    sub.add_parser("run", help="run the daemon")

    p = sub.add_parser("ingest", help="ingest raw RFC 5322 files (or stdin) as an MTA pipe would")
    p.add_argument("files", nargs="*", metavar="FILE")
    p.add_argument("--dry-run", action="store_true", help="print what would happen, change nothing")
    p.add_argument("--source", default="ingest", help=argparse.SUPPRESS)

    sub.add_parser("check-config", help="validate settings.toml")

    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", metavar="SUBCOMMAND", required=True)
    db_sub.add_parser("migrate", help="create or upgrade the schema")

    t = sub.add_parser("tickets", help="list and inspect tickets")
    t_sub = t.add_subparsers(dest="tickets_command", metavar="SUBCOMMAND", required=True)
    tl = t_sub.add_parser("list", help="list tickets, oldest first")
    tl.add_argument(
        "--status", choices=("open", "in_progress", "waiting_customer", "resolved", "closed")
    )
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

    o = sub.add_parser("outbox", help="outbound mail queue")
    o_sub = o.add_subparsers(dest="outbox_command", metavar="SUBCOMMAND", required=True)
    ol = o_sub.add_parser("list")
    ol.add_argument("--status", choices=("pending", "sent", "failed", "bounced", "suppressed"))
    ol.add_argument("--json", action="store_true")
    orr = o_sub.add_parser("retry", help="send a failed or bounced message again")
    orr.add_argument("id", type=int)

    q = sub.add_parser("quarantine", help="messages that could not be processed or were held")
    q_sub = q.add_subparsers(dest="quarantine_command", metavar="SUBCOMMAND", required=True)
    ql = q_sub.add_parser("list")
    ql.add_argument("--json", action="store_true")
    qr = q_sub.add_parser("release", help="process a held or quarantined message now")
    qr.add_argument("id", type=int)

    tk = sub.add_parser("tick", help="run the scheduler's due work once (SPEC §11)")
    tk.add_argument("--now", metavar="ISO", help="the instant to run at (default: now)")
    tk.add_argument("--dry-run", action="store_true", help="print what would happen")
    tk.add_argument("--json", action="store_true")

    rp = sub.add_parser("report", help="a month per department: volumes, SLA, times, ratings")
    rp.add_argument("--month", metavar="YYYY-MM", help="default: this month")
    rp.add_argument("--department")
    rp.add_argument("--json", action="store_true")

    from maild.oauth_cli import add_parsers

    add_parsers(sub)  # sources list, oauth authorize / generate-key

    from maild.customers_cli import add_parser as add_customers_parser

    add_customers_parser(sub)
    return parser


def run_cli(
    argv: Sequence[str],
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    *,
    clock: Clock | None = None,
    app_factory: AppFactory | None = None,
) -> int:
    """Run one ``maild`` command. ``clock`` and ``app_factory`` are the seams the
    composition root fills: the wall clock and :func:`build_app` unless given."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    parser = build_parser()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed the usage error (or --help)
        return int(exc.code or 0)

    path = config_path(args.config)
    try:
        settings = load_settings(path)
    except ConfigError as exc:
        if args.command == "check-config":
            print(f"{path}: {len(exc.errors)} error(s)", file=err)
        for line in exc.errors:
            print(f"error: {line}", file=err)
        if args.command == "ingest":
            # An MTA pipe must retry rather than bounce when we are misconfigured.
            return EX_TEMPFAIL
        return EX_ERROR if args.command == "check-config" else EX_CONFIG

    from maild.logging import configure_logging

    daemon = args.command == "run"
    # The daemon and the MTA pipe log each message at [daemon] log_level; the other
    # commands print their own output and log only warnings, unless MAILD_LOG_LEVEL says.
    chatty = daemon or args.command == "ingest"
    level = settings.daemon.log_level if chatty else "warning"
    wanted = os.environ.get("MAILD_LOG_LEVEL", level).lower()
    if wanted not in LOG_LEVELS:
        print(f"warning: MAILD_LOG_LEVEL={wanted!r} is not one of {LOG_LEVELS}", file=err)
        wanted = level
    configure_logging(level=wanted, stream=out if daemon else err)
    handler = _HANDLERS[args.command]
    try:
        env = CliEnv(settings, clock or SystemClock(), app_factory or default_app_factory)
        # In a context of its own: the App the command opens is bound there, never
        # in the caller's context (a test, or a process with an App of its own).
        return contextvars.copy_context().run(handler, args, settings, out, err, env)
    except (UsageError, LookupError) as exc:
        print(f"error: {exc}", file=err)
        return EX_ERROR
    except (peewee.OperationalError, StorageUnavailableError) as exc:
        print(f"error: database: {exc}", file=err)
        return EX_TEMPFAIL if args.command == "ingest" else EX_ERROR
    except KeyboardInterrupt:
        return 130


# ---------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------


AppFactory = Callable[[Settings, Clock], App]


@dataclass(frozen=True)
class CliEnv:
    """What a command needs besides its arguments: where 'now' comes from and how to
    open the App. ``maild`` passes the system clock; tests pass a frozen one."""

    settings: Settings
    clock: Clock
    app_factory: AppFactory

    def open_app(self) -> App:
        """The command's App, bound for the rest of the command (see ``run_cli``)."""
        app = self.app_factory(self.settings, self.clock)
        bind_context(app.db)
        return app


def default_app_factory(settings: Settings, clock: Clock) -> App:
    return build_app(settings, clock)


def cmd_check_config(
    args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO, env: CliEnv
) -> int:
    errors: list[str] = []
    try:
        from maild.render import SHIPPED_TEMPLATES_DIR, Renderer

        renderer = Renderer(
            SHIPPED_TEMPLATES_DIR, settings.daemon.templates_dir, settings.daemon.language
        )
        errors.extend(f"daemon.templates_dir: {e}" for e in renderer.check())
    except ImportError:  # pragma: no cover - renderer ships with maild
        pass
    if errors:
        print(f"{settings.source_path}: {len(errors)} error(s)", file=err)
        for line in errors:
            print(f"error: {line}", file=err)
        return EX_ERROR
    d = settings.daemon
    lines = [
        f"{settings.source_path}: OK",
        f"  instance       {d.instance} ({d.language}, {d.timezone})",
        f"  base_url       {d.base_url}",
        f"  data_dir       {d.data_dir}",
        f"  database       {_redact_url(settings.database_url)}",
        "  imap sources   "
        + (
            ", ".join(f"{s.name}{' (xoauth2)' * (s.auth == 'xoauth2')}" for s in settings.imap)
            or "none"
        ),
        "  listener       "
        + (
            f"{settings.listener.protocol} on {settings.listener.host}:{settings.listener.port}"
            if settings.listener.enabled
            else "disabled"
        ),
        "  outbound       "
        + (
            f"smtp {settings.smtp.host}:{settings.smtp.port} ({settings.smtp.security}"
            f"{', xoauth2' * (settings.smtp.auth == 'xoauth2')})"
            if settings.smtp
            else f"Maildir {d.data_dir / 'outbox'}"
        ),
        "  web            "
        + (f"{settings.web.host}:{settings.web.port}" if settings.web.enabled else "disabled"),
        "  departments    "
        + ", ".join(
            f"{x.key}{'*' if x is settings.default_department else ''} ({', '.join(x.addresses)})"
            for x in settings.departments
        ),
        f"  agents         {', '.join(a.email for a in settings.agents) or 'none'}",
        f"  agents_auth    {settings.agents_auth.require}",
    ]
    if settings.agents and settings.agents_auth.require == "from":
        lines.append(
            "  warning        agents are trusted by their From address alone; "
            "consider agents_auth.require = 'authentication-results'"
        )
    print("\n".join(lines), file=out)
    return EX_OK


def _redact_url(url: str) -> str:
    return re.sub(r"(://[^:/@]*):[^@/]+@", r"\1:***@", url)


def cmd_db(
    args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO, env: CliEnv
) -> int:
    from maild.storage.db import open_database
    from maild.storage.migrations import migrate

    settings.daemon.data_dir.mkdir(parents=True, exist_ok=True)
    db = open_database(settings.database_url)
    try:
        before, after = migrate(db)
        if before == after:
            print(f"schema is up to date (version {after})", file=out)
        else:
            print(f"schema migrated from version {before} to {after}", file=out)
        if settings.storage.blobs == "database":
            return _import_blob_files(db, settings, out, err)
    finally:
        db.close()
    return EX_OK


def _import_blob_files(db: Any, settings: Settings, out: TextIO, err: TextIO) -> int:
    """Blobs an earlier maild (or ``blobs = "files"``) left under data_dir go into the
    database, each checked against its SHA-256 name."""
    from maild.storage.stores import DatabaseStore, import_files

    store = DatabaseStore(db)
    status = EX_OK
    for kind in ("raw", "attachments"):
        root = settings.daemon.data_dir / kind
        copied, problems = import_files(store, root)
        for line in problems:
            print(f"error: {line}", file=err)
            status = EX_ERROR
        if copied:
            print(
                f"{copied} {kind} file(s) copied into the database and verified; "
                f"{root} may be removed",
                file=out,
            )
    return status


def _month_range(value: str) -> tuple[datetime, datetime]:
    m = re.fullmatch(r"(\d{4})-(\d{2})", value)
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise UsageError(f"--month: {value!r} is not YYYY-MM")
    year, month = int(m.group(1)), int(m.group(2))
    days = calendar.monthrange(year, month)[1]
    start = datetime(year, month, 1)
    end = datetime(year + (month == 12), month % 12 + 1, 1)
    del days
    return start, end


def cmd_tickets(
    args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO, env: CliEnv
) -> int:
    from maild.storage import queries
    from maild.storage.models import Ticket, to_storage

    app = env.open_app()
    try:
        if args.tickets_command == "list":
            month = None
            if args.month:
                start, end = _month_range(args.month)
                month = (
                    to_storage(start.replace(tzinfo=app.tz)),
                    to_storage(end.replace(tzinfo=app.tz)),
                )
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
            else:
                for row in rows:
                    row["created_at"] = _short_time(row["created_at"])
                    due = min(
                        (d for d in (row["first_response_due"], row["resolution_due"]) if d),
                        default=None,
                    )
                    row["due"] = (
                        f"{_short_time(due)}{' OVERDUE' if row['overdue'] else ''}" if due else None
                    )
                print_table(
                    rows,
                    [
                        ("number", "NUMBER"),
                        ("status", "STATUS"),
                        ("priority", "PRIORITY"),
                        ("department", "DEPT"),
                        ("requester", "REQUESTER"),
                        ("created_at", "CREATED"),
                        ("due", "DUE"),
                        ("message_count", "MSGS"),
                        ("subject", "SUBJECT"),
                    ],
                    out,
                    empty="no tickets",
                )
            return EX_OK
        ticket = Ticket.get_or_none(Ticket.number == args.number)
        if ticket is None:
            raise UsageError(f"no ticket {args.number}")
        if args.tickets_command == "show":
            detail = queries.ticket_detail_json(ticket, settings.daemon.base_url, app.tz)
            thread_events = {k: detail.pop(k) for k in ("thread", "events")}
            data = detail | due_summary(app, ticket, env.clock.now()) | thread_events
            if args.json:
                print_json(data, out)
            else:
                _print_ticket(data, out)
            return EX_OK
        # rotate-link
        from maild.storage.tickets import rotate_access_key

        with app.db.atomic():
            rotate_access_key(ticket, actor="cli", now=app.clock.now())
        print(queries.ticket_link(settings.daemon.base_url, ticket), file=out)
        return EX_OK
    finally:
        app.close()


def cmd_outbox(
    args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO, env: CliEnv
) -> int:
    from maild.storage import queries
    from maild.storage.models import Outbox

    app = env.open_app()
    try:
        if args.outbox_command == "list":
            query = Outbox.select().order_by(Outbox.id)
            if args.status:
                query = query.where(Outbox.status == args.status)
            rows = [queries.outbox_json(r, app.tz) for r in query]
            if args.json:
                print_json(rows, out)
            else:
                print_table(
                    rows,
                    [
                        ("id", "ID"),
                        ("status", "STATUS"),
                        ("template", "TEMPLATE"),
                        ("ticket", "TICKET"),
                        ("attempts", "TRIES"),
                        ("recipients", "TO"),
                        ("last_error", "LAST ERROR"),
                    ],
                    out,
                    empty="outbox is empty",
                )
            return EX_OK
        from maild.storage.outbox import retry_now

        with app.db.atomic():
            row = retry_now(args.id, now=app.clock.now())
        print(f"outbox message {row.id} queued for sending again", file=out)
        return EX_OK
    finally:
        app.close()


def cmd_quarantine(
    args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO, env: CliEnv
) -> int:
    from maild.storage import queries
    from maild.storage.models import INBOUND_HELD, INBOUND_QUARANTINED, Inbound

    app = env.open_app()
    try:
        if args.quarantine_command == "list":
            query = (
                Inbound.select()
                .where(Inbound.state.in_([INBOUND_QUARANTINED, INBOUND_HELD]))
                .order_by(Inbound.id)
            )
            rows = [queries.inbound_json(r, app.tz) for r in query]
            if args.json:
                print_json(rows, out)
            else:
                print_table(
                    rows,
                    [
                        ("id", "ID"),
                        ("state", "STATE"),
                        ("outcome", "OUTCOME"),
                        ("source", "SOURCE"),
                        ("received_at", "RECEIVED"),
                        ("subject", "SUBJECT"),
                        ("detail", "DETAIL"),
                    ],
                    out,
                    empty="quarantine is empty",
                )
            return EX_OK
        from maild.recovery import release

        result = release(app, args.id)
        print_json(result.as_json(), out, compact=True)
        return EX_OK
    finally:
        app.close()


def cmd_ingest(
    args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO, env: CliEnv
) -> int:
    from maild.ingest_cli import ingest_command

    return ingest_command(args, settings, out, err, env)


def cmd_sources(
    args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO, env: CliEnv
) -> int:
    from maild.oauth_cli import cmd_sources as run

    return run(args, settings, out, err, env)


def cmd_oauth(
    args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO, env: CliEnv
) -> int:
    from maild.oauth_cli import cmd_oauth as run

    return run(args, settings, out, err, env)


def cmd_customers(
    args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO, env: CliEnv
) -> int:
    from maild.customers_cli import customers_command

    return customers_command(args, settings, out, err, env)


def cmd_run(
    args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO, env: CliEnv
) -> int:
    from maild.daemon import run_daemon

    return run_daemon(settings, env.clock)


def cmd_tick(
    args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO, env: CliEnv
) -> int:
    from maild.scheduler.runner import run_due

    now = _parse_now(args.now) if args.now else env.clock.now()
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


def _parse_now(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"--now: {value!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise UsageError(f"--now: {value!r} needs an offset, e.g. 2026-11-24T10:00-03:00")
    return moment.astimezone(UTC)


def cmd_report(
    args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO, env: CliEnv
) -> int:
    from maild.business_time import calendar_for
    from maild.scheduler.report import Month, build_report, report_rows

    if args.month:
        start, _end = _month_range(args.month)
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
    print_table(
        report_rows(report),
        [
            ("department", "DEPT"),
            ("opened", "OPENED"),
            ("resolved", "RESOLVED"),
            ("first", "1ST RESP MED/P90"),
            ("resolution", "RESOLUTION MED/P90"),
            ("sla", "SLA OK"),
            ("ratings", "RATINGS"),
            ("dist", "1-5"),
        ],
        out,
        empty="no departments",
    )
    return EX_OK


_HANDLERS: dict[str, Callable[[argparse.Namespace, Settings, TextIO, TextIO, CliEnv], int]] = {
    "check-config": cmd_check_config,
    "db": cmd_db,
    "tickets": cmd_tickets,
    "outbox": cmd_outbox,
    "quarantine": cmd_quarantine,
    "ingest": cmd_ingest,
    "customers": cmd_customers,
    "run": cmd_run,
    "tick": cmd_tick,
    "report": cmd_report,
    "sources": cmd_sources,
    "oauth": cmd_oauth,
}


# ---------------------------------------------------------------------------
# output helpers
# ---------------------------------------------------------------------------


def _short_time(value: str | None) -> str | None:
    """ISO time to the minute, for human tables: 2026-11-24 10:00."""
    return value[:16].replace("T", " ") if value else value


def _print_ticket(data: dict[str, Any], out: TextIO) -> None:
    print(f"#{data['number']}  {data['subject']}", file=out)
    for key in (
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
    ):
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
