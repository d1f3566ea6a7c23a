"""``maild outbox list`` / ``maild outbox retry`` on a real database filled by the pipeline."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from maild.storage import outbox as ob
from maild.storage.models import Outbox

from maild.app import App
from maild.clock import FrozenClock
from maild.pipeline import ingest
from tests.component.conftest import mail

FIELDS = {
    "id",
    "status",
    "template",
    "ticket",
    "recipients",
    "subject",
    "message_id",
    "attempts",
    "next_attempt_at",
    "last_error",
    "created_at",
    "sent_at",
}

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def filled(app: App, write_config: Callable[..., Path]) -> tuple[App, Path, int]:
    """One ticket (a confirmation and an agent notification queued); returns its number."""
    result = ingest(app, mail(subject="Impressora sem papel"), "ingest")
    assert result.outcome == "created" and result.ticket is not None
    return app, write_config(app), result.ticket


def rows_of(cli: Cli, app: App, config: Path, *args: str) -> list[dict[str, Any]]:
    code, out, err = cli(app, config, "outbox", "list", "--json", *args)
    assert (code, err) == (0, "")
    data = json.loads(out)  # nothing but JSON on stdout
    assert isinstance(data, list)
    return data


def test_list_json_fields(filled: tuple[App, Path, int], cli: Cli) -> None:
    app, config, number = filled
    rows = rows_of(cli, app, config)
    assert [r["template"] for r in rows] == ["confirmation", "agent_notification"]
    confirmation = rows[0]
    assert set(confirmation) == FIELDS
    assert confirmation["status"] == "pending"
    assert confirmation["ticket"] == number
    assert confirmation["recipients"] == ["mariana@padaria.example.com.br"]
    assert confirmation["subject"] == f"[#{number}] Impressora sem papel"
    assert confirmation["attempts"] == 0
    assert confirmation["sent_at"] is None and confirmation["last_error"] is None
    row = Outbox.get_by_id(confirmation["id"])
    assert confirmation["message_id"] == row.message_id
    created = datetime.fromisoformat(confirmation["created_at"])
    assert created.utcoffset() is not None  # ISO 8601 with offset


def test_status_filter(filled: tuple[App, Path, int], cli: Cli, clock: FrozenClock) -> None:
    app, config, _number = filled
    first, second = Outbox.select().order_by(Outbox.id)
    with app.db.atomic():
        ob.record_failure(first, clock.now(), "550 5.1.1 no such user", permanent=True)
        ob.record_sent(second, clock.now(), "250 ok")

    failed = rows_of(cli, app, config, "--status", "failed")
    assert [(r["id"], r["last_error"]) for r in failed] == [(first.id, "550 5.1.1 no such user")]
    assert [r["id"] for r in rows_of(cli, app, config, "--status", "sent")] == [second.id]
    assert rows_of(cli, app, config, "--status", "pending") == []
    assert rows_of(cli, app, config, "--status", "bounced") == []

    code, out, _err = cli(app, config, "outbox", "list", "--status", "nonsense")
    assert (code, out) == (2, "")  # argparse's usage error


def test_plain_listing(filled: tuple[App, Path, int], cli: Cli) -> None:
    app, config, number = filled
    code, out, _err = cli(app, config, "outbox", "list")
    assert code == 0
    assert "confirmation" in out and str(number) in out


def test_retry_a_failed_row(filled: tuple[App, Path, int], cli: Cli, clock: FrozenClock) -> None:
    app, config, _number = filled
    row = Outbox.select().order_by(Outbox.id).first()
    with app.db.atomic():
        ob.record_failure(row, clock.now(), "550 refused", permanent=True)
    clock.advance(hours=2)

    code, out, err = cli(app, config, "outbox", "retry", str(row.id))

    assert (code, err) == (0, "")
    assert str(row.id) in out
    again = Outbox.get_by_id(row.id)
    assert again.status == ob.OUTBOX_PENDING
    assert row.id in [r.id for r in ob.claim_due("s", clock.now())]


@pytest.mark.parametrize("which", ["unknown", "sent"])
def test_retry_refusals_are_one_line_errors(
    filled: tuple[App, Path, int], cli: Cli, clock: FrozenClock, which: str
) -> None:
    app, config, _number = filled
    if which == "unknown":
        target = "4242"
    else:
        row = Outbox.select().order_by(Outbox.id).first()
        with app.db.atomic():
            ob.record_sent(row, clock.now())
        target = str(row.id)

    code, out, err = cli(app, config, "outbox", "retry", target)

    assert code == 1
    assert out == ""
    assert err.startswith("error: ") and target in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
