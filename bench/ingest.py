"""Ingest benchmark: a real Dovecot, a real SMTP sink and ``maild run``.

Prints one table:
  (a) floor: the same messages fetched with imapclient in batches and parsed with
      the stdlib email parser, nothing else;
  (b) backlog: ``maild run`` from a full INBOX to every outcome committed and every
      confirmation accepted by the sink;
  (c) latency with IDLE: single messages APPENDed one at a time to an idle daemon,
      time until the sink has the confirmation (p50, p95, p99);
  (d) peak RSS of the daemon (VmHWM), also with 10 MB attachments in the mix.

Run:  .venv/bin/python bench/ingest.py [--messages 5000] [--latency 50] [--big 5]
Needs Debian's dovecot-imapd (scripts/install-test-deps.sh). Loopback only.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import email
import email.policy
import os
import random
import signal
import smtplib
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from email.utils import format_datetime, make_msgid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.plugins.dovecot import DovecotServer, find_dovecot  # noqa: E402
from tests.plugins.smtpsink import SmtpSink  # noqa: E402

PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
SUBJECTS = [
    "Não consigo emitir NF-e",
    "Erro ao acessar o portal",
    "Boleto vencido",
    "Pedido atrasado",
    "Invoice question",
    "Cannot log in",
    "Relatório mensal",
    "Troca de senha",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_message(i: int, rng: random.Random, big: bool = False) -> tuple[bytes, str]:
    """One realistic customer message; returns (raw, message_id)."""
    mid = make_msgid(idstring=f"b{i}", domain="cliente.example.com.br")
    sender = f"cliente{i % 997}@empresa{i % 89}.example.com.br"
    subject = f"{rng.choice(SUBJECTS)} #{i}"
    date = format_datetime(email.utils.localtime())
    kind = rng.random()
    head = (
        f"From: Cliente {i} <{sender}>\r\nTo: suporte@example.com\r\n"
        f"Date: {date}\r\nMessage-ID: {mid}\r\nMIME-Version: 1.0\r\n"
    )
    body_pt = (
        "Olá, equipe de suporte.\r\n\r\nNão consigo emitir a nota fiscal desde ontem; "
        "aparece a mensagem de erro 503 ao confirmar.\r\n\r\nObrigado,\r\nCliente\r\n"
    )
    if big or kind < 0.10:  # attachments
        payload = os.urandom(10 * 1024 * 1024) if big else PNG_1PX * 1
        name = "anexo.png"
        data = PNG_1PX + payload[len(PNG_1PX) :] if big else PNG_1PX
        enc = base64.encodebytes(data).decode().replace("\n", "\r\n")
        raw = (
            head + f"Subject: {subject}\r\n"
            'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
            "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n" + body_pt + "--b1\r\n"
            f'Content-Type: image/png; name="{name}"\r\n'
            f'Content-Disposition: attachment; filename="{name}"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n" + enc + "--b1--\r\n"
        ).encode()
    elif kind < 0.25:  # ISO-8859-1
        raw = (
            head + "Subject: =?ISO-8859-1?Q?Solicita=E7=E3o_de_cota=E7=E3o?= " + str(i) + "\r\n"
            "Content-Type: text/plain; charset=ISO-8859-1\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n"
        ).encode() + body_pt.encode("latin-1")
    elif kind < 0.40:  # HTML only
        raw = (
            head + f"Subject: {subject}\r\n"
            "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
            "<html><body><p>Olá,</p><p>O sistema está <b>fora do ar</b> desde as 9h.</p>"
            "<p>Att,<br>Cliente</p></body></html>\r\n"
        ).encode()
    else:  # plain UTF-8, some of them replies to an earlier message (threading)
        extra = ""
        if kind > 0.75 and i > 10:
            parent = make_msgid(idstring=f"b{i - 7}", domain="cliente.example.com.br")
            extra = f"In-Reply-To: {parent}\r\nReferences: {parent}\r\n"
            subject = "Re: " + subject
        raw = (
            head + extra + f"Subject: {subject}\r\n"
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
            + body_pt
        ).encode()
    return raw, mid.strip("<>")


def write_settings(
    tmp: Path, imap_port: int, user: str, password: str, smtp_port: int, lmtp_port: int
) -> Path:
    (tmp / "imap-password").write_text(password)
    settings = tmp / "settings.toml"
    settings.write_text(
        f"""
[daemon]
instance = "Bench Suporte"
data_dir = "{tmp / "var"}"
language = "pt_BR"

[[imap]]
name = "bench"
host = "127.0.0.1"
port = {imap_port}
security = "none"
username = "{user}"
password_file = "{tmp / "imap-password"}"
folder = "INBOX"
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
    return settings


