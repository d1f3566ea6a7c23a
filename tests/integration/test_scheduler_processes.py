"""The scheduler as real ``maild tick`` processes on SQLite and PostgreSQL: two
instances at once never do a step twice, and a pass killed with SIGKILL in the
middle loses nothing and repeats nothing when the next pass runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from maild.storage.models import Outbox, SchedulerMark, Ticket

from maild.app import App
from maild.clock import FrozenClock
from maild.pipeline import ingest
from tests.component.conftest import mail, to_toml
from tests.conftest import BASE_SETTINGS, _merge

pytestmark = pytest.mark.integration

SP = ZoneInfo("America/Sao_Paulo")
WARNING_AT = datetime(2026, 11, 24, 13, 0, tzinfo=SP).isoformat()


def settings_file(tmp_path: Path, app: App, database_url: str) -> Path:
    data = _merge(BASE_SETTINGS, {"digest": {"enabled": False}})
    data["daemon"]["data_dir"] = str(app.settings.daemon.data_dir)
    data["database"] = {"url": database_url}
    path = tmp_path / "settings.toml"
    path.write_text(to_toml(data), encoding="utf-8")
    return path


def open_tickets(app: App, clock: FrozenClock, count: int) -> list[int]:
    clock.set(datetime(2026, 11, 24, 10, 0, tzinfo=SP).astimezone(UTC))
    numbers = []
    for n in range(count):
        result = ingest(app, mail(subject=f"Pedido {n}", sender=f"cliente{n}@loja{n}.example"))
        assert result.outcome == "created"
        numbers.append(result.ticket)
    return numbers


def tick(config: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "MAILD_LOG_LEVEL": "error"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "maild",
            "--config",
            str(config),
            "tick",
            "--now",
            WARNING_AT,
            "--json",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def warnings_per_ticket() -> dict[int, int]:
    counts: dict[int, int] = {}
    for row in Outbox.select().where(Outbox.template == "sla_warning"):
        counts[row.ticket_id] = counts.get(row.ticket_id, 0) + 1
    return counts


@pytest.fixture
def tick_app(make_app, database_url: str) -> App:
    return make_app(database_url, digest={"enabled": False})


def test_two_instances_never_do_a_step_twice(
    tick_app: App, clock: FrozenClock, database_url: str, tmp_path: Path
) -> None:
    numbers = open_tickets(tick_app, clock, 40)
    config = settings_file(tmp_path, tick_app, database_url)
    procs = [tick(config), tick(config)]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        outputs.append(json.loads(out))
    done = [a for o in outputs for a in o["actions"] if a["job"] == "first_response_warning"]
    assert sorted(a["ticket"] for a in done) == sorted(numbers)
    ids = [t.id for t in Ticket.select()]
    assert warnings_per_ticket() == dict.fromkeys(ids, 1)
    assert SchedulerMark.select().where(SchedulerMark.job == "housekeeping").count() == 1


def test_a_pass_killed_midway_is_finished_by_the_next(
    tick_app: App, clock: FrozenClock, database_url: str, tmp_path: Path
) -> None:
    count = 150
    open_tickets(tick_app, clock, count)
    config = settings_file(tmp_path, tick_app, database_url)
    proc = tick(config)
    deadline = time.monotonic() + 60
    while SchedulerMark.select().where(SchedulerMark.ticket.is_null(False)).count() < 3:
        assert proc.poll() is None or time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    interrupted = SchedulerMark.select().where(SchedulerMark.ticket.is_null(False)).count()
    assert interrupted < count, "the pass ended before the kill; make it longer"
    # What committed before the kill is whole: each mark has its mail, and no more.
    assert sum(warnings_per_ticket().values()) == interrupted
    again = tick(config)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    ids = [t.id for t in Ticket.select()]
    assert warnings_per_ticket() == dict.fromkeys(ids, 1)
    resumed = [a for a in json.loads(out)["actions"] if a["job"] == "first_response_warning"]
    assert len(resumed) == count - interrupted
