"""``maild db migrate``: create or upgrade the schema (SPEC §7), and with
``[storage] blobs = "database"`` move blobs left under data_dir into the database."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

import peewee

from maild.cli_env import EX_ERROR, EX_OK, CliEnv
from maild.config import Settings
from maild.storage.db import open_database
from maild.storage.migrations import migrate
from maild.storage.stores import DatabaseStore, import_files


def add_parser(sub: Any) -> None:
    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", metavar="SUBCOMMAND", required=True)
    db_sub.add_parser("migrate", help="create or upgrade the schema")


def cmd_db(
    args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO, env: CliEnv
) -> int:
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


def _import_blob_files(db: peewee.Database, settings: Settings, out: TextIO, err: TextIO) -> int:
    """Blobs an earlier maild (or ``blobs = "files"``) left under data_dir go into the
    database, each checked against its SHA-256 name."""
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
