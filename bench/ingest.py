"""Ingest benchmark: a real Dovecot, a real SMTP sink and ``maild run``.

Prints one table:
  (a) floor: the same messages fetched with imapclient in batches and parsed with
      the stdlib email parser, nothing else;
  (b) backlog: ``maild run`` (SQLite) from a full INBOX until every outcome is
      committed and every message moved out of the INBOX;
  (c) the same run until every resulting mail (confirmations, agent notifications)
      is accepted by the sink;
  (d) latency with IDLE: single messages APPENDed one at a time to an idle daemon,
      time until the sink has the confirmation (p50, p95, p99);
  (e) peak RSS of the daemon (VmHWM): the backlog, 10 MB attachments, one 50 MB
      LMTP message;
  (f) (b) and (c) again with the database on PostgreSQL (127.0.0.1:5432, database
      ``test``, a fresh schema dropped afterwards): skipped, saying why, when it
      cannot be reached.

Run:  .venv/bin/python bench/ingest.py [--messages 5000] [--latency 50] [--big 5]
Needs Debian's dovecot-imapd (scripts/install-test-deps.sh). Loopback only.
"""

from __future__ import annotations

import argparse
import contextlib
import email
import email.policy
import os
import random
import signal
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from imapclient import IMAPClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ingest_corpus import big_lmtp_message, make_message  # noqa: E402
from ingest_store import Store, pg_schema, pg_unreachable, write_settings  # noqa: E402

from tests.plugins.dovecot import DovecotServer, find_dovecot  # noqa: E402
from tests.plugins.smtpsink import SmtpSink  # noqa: E402


def login_with_retry(server: DovecotServer, user: str, seconds: float = 10.0):  # type: ignore[no-untyped-def]
    """Dovecot re-reads a new passwd-file at most once a second: retry briefly."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return server.client(user, timeout=60)
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def floor(server: DovecotServer, user: str, count: int) -> float:
    start = time.perf_counter()
    client = server.client(user, timeout=60)
    client.select_folder("INBOX", readonly=True)
    uids = client.search(["ALL"])
    parsed = 0
    for i in range(0, len(uids), 100):
        batch = client.fetch(uids[i : i + 100], ["BODY.PEEK[]"])
        for data in batch.values():
            email.message_from_bytes(data[b"BODY[]"], policy=email.policy.default)
            parsed += 1
    client.logout()
    assert parsed == count, (parsed, count)
    return time.perf_counter() - start


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak_rss(pid: int) -> None:
    """Start VmHWM over from the current RSS (Linux: clear_refs 5), so each figure
    is the peak of its own step, not of the whole run."""
    with contextlib.suppress(OSError):  # not permitted: the figure is the peak so far
        Path(f"/proc/{pid}/clear_refs").write_text("5")


def start_daemon(settings: Path, log_path: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, MAILD_LOG_LEVEL="warning")
    log = log_path.open("ab")
    return subprocess.Popen(
        [str(ROOT / ".venv/bin/maild"), "--config", str(settings), "run"],
        stdout=log,
        stderr=log,
        env=env,
    )


def wait_until(predicate, timeout: float, interval: float = 0.02) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def append_corpus(server: DovecotServer, count: int, seed: int) -> tuple[str, str]:
    """A new mailbox user with ``count`` generated messages in its INBOX."""
    user, password = server.add_user()
    rng = random.Random(seed)
    appender = login_with_retry(server, user)
    for i in range(count):
        raw, _ = make_message(i, rng)
        appender.append("INBOX", raw)
    appender.logout()
    return user, password


@dataclass
class Backlog:
    committed: float  # (b) every outcome committed and the INBOX emptied
    sent: float  # (c) every resulting mail accepted by the sink
    mails: int
    ok: bool
    proc: subprocess.Popen[bytes]
    cpu: float  # the daemon's CPU seconds (user + system) until (c)


def run_backlog(
    server: DovecotServer, user: str, store: Store, settings: Path, sink: SmtpSink, count: int
) -> Backlog:
    """Start ``maild run`` on a full INBOX; time (b) and (c). The daemon keeps running."""
    watcher = server.client(user, timeout=60)
    before = len(sink.messages)
    start = time.perf_counter()
    proc = start_daemon(settings, settings.parent / "daemon.log")
    committed: float | None = None
    sent: float | None = None
    deadline = time.monotonic() + 1800
    while sent is None and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
        if committed is None and store.processed() >= count and inbox_empty(watcher):
            committed = time.perf_counter() - start
        if committed is not None and store.queued() and not store.unsent():
            sent = time.perf_counter() - start
    watcher.logout()
    ok = sent is not None
    elapsed = time.perf_counter() - start
    mails = len(sink.messages) - before
    cpu = cpu_seconds(proc.pid) if proc.poll() is None else float("nan")
    return Backlog(committed or elapsed, sent or elapsed, mails, ok, proc, cpu)


def inbox_empty(client: IMAPClient) -> bool:
    return client.select_folder("INBOX", readonly=True)[b"EXISTS"] == 0


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def measure_latency(
    server: DovecotServer, user: str, store: Store, sink: SmtpSink, count: int, first: int
) -> tuple[list[float], list[float]]:
    """(d): one message at a time into the idle daemon; end to end, and maild's share."""
    latencies: list[float] = []
    own_part: list[float] = []  # stored by maild -> confirmation accepted by the sink
    client = server.client(user, timeout=60)
    for j in range(count):
        before = len(sink.messages)
        raw, _ = make_message(first + j, random.Random(j), big=False)
        raw = raw.replace(b"In-Reply-To:", b"X-Old-In-Reply-To:")
        t0 = time.perf_counter()
        client.append("INBOX", raw)
        if wait_until(lambda b=before: len(sink.messages) > b, timeout=30, interval=0.002):
            latencies.append(time.perf_counter() - t0)
            stored = store.last_received_at()
            if stored is not None:
                own_part.append(time.time() - stored)
        time.sleep(0.2)  # let the daemon settle back into IDLE
    client.logout()
    return latencies, own_part


