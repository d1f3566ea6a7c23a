"""Which maild instances are alive, so a dead one's work is taken over at once.

Outbox claims and IMAP source leases carry their owner's name (``host:pid``). When
an instance dies (``kill -9``, a host lost), those claims would otherwise hold
their rows until they expire (minutes). SPEC §10: another instance takes them
over within 10 s, on any host.

On PostgreSQL each instance holds a session-level advisory lock named after its
owner, on a connection of its own for as long as it runs; the server drops the
lock the moment that connection dies, with the process or its host. Another
instance asks "is X alive?" by trying X's lock: taking it means nobody holds it.
On SQLite (one host by design) an owner is alive when its process is.

An instance that works IMAP sources also holds a *shared* advisory lock common to
all of them (keyed by the schema, so two deployments in one database stay apart);
the number of its holders in ``pg_locks`` is the number of live IMAP instances,
from which each computes its fair share of the sources (``maild.intake.leases``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import zlib
from typing import Any

import peewee as pw
import psycopg2
import structlog

from maild.storage.db import is_postgres

log = structlog.get_logger("maild.liveness")

LOCK_NAMESPACE = "maild-instance:"
# First key of the shared "works IMAP sources" lock (two-key form: it shows in
# pg_locks as classid, with the schema's key as objid). "mail" in ASCII.
IMAP_MEMBERS_KEY = 0x6D61696C
COUNT_IMAP_MEMBERS = """
SELECT count(*) FROM pg_locks
WHERE locktype = 'advisory' AND granted AND mode = 'ShareLock'
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND classid = %s AND objid = %s AND objsubid = 2
"""


def pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # a previous run that had our pid (containers reuse pid 1)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def same_host_owner_alive(owner: str) -> bool:
    """SQLite's answer: an owner of this host is alive while its process is; an owner
    of another host (or a name that is not ``host:pid``) is assumed alive."""
    host, _, rest = owner.partition(":")
    pid = rest.split(":", 1)[0]
    if host != socket.gethostname() or not pid.isdigit():
        return True
    return pid_alive(int(pid))


class Liveness:
    """This instance's mark of life, and the test of another's."""

    def __init__(self, db: pw.Database, owner: str, *, imap: bool = False) -> None:
        self.db = db
        self.owner = owner
        self.imap = imap  # counted among the instances that share the IMAP sources
        self._members_key: int | None = None
        self._conn: Any = None
        self._lock = threading.Lock()

    @property
    def shared(self) -> bool:
        return is_postgres(self.db)

    def start(self) -> None:
        """Take this instance's lock (PostgreSQL); a no-op on SQLite."""
        if not self.shared:
            return
        with self._lock:
            self._connect()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(Exception):  # a broken connection: nothing to keep
                    self._conn.close()
                self._conn = None

    def check(self) -> bool:
        """Make sure our lock is still held (reconnecting if the server dropped us);
        False when it could not be, so callers know others may take our work."""
        if not self.shared:
            return True
        with self._lock:
            try:
                if self._conn is not None:
                    with self._conn.cursor() as cur:
                        cur.execute("SELECT 1")
                    return True
            except Exception as exc:  # the connection died: the lock went with it
                log.warning("liveness.lock_lost", owner=self.owner, error=str(exc))
                self._conn = None
            try:
                self._connect()
            except Exception as exc:
                log.warning("liveness.lock_unavailable", owner=self.owner, error=str(exc))
                return False
            return True

    def is_alive(self, owner: str) -> bool:
        if owner == self.owner:
            return True
        if not self.shared:
            return same_host_owner_alive(owner)
        with self._lock:
            if self._conn is None:
                return True  # cannot tell: never take work on a guess
            try:
                with self._conn.cursor() as cur:
                    cur.execute(
                        "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))",
                        (LOCK_NAMESPACE + owner,),
                    )
                    free = bool(cur.fetchone()[0])
                    if free:
                        cur.execute(
                            "SELECT pg_advisory_unlock(hashtextextended(%s, 0))",
                            (LOCK_NAMESPACE + owner,),
                        )
                return not free
            except Exception as exc:
                log.warning("liveness.check_failed", owner=owner, error=str(exc))
                self._conn = None
                return True

    def imap_instances(self) -> int | None:
        """How many live instances work IMAP sources (this one included); None on
        SQLite, for an instance that does not, or when it cannot be told."""
        if not self.shared or not self.imap:
            return None
        with self._lock:
            if self._conn is None or self._members_key is None:
                return None
            try:
                with self._conn.cursor() as cur:
                    cur.execute(COUNT_IMAP_MEMBERS, (IMAP_MEMBERS_KEY, self._members_key))
                    return max(1, int(cur.fetchone()[0]))
            except Exception as exc:  # check() reconnects on the next round
                log.warning("liveness.count_failed", error=str(exc))
                with contextlib.suppress(Exception):  # its locks must go with it
                    self._conn.close()
                self._conn = None
                return None

    def _connect(self) -> None:
        params = dict(self.db.connect_params)
        conn = psycopg2.connect(dbname=self.db.database, **params)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(
                "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))",
                (LOCK_NAMESPACE + self.owner,),
            )
            if not cur.fetchone()[0]:
                conn.close()
                raise RuntimeError(f"another process holds instance lock {self.owner!r}")
            if self.imap:
                cur.execute("SELECT coalesce(current_schema(), '')")
                key = zlib.crc32(str(cur.fetchone()[0]).encode()) & 0x7FFFFFFF
                cur.execute("SELECT pg_advisory_lock_shared(%s, %s)", (IMAP_MEMBERS_KEY, key))
                self._members_key = key
        self._conn = conn


__all__ = ["Liveness", "pid_alive", "same_host_owner_alive"]
