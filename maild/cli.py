"""The ``maild`` command line (SPEC §7).

Every listing takes ``--json`` and then prints only JSON on stdout. Errors go to
stderr as one readable line each, with a non-zero exit; never a traceback.

This module parses the command line, reads the settings and runs one command; the
commands live in a module each by subject (``maild.*_cli``), each adding its own
subparser and taking a :class:`~maild.cli_env.CliEnv`.
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import os
import sys
from collections.abc import Sequence
from typing import TextIO

import peewee

from maild import (
    config_cli,
    customers_cli,
    daemon_cli,
    db_cli,
    ingest_cli,
    oauth_cli,
    outbox_cli,
    quarantine_cli,
    scheduler_cli,
    tickets_cli,
)
from maild.cli_env import (
    EX_CONFIG,
    EX_ERROR,
    EX_TEMPFAIL,
    AppFactory,
    CliEnv,
    Handler,
    default_app_factory,
)
from maild.clock import Clock, SystemClock
from maild.config import LOG_LEVELS, ConfigError, config_path, load_settings
from maild.errors import StorageUnavailableError, UsageError
from maild.logging import configure_logging

__all__ = ["CliEnv", "build_parser", "default_app_factory", "run_cli"]

_HANDLERS: dict[str, Handler] = {
    "run": daemon_cli.cmd_run,
    "ingest": ingest_cli.cmd_ingest,
    "check-config": config_cli.cmd_check_config,
    "db": db_cli.cmd_db,
    "tickets": tickets_cli.cmd_tickets,
    "outbox": outbox_cli.cmd_outbox,
    "quarantine": quarantine_cli.cmd_quarantine,
    "tick": scheduler_cli.cmd_tick,
    "report": scheduler_cli.cmd_report,
    "sources": oauth_cli.cmd_sources,
    "oauth": oauth_cli.cmd_oauth,
    "customers": customers_cli.cmd_customers,
}


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
    daemon_cli.add_parser(sub)  # run
    ingest_cli.add_parser(sub)  # ingest
    config_cli.add_parser(sub)  # check-config
    db_cli.add_parser(sub)  # db migrate
    tickets_cli.add_parser(sub)  # tickets list / show / rotate-link
    outbox_cli.add_parser(sub)  # outbox list / retry
    quarantine_cli.add_parser(sub)  # quarantine list / release
    scheduler_cli.add_parsers(sub)  # tick, report
    oauth_cli.add_parsers(sub)  # sources list, oauth authorize / generate-key
    customers_cli.add_parser(sub)  # customers list / add / remove / import / rotate-link
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