def measure_memory(
    server: DovecotServer,
    user: str,
    store: Store,
    proc: subprocess.Popen[bytes],
    args: argparse.Namespace,
    lmtp: int,
) -> tuple[float, float]:
    """(e): peak RSS with 10 MB attachments, then after one 50 MB LMTP message."""
    reset_peak_rss(proc.pid)
    client = server.client(user, timeout=60)
    rng = random.Random(args.seed)
    for k in range(args.big):
        raw, _ = make_message(10_000_000 + k, rng, big=True)
        client.append("INBOX", raw)
    client.logout()
    total = args.messages + args.latency + args.big
    wait_until(lambda: store.processed() >= total, timeout=600, interval=0.2)
    rss_big = peak_rss_mb(proc.pid)

    # One 50 MB message over LMTP (too_large: only its headers are kept).
    reset_peak_rss(proc.pid)
    huge = big_lmtp_message(50 * 1024 * 1024)
    with smtplib.LMTP("127.0.0.1", lmtp, timeout=120) as conn:
        conn.sendmail("cliente@example.com.br", ["suporte@example.com"], huge)
    del huge
    wait_until(lambda: store.processed() >= total + 1, timeout=120, interval=0.2)
    return rss_big, peak_rss_mb(proc.pid)


def postgres_backlog(
    server: DovecotServer, tmp: Path, sink: SmtpSink, user: str, password: str, count: int
) -> Backlog:
    """(f): the backlog of (b) and (c) with the database on PostgreSQL."""
    with pg_schema() as schema:
        store = Store(pg_schema=schema)
        settings, _ = write_settings(tmp / "pg", server.port, user, password, sink.port, store)
        try:
            result = run_backlog(server, user, store, settings, sink, count)
            stop(result.proc)
        finally:
            store.close()
    return result


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def backlog_rows(
    committed: str, sent: str, run: Backlog, n: int, t_floor: float
) -> list[tuple[str, ...]]:
    """The (b) and (c) lines of one backlog run, under the given labels."""
    return [
        (
            f"{committed}: backlog -> outcomes committed + moved",
            f"{run.committed:8.2f} s",
            f"{n / run.committed:8.0f} msg/s",
            f"{run.committed / t_floor:.1f}x floor (target <= 2x)",
        ),
        (
            f"{sent}: backlog -> mails accepted by the sink",
            f"{run.sent:8.2f} s",
            f"{n / run.sent:8.0f} msg/s",
            f"{run.sent / t_floor:.1f}x floor (target <= 3x); {run.mails} mails; ok={run.ok}",
        ),
        (
            f"{sent}: daemon CPU per message (user + sys)",
            f"{run.cpu * 1000 / n:8.1f} ms",
            "",
            f"{run.cpu:.1f} s of CPU in {run.sent:.1f} s",
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--latency", type=int, default=50, help="single messages for (d)")
    parser.add_argument("--big", type=int, default=5, help="10 MB messages for (e)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    binary = find_dovecot()
    if binary is None:
        print("dovecot not installed: run scripts/install-test-deps.sh", file=sys.stderr)
        return 1
    pg_problem = pg_unreachable()
    with tempfile.TemporaryDirectory(prefix="maild-bench-") as tmpdir:
        tmp = Path(tmpdir)
        tmp.chmod(0o755)  # Dovecot's unprivileged processes must traverse it
        (tmp / "dovecot").mkdir()
        server = DovecotServer(binary, tmp / "dovecot")
        server.start()
        sink = SmtpSink()
        sink.start()
        try:
            rows = measure_all(args, server, sink, tmp, pg_problem)
        finally:
            sink.stop()
            server.cleanup()
    width = max(len(r[0]) for r in rows)
    print(f"maild ingest benchmark: {args.messages} messages, {os.cpu_count()} cores")
    for row in rows:
        name, rest = row[0], row[1:]
        print(f"{name:<{width}}  " + "  ".join(rest))
    return 0


def measure_all(
    args: argparse.Namespace,
    server: DovecotServer,
    sink: SmtpSink,
    tmp: Path,
    pg_problem: str | None,
) -> list[tuple[str, ...]]:
    """Every figure, in the order printed; the SQLite daemon first, then PostgreSQL."""
    n = args.messages
    print(f"generating and APPENDing {n} messages...", file=sys.stderr)
    user, password = append_corpus(server, n, args.seed)
    pg_user = append_corpus(server, n, args.seed) if pg_problem is None else None
    t_floor = floor(server, user, n)

    store = Store(sqlite_path=tmp / "sqlite" / "var" / "maild.sqlite3")
    settings, lmtp = write_settings(tmp / "sqlite", server.port, user, password, sink.port, store)
    print("(b), (c): maild run on SQLite...", file=sys.stderr)
    run = run_backlog(server, user, store, settings, sink, n)
    rss_backlog = peak_rss_mb(run.proc.pid)
    latencies, own_part = measure_latency(server, user, store, sink, args.latency, n)
    rss_big, rss_huge = measure_memory(server, user, store, run.proc, args, lmtp)
    stop(run.proc)

    rows: list[tuple[str, ...]] = [
        (
            "(a) floor: imapclient fetch + stdlib parse",
            f"{t_floor:8.2f} s",
            f"{n / t_floor:8.0f} msg/s",
        ),
        *backlog_rows("(b) maild run", "(c) maild run", run, n, t_floor),
        (
            "(d) IDLE latency append -> confirmation",
            f"p50 {pct(latencies, 50):.3f} s",
            f"p95 {pct(latencies, 95):.3f} s",
            f"p99 {pct(latencies, 99):.3f} s (target p99 <= 1.0); n={len(latencies)}",
        ),
        (
            "(d) of which maild: stored -> confirmation",
            f"p50 {pct(own_part, 50):.3f} s",
            f"p95 {pct(own_part, 95):.3f} s",
            f"p99 {pct(own_part, 99):.3f} s (the rest: Dovecot's IDLE notice + fetch)",
        ),
        ("(e) peak RSS, backlog", f"{rss_backlog:8.1f} MB", "target <= 200 MB"),
        ("(e) peak RSS, with 10 MB attachments", f"{rss_big:8.1f} MB", "target <= 200 MB"),
        ("(e) peak RSS, after a 50 MB LMTP message", f"{rss_huge:8.1f} MB", "target <= 200 MB"),
    ]
    if pg_user is None:
        rows.append((f"(f) skipped: PostgreSQL at 127.0.0.1:5432 not reachable: {pg_problem}",))
        return rows
    print("(f): maild run on PostgreSQL...", file=sys.stderr)
    pg_run = postgres_backlog(server, tmp, sink, *pg_user, n)
    return rows + backlog_rows("(f) (b) on PostgreSQL", "(f) (c) on PostgreSQL", pg_run, n, t_floor)


if __name__ == "__main__":
    sys.exit(main())
