"""Resource faults on real parts (SPEC §2, issue 15): a small tmpfs holding the
database, data_dir and the log fills up while LMTP deliveries and IMAP fetches are
in flight, and a PostgreSQL backend is terminated mid-batch. Only temporary answers,
nothing lost, and everything recovers by itself once the resource is back.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import random
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import peewee
import pytest
from imapclient import SEEN
from maild.storage.models import Inbound

from maild.cli import run_cli
from maild.cli_env import EX_TEMPFAIL
from maild.errors import StorageUnavailableError
from maild.intake.imap import ImapRunner
from maild.logging import configure_logging
from maild.pipeline import ingest
from maild.policy import types as o
from maild.recovery import retry_stranded
from maild.storage_health import probe_storage
from tests.component.conftest import to_toml
from tests.conftest import BASE_SETTINGS, IN_CI, PG_URL, _merge
from tests.integration.test_lmtp import Listener, free_port, lmtp_client, send_data

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

DISK_BYTES = 8 * 1024 * 1024


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs of our own, unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(mount)]
    try:
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        message = f"cannot mount a tmpfs (needs root or CAP_SYS_ADMIN): {detail.strip()}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, capture_output=True)


def _fill(disk: Path) -> Path:
    """Write a file until the filesystem is full; return it (delete it to free space)."""
    filler = disk / "filler"
    chunk = b"\0" * 65536
    with open(filler, "wb", buffering=0) as fh:
        while True:
            try:
                fh.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
    for size in (4096, 512, 1):  # the last crumbs too
        with open(filler, "ab", buffering=0) as fh, contextlib.suppress(OSError):
            while True:
                fh.write(b"\0" * size)
    return filler


def _message(message_id: str, body_bytes: int = 3000) -> bytes:
    rng = random.Random(message_id)
    body = "\r\n".join(
        "".join(rng.choice("abcdefghij ") for _ in range(76)) for _ in range(body_bytes // 78)
    )
    return (
        f"From: Cliente <cliente{rng.randrange(1000)}@padaria.example.com.br>\r\n"
        "To: suporte@example.com\r\n"
        f"Subject: Pedido {message_id}\r\n"
        f"Message-ID: <{message_id}>\r\n"
        "Date: Tue, 24 Nov 2026 10:00:00 -0300\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n" + body + "\r\n"
    ).encode()


def _deliver(listener: Listener, raw: bytes) -> int:
    with lmtp_client(listener) as client:
        assert client.mail("mta@example.com")[0] == 250
        assert client.rcpt("suporte@example.com")[0] == 250
        ((code, text),) = send_data(client, raw, 1)
        if code == 451:
            assert text.startswith(b"4.3."), text
        return code


def _stored_ids() -> set[str]:
    rows = Inbound.select(Inbound.message_id).where(
        Inbound.message_id.is_null(False) & (Inbound.state != "received")
    )
    return {row.message_id.strip("<>") for row in rows}


def _all_seen(mailbox: Any) -> bool:
    imap = mailbox.client()
    try:
        imap.select_folder("INBOX", readonly=True)
        flags = imap.fetch(imap.search(["ALL"]), ["FLAGS"])
        return all(SEEN in data[b"FLAGS"] for data in flags.values())
    finally:
        with contextlib.suppress(Exception):
            imap.logout()


@pytest.mark.parametrize("blobs", ["database", "files"])
def test_full_disk_while_lmtp_and_imap_are_in_flight(
    small_disk: Path, make_app: Any, imap_mailbox: Any, tmp_path: Path, blobs: str
) -> None:
    log_path = small_disk / "maild.log"
    log_file = open(log_path, "a", buffering=1)  # noqa: SIM115 - closed below, may not flush
    configure_logging("info", json=True, stream=log_file)
    secret = tmp_path / "imap-password"
    secret.write_text(imap_mailbox.password)
    app = make_app(
        f"sqlite:///{small_disk / 'maild.sqlite3'}",
        daemon={"data_dir": str(small_disk / "var")},
        storage={"blobs": blobs},
        listener={"enabled": True, "protocol": "lmtp", "port": free_port()},
        imap=[imap_mailbox.source_table(secret, folder="INBOX", poll_seconds=1, idle=False)],
    )
    listener = Listener(app).start()
    stop = threading.Event()
    runner = ImapRunner(
        app,
        app.settings.imap[0],
        owner="instance-a",
        stop_event=stop,
        rng=random.Random(7),
        backoff_base=0.2,
        backoff_cap=1.0,
    )
    imap_thread = threading.Thread(target=runner.run, name="imap", daemon=True)
    imap_thread.start()

    lmtp_ids = [f"lmtp-{i}@c.example" for i in range(40)]
    imap_ids = [f"imap-{i}@c.example" for i in range(12)]
    codes: dict[str, list[int]] = {mid: [] for mid in lmtp_ids}
    filler: Path | None = None
    try:
        # Deliveries and APPENDs in flight while the disk fills up.
        def deliver_all(ids: list[str]) -> None:
            for mid in ids:
                codes[mid].append(_deliver(listener, _message(mid)))

        senders = [
            threading.Thread(target=deliver_all, args=(lmtp_ids[k::2],), daemon=True)
            for k in range(2)
        ]
        for thread in senders:
            thread.start()
        for mid in imap_ids[:6]:
            imap_mailbox.append(_message(mid))
        time.sleep(0.3)
        filler = _fill(small_disk)
        for mid in imap_ids[6:]:
            imap_mailbox.append(_message(mid))
        for thread in senders:
            thread.join(60)
        # With the disk full, at least the last deliveries met it.
        while all(451 not in c for c in codes.values()):
            extra = f"lmtp-extra-{secrets.token_hex(3)}@c.example"
            codes[extra] = [_deliver(listener, _message(extra))]
        assert {c for cs in codes.values() for c in cs} <= {250, 451}  # never a 5xx
        state = app.metrics.storage.current()
        assert state is not None
        assert state.fault.target == "database" or state.fault.target.startswith(str(small_disk))

        assert not probe_storage(app)  # still full: /healthz stays unavailable

        # Space returns: the MTA retries what got 451, the IMAP runner its next pass.
        filler.unlink()
        filler = None
        if not app.metrics.storage.stranded():
            assert probe_storage(app)  # what the daemon does while nothing is stranded
        for mid, cs in codes.items():
            if cs[-1] != 250:
                cs.append(_deliver(listener, _message(mid)))
                assert cs[-1] == 250, (mid, cs, app.metrics.storage.current())
        retry_stranded(app)  # the daemon's storage_retry_loop does this every 5 s

        # The runner flags a message once its outcome is committed: wait for both.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (
            set(imap_ids) <= _stored_ids() and _all_seen(imap_mailbox)
        ):
            time.sleep(0.2)
    finally:
        stop.set()
        imap_thread.join(10)
        listener.stop()
        if filler is not None:
            filler.unlink()

    stored = _stored_ids()
    assert set(codes) <= stored  # every LMTP message, whether 250 at once or after a 451
    assert set(imap_ids) <= stored
    assert Inbound.select().where(Inbound.state == "received").count() == 0
    assert Inbound.select().where(Inbound.outcome == o.QUARANTINED).count() == 0
    assert app.metrics.storage.current() is None  # /healthz is back to ok

    # IMAP: processed messages are flagged, none was left behind.
    assert _all_seen(imap_mailbox)

    log_file.close()
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    assert "storage.recovered" in [line["event"] for line in lines]
    assert not any("Traceback" in json.dumps(line) or "trace" in line for line in lines)


def test_ingest_exits_75_on_a_full_disk_and_0_once_space_returns(
    small_disk: Path, make_app: Any, tmp_path: Path
) -> None:
    url = f"sqlite:///{small_disk / 'maild.sqlite3'}"
    app = make_app(url, daemon={"data_dir": str(small_disk / "var")})
    data = _merge(BASE_SETTINGS, {"daemon": {"data_dir": str(small_disk / "var")}})
    data["database"] = {"url": url}
    config = tmp_path / "settings.toml"
    config.write_text(to_toml(data), encoding="utf-8")
    path = tmp_path / "m.eml"
    path.write_bytes(_message("cli-1@c.example"))

    def run() -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = run_cli(["--config", str(config), "ingest", str(path)], out, err, clock=app.clock)
        return code, out.getvalue(), err.getvalue()

    ingest(app, _message("warm-up@c.example"))
    filler = _fill(small_disk)
    try:
        code, out, err = run()
        assert code == EX_TEMPFAIL, (out, err)
        assert out == "" and "Traceback" not in err
    finally:
        filler.unlink()
    code, out, err = run()
    assert code == 0, err
    assert json.loads(out)["outcome"] == o.CREATED


# ---------------------------------------------------------------------------
# PostgreSQL: the backend dies mid-batch
# ---------------------------------------------------------------------------


@pytest.fixture
def pg_schema() -> Iterator[tuple[str, str]]:
    try:
        admin = peewee.PostgresqlDatabase(
            "test", host="127.0.0.1", port=5432, user="postgres", connect_timeout=3
        )
        admin.connect()
    except Exception as exc:
        message = f"PostgreSQL at 127.0.0.1:5432 not reachable: {exc}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    schema = f"t_{secrets.token_hex(6)}"
    admin.execute_sql(f'CREATE SCHEMA "{schema}"')
    name = f"maild-{schema}"
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}&application_name={name}", name
    finally:
        admin.execute_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


def _terminate(application_name: str) -> int:
    killer = peewee.PostgresqlDatabase("test", host="127.0.0.1", port=5432, user="postgres")
    try:
        rows = killer.execute_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = %s AND pid <> pg_backend_pid()",
            (application_name,),
        ).fetchall()
        return len(rows)
    finally:
        killer.close()


def test_postgresql_backend_terminated_mid_batch(make_app: Any, pg_schema) -> None:
    url, name = pg_schema
    app = make_app(url)
    ids = [f"pg-{i}@c.example" for i in range(60)]
    tempfailed: list[str] = []
    stop = threading.Event()
    kills = 0

    def killer() -> None:
        nonlocal kills
        while not stop.is_set():
            kills += _terminate(name)
            stop.wait(0.05)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        for mid in ids:
            try:
                result = ingest(app, _message(mid))
            except StorageUnavailableError as exc:
                assert exc.fault is not None, exc
                tempfailed.append(mid)
                continue
            assert result.outcome == o.CREATED, result
    finally:
        stop.set()
        thread.join(5)
    assert kills > 0 and tempfailed, "the backend was never terminated mid-batch"

    # The connection comes back by itself: the retries (the MTA's) all go through.
    for mid in tempfailed:
        assert ingest(app, _message(mid)).outcome in (o.CREATED, o.DUPLICATE_MESSAGE)
    retry_stranded(app)
    assert app.metrics.storage.current() is None
    assert set(ids) <= _stored_ids()
    assert Inbound.select().where(Inbound.state == "received").count() == 0
    assert Inbound.select().where(Inbound.outcome == o.QUARANTINED).count() == 0
