"""The benchmark's ``maild run`` settings and its view of maild's database: SQLite
in the run's data_dir, or a fresh schema on the PostgreSQL at 127.0.0.1:5432
(database ``test``), dropped after the run.

Read-only counts from outside the daemon, the way an operator would look.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg2

PG_DSN = "host=127.0.0.1 port=5432 dbname=test user=postgres connect_timeout=3"
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def pg_unreachable() -> str | None:
    """Why PostgreSQL cannot be used, or None when it can."""
    try:
        psycopg2.connect(PG_DSN).close()
    except psycopg2.Error as exc:
        return str(exc).strip().splitlines()[0]
    return None


@contextlib.contextmanager
def pg_schema() -> Iterator[str]:
    """A schema of its own for one run (so runs repeat), dropped afterwards."""
    name = f"bench_{secrets.token_hex(4)}"
    conn = psycopg2.connect(PG_DSN)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(f'CREATE SCHEMA "{name}"')
        yield name
    finally:
        with conn.cursor() as cur:
            cur.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        conn.close()


@dataclass
class Store:
    """Counts on one maild database (``sqlite_path`` or ``pg_schema``)."""

    sqlite_path: Path | None = None
    pg_schema: str | None = None
    _pg: Any = None

    @property
    def url(self) -> str:
        if self.pg_schema is not None:
            return f"{PG_URL}?options=-csearch_path%3D{self.pg_schema}"
        return f"sqlite:///{self.sqlite_path}"

    @property
    def label(self) -> str:
        return "PostgreSQL" if self.pg_schema is not None else "SQLite"

    def _rows(self, sql: str) -> list[tuple[Any, ...]]:
        if self.pg_schema is not None:
            if self._pg is None:
                self._pg = psycopg2.connect(PG_DSN, options=f"-csearch_path={self.pg_schema}")
                self._pg.autocommit = True
            with self._pg.cursor() as cur:
                cur.execute(sql)
                return list(cur.fetchall())
        assert self.sqlite_path is not None
        with sqlite3.connect(f"file:{self.sqlite_path}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute(sql).fetchall()

    def _count(self, sql: str) -> int:
        try:
            return int(self._rows(sql)[0][0])
        except (sqlite3.Error, psycopg2.Error):
            return 0  # not created yet

    def processed(self) -> int:
        return self._count("SELECT COUNT(*) FROM inbound WHERE state != 'received'")

    def unsent(self) -> int:
        """Outbox rows not yet delivered (pending, or claimed and being sent)."""
        return self._count("SELECT COUNT(*) FROM outbox WHERE status = 'pending'")

    def queued(self) -> int:
        return self._count("SELECT COUNT(*) FROM outbox")

    def last_received_at(self) -> float | None:
        """Wall-clock time (epoch seconds) the newest inbound message was stored."""
        rows = self._rows("SELECT received_at FROM inbound ORDER BY id DESC LIMIT 1")
        if not rows:
            return None
        value = rows[0][0]
        stamp = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        return stamp.replace(tzinfo=UTC).timestamp()

    def close(self) -> None:
        if self._pg is not None:
            self._pg.close()
            self._pg = None


PROCESSED_FOLDER = "Processados"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_settings(
    folder: Path, imap_port: int, user: str, password: str, smtp_port: int, store: Store
) -> tuple[Path, int]:
    """settings.toml for one ``maild run`` in ``folder``; returns it and its LMTP port."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "imap-password").write_text(password)
    lmtp_port = _free_port()
    settings = folder / "settings.toml"
    settings.write_text(
        f"""
[daemon]
instance = "Bench Suporte"
data_dir = "{folder / "var"}"
language = "pt_BR"

[database]
url = "{store.url}"

[[imap]]
name = "bench"
host = "127.0.0.1"
port = {imap_port}
security = "none"
username = "{user}"
password_file = "{folder / "imap-password"}"
folder = "INBOX"
processed_folder = "{PROCESSED_FOLDER}"
idle = true
poll_seconds = 30

[listener]
enabled = true
protocol = "lmtp"
host = "127.0.0.1"
port = {lmtp_port}

[web]
enabled = false

[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"

[[departments]]
key = "suporte"
name = "Suporte"
addresses = ["suporte@example.com"]
default = true

[limits]
max_messages_per_sender_per_hour = 100000
max_auto_replies_per_recipient_per_hour = 100000
"""
    )
    return settings, lmtp_port
