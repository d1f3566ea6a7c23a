"""``maild quarantine list|release`` (SPEC §7): inbound messages that could not be
processed or were held, and processing one of them now."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from maild.cli_env import EX_OK, CliEnv
from maild.cli_output import print_json, print_table
from maild.config import Settings
from maild.recovery import release
from maild.storage import queries
from maild.storage.models import INBOUND_HELD, INBOUND_QUARANTINED, Inbound

LIST_COLUMNS = [
    ("id", "ID"),
    ("state", "STATE"),
    ("outcome", "OUTCOME"),
    ("source", "SOURCE"),
    ("received_at", "RECEIVED"),
    ("subject", "SUBJECT"),
    ("detail", "DETAIL"),
]


def add_parser(sub: Any) -> None:
    q = sub.add_parser("quarantine", help="messages that could not be processed or were held")
    q_sub = q.add_subparsers(dest="quarantine_command", metavar="SUBCOMMAND", required=True)
    ql = q_sub.add_parser("list")
    ql.add_argument("--json", action="store_true")
    qr = q_sub.add_parser("release", help="process a held or quarantined message now")
    qr.add_argument("id", type=int)


def cmd_quarantine(
    args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO, env: CliEnv
) -> int:
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
                print_table(rows, LIST_COLUMNS, out, empty="quarantine is empty")
            return EX_OK
        # release
        result = release(app, args.id)
        print_json(result.as_json(), out, compact=True)
        return EX_OK
    finally:
        app.close()
