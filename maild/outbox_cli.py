"""``maild outbox list|retry`` (SPEC §7): the outbound mail queue."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from maild.cli_env import EX_OK, CliEnv
from maild.cli_output import print_json, print_table
from maild.config import Settings
from maild.storage import queries
from maild.storage.models import Outbox
from maild.storage.outbox import retry_now

STATUSES = ("pending", "sent", "failed", "bounced", "suppressed")
LIST_COLUMNS = [
    ("id", "ID"),
    ("status", "STATUS"),
    ("template", "TEMPLATE"),
    ("ticket", "TICKET"),
    ("attempts", "TRIES"),
    ("recipients", "TO"),
    ("last_error", "LAST ERROR"),
]


def add_parser(sub: Any) -> None:
    o = sub.add_parser("outbox", help="outbound mail queue")
    o_sub = o.add_subparsers(dest="outbox_command", metavar="SUBCOMMAND", required=True)
    ol = o_sub.add_parser("list")
    ol.add_argument("--status", choices=STATUSES)
    ol.add_argument("--json", action="store_true")
    orr = o_sub.add_parser("retry", help="send a failed or bounced message again")
    orr.add_argument("id", type=int)


def cmd_outbox(
    args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO, env: CliEnv
) -> int:
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
                print_table(rows, LIST_COLUMNS, out, empty="outbox is empty")
            return EX_OK
        # retry
        with app.db.atomic():
            row = retry_now(args.id, now=app.clock.now())
        print(f"outbox message {row.id} queued for sending again", file=out)
        return EX_OK
    finally:
        app.close()
