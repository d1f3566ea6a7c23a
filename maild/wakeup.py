"""Wake the daemon's outbox sender when another process queued mail.

The daemon's own commits wake its sender directly (``App.outbox_listeners``). Mail
queued elsewhere -- the ``maild ingest`` pipe, ``maild tick``, another instance --
used to wait for the sender's safety pass (30 s). Now:

* PostgreSQL: ``storage.outbox.enqueue`` sends ``NOTIFY maild_outbox`` inside the
  transaction that queues the row (delivered on commit, to every instance); the
  daemon LISTENs on a connection of its own, watched by the event loop.
* SQLite (one host): the daemon binds a datagram socket ``wake.sock`` in
  ``data_dir``; a process that queued mail sends it one empty datagram. Nobody
  listening is fine: the sender's safety pass still runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import peewee as pw
import psycopg2
import structlog

from maild.storage.db import is_postgres
from maild.storage.outbox import OUTBOX_CHANNEL

log = structlog.get_logger("maild.wakeup")

SOCKET_NAME = "wake.sock"


def socket_path(data_dir: Path) -> Path:
    return data_dir / SOCKET_NAME


def poke(data_dir: Path) -> None:
    """Tell a daemon on this host that mail was queued (SQLite); never fails."""
    path = socket_path(data_dir)
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.sendto(b"", str(path))


class WakeListener:
    """In the daemon: calls ``wake`` whenever another process queued mail."""

    def __init__(self, db: pw.Database, data_dir: Path, wake: Callable[[], None]) -> None:
        self.db = db
        self.data_dir = data_dir
        self.wake = wake
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: Any = None
        self._sock: socket.socket | None = None

    @property
    def needs_connection(self) -> bool:
        """PostgreSQL, and not listening (not yet, or the connection was lost)."""
        return is_postgres(self.db) and self._conn is None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Listen; a failure is logged and leaves the sender on its safety pass."""
        self._loop = loop
        if is_postgres(self.db):
            return  # the daemon calls connect() (blocking) then attach() from the loop
        path = socket_path(self.data_dir)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # left by a process that is gone (one daemon per data_dir)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.bind(str(path))  # AF_UNIX paths are limited to 107 bytes
        except OSError as exc:
            sock.close()
            log.warning("wakeup.unavailable", path=str(path), error=str(exc))
            return
        sock.setblocking(False)
        self._sock = sock
        loop.add_reader(sock.fileno(), self._on_datagram)

    def connect(self) -> Any:
        """A connection LISTENing on the outbox channel (blocking: call in a thread)."""
        conn = psycopg2.connect(dbname=self.db.database, **self.db.connect_params)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"LISTEN {OUTBOX_CHANNEL}")
        return conn

    def attach(self, conn: Any) -> None:
        """Watch ``conn`` from the event loop; wake the sender once, for what was
        queued while nobody listened."""
        assert self._loop is not None
        self._conn = conn
        self._loop.add_reader(conn.fileno(), self._on_notify)
        self.wake()

    def _on_notify(self) -> None:
        try:
            self._conn.poll()
        except Exception as exc:  # the connection died: the safety pass still runs
            log.warning("wakeup.listen_lost", error=str(exc))
            self._stop_listening()
            return
        if self._conn.notifies:
            self._conn.notifies.clear()
            self.wake()

    def _on_datagram(self) -> None:
        assert self._sock is not None
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while True:
                self._sock.recv(64)
        self.wake()

    def _stop_listening(self) -> None:
        if self._conn is not None:
            if self._loop is not None:
                with contextlib.suppress(Exception):
                    self._loop.remove_reader(self._conn.fileno())
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def close(self) -> None:
        self._stop_listening()
        if self._sock is not None:
            if self._loop is not None:
                with contextlib.suppress(Exception):
                    self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
            with contextlib.suppress(OSError):
                socket_path(self.data_dir).unlink()


__all__ = ["WakeListener", "poke", "socket_path"]