def big_lmtp_message(size: int) -> bytes:
    """A customer mail of about ``size`` bytes: one base64 PDF attachment."""
    body = base64.encodebytes(os.urandom(size * 3 // 4)).replace(b"\n", b"\r\n")
    head = (
        b"From: Cliente <cliente@example.com.br>\r\nTo: suporte@example.com\r\n"
        b"Subject: Arquivo grande\r\nMessage-ID: <bench-huge@cliente.example>\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain\r\n\r\nSegue o arquivo.\r\n--b\r\n"
        b"Content-Type: application/pdf; name=a.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    )
    return head + body + b"\r\n--b--\r\n"


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


def processed_count(db_path: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5) as conn:
            row = conn.execute("SELECT COUNT(*) FROM inbound WHERE state != 'received'").fetchone()
            return int(row[0])
    except sqlite3.Error:
        return 0


def last_received_at(db_path: Path) -> float | None:
    """Wall-clock time (epoch seconds) the newest inbound message was stored."""
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5) as conn:
        row = conn.execute("SELECT received_at FROM inbound ORDER BY id DESC LIMIT 1").fetchone()
    if row is None:
        return None
    stamp = datetime.fromisoformat(str(row[0])).replace(tzinfo=UTC)
    return stamp.timestamp()


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--latency", type=int, default=50, help="single messages for (c)")
    parser.add_argument("--big", type=int, default=5, help="10 MB messages for (d)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    binary = find_dovecot()
    if binary is None:
        print("dovecot not installed: run scripts/install-test-deps.sh", file=sys.stderr)
        return 1
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="maild-bench-") as tmpdir:
        tmp = Path(tmpdir)
        tmp.chmod(0o755)  # Dovecot's unprivileged processes must traverse it
        (tmp / "dovecot").mkdir()
        server = DovecotServer(binary, tmp / "dovecot")
        server.start()
        sink = SmtpSink()
        sink.start()
        try:
            user, password = server.add_user()
            print(f"generating and APPENDing {args.messages} messages…", file=sys.stderr)
            appender = login_with_retry(server, user)
            for i in range(args.messages):
                raw, _ = make_message(i, rng)
                appender.append("INBOX", raw)
            appender.logout()

            t_floor = floor(server, user, args.messages)

            lmtp_port = _free_port()
            settings = write_settings(tmp, server.port, user, password, sink.port, lmtp_port)
            db_path = tmp / "var" / "maild.sqlite3"
            log_path = tmp / "daemon.log"
            start = time.perf_counter()
            proc = start_daemon(settings, log_path)
            ok = wait_until(
                lambda: (
                    processed_count(db_path) >= args.messages
                    and len(sink.messages) >= args.messages * 0.5
                ),
                timeout=1800,
                interval=0.2,
            )
            # every confirmation: wait for the sink to stop growing
            last = -1
            while len(sink.messages) != last:
                last = len(sink.messages)
                time.sleep(1.0)
            t_backlog = time.perf_counter() - start - 1.0
            confirmations = len(sink.messages)
            rss_backlog = peak_rss_mb(proc.pid)

            # (c) latency: one message at a time into the idle daemon
            latencies = []
            own_part = []  # stored by maild -> confirmation accepted by the sink
            client = server.client(user, timeout=60)
            for j in range(args.latency):
                before = len(sink.messages)
                raw, _ = make_message(args.messages + j, random.Random(j), big=False)
                raw = raw.replace(b"In-Reply-To:", b"X-Old-In-Reply-To:")
                t0 = time.perf_counter()
                client.append("INBOX", raw)
                if wait_until(lambda b=before: len(sink.messages) > b, timeout=30, interval=0.002):
                    latencies.append(time.perf_counter() - t0)
                    stored = last_received_at(db_path)
                    if stored is not None:
                        own_part.append(time.time() - stored)
                time.sleep(0.2)  # let the daemon settle back into IDLE

            # (d) peak RSS with 10 MB attachments
            reset_peak_rss(proc.pid)
            for k in range(args.big):
                raw, _ = make_message(10_000_000 + k, rng, big=True)
                client.append("INBOX", raw)
            total = args.messages + args.latency + args.big
            wait_until(lambda: processed_count(db_path) >= total, timeout=600, interval=0.2)
            rss_big = peak_rss_mb(proc.pid)

            # (e) one 50 MB message over LMTP (too_large: only its headers are kept)
            reset_peak_rss(proc.pid)
            huge = big_lmtp_message(50 * 1024 * 1024)
            with smtplib.LMTP("127.0.0.1", lmtp_port, timeout=120) as lmtp:
                lmtp.sendmail("cliente@example.com.br", ["suporte@example.com"], huge)
            del huge
            wait_until(lambda: processed_count(db_path) >= total + 1, timeout=120, interval=0.2)
            rss_huge = peak_rss_mb(proc.pid)
            client.logout()
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
        finally:
            sink.stop()
            server.cleanup()

    def pct(values: list[float], q: float) -> float:
        if not values:
            return float("nan")
        return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]

    n = args.messages
    rows = [
        (
            "(a) floor: imapclient fetch + stdlib parse",
            f"{t_floor:8.2f} s",
            f"{n / t_floor:8.0f} msg/s",
            "",
        ),
        (
            "(b) maild run: backlog to outcomes + confirmations",
            f"{t_backlog:8.2f} s",
            f"{n / t_backlog:8.0f} msg/s",
            f"{t_backlog / t_floor:.1f}x floor (target <= 2x); {confirmations} mails; ok={ok}",
        ),
        (
            "(c) IDLE latency append -> confirmation",
            f"p50 {pct(latencies, 50):.3f} s",
            f"p95 {pct(latencies, 95):.3f} s",
            f"p99 {pct(latencies, 99):.3f} s (targets 0.5 / - / 1.0); n={len(latencies)}",
        ),
        (
            "(c) of which maild: stored -> confirmation",
            f"p50 {pct(own_part, 50):.3f} s",
            f"p95 {pct(own_part, 95):.3f} s",
            f"p99 {pct(own_part, 99):.3f} s (the rest: Dovecot's IDLE notice + fetch)",
        ),
        ("(d) peak RSS, backlog", f"{rss_backlog:8.1f} MB", "", "target <= 200 MB"),
        ("(d) peak RSS, with 10 MB attachments", f"{rss_big:8.1f} MB", "", "target <= 200 MB"),
        ("(e) peak RSS, after a 50 MB LMTP message", f"{rss_huge:8.1f} MB", "", "<= 200 MB"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"maild ingest benchmark: {n} messages, SQLite, {os.cpu_count()} cores")
    for name, a, b, c in rows:
        print(f"{name:<{width}}  {a:>14}  {b:>16}  {c}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
