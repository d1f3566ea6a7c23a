"""The ``maild`` command line (SPEC §7) on a copy of the shipped settings.toml.

Commands run in-process through ``run_cli`` with their own stdout/stderr; tickets
are made the way an MTA pipe makes them, with ``maild ingest``. One test runs the
real console entry point in a subprocess to prove ``--json`` keeps stdout clean.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import structlog

from maild.cli import run_cli
from maild.clock import FrozenClock
from tests.component.conftest import ENTRY_FIELDS, TICKET_FIELDS
from tests.shipped_settings import write_settings

ISO_WITH_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d$")
SP = ZoneInfo("America/Sao_Paulo")


class Maild:
    """``maild --config <file> ...`` in-process: returns (exit code, stdout, stderr)."""

    def __init__(self, config: Path, clock: FrozenClock | None = None) -> None:
        self.config = config
        self.clock = clock or FrozenClock(datetime(2026, 11, 24, 13, 0, tzinfo=UTC))

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = run_cli(["--config", str(self.config), *argv], out, err, clock=self.clock)
        return code, out.getvalue(), err.getvalue()

    def ok(self, *argv: str) -> str:
        code, out, err = self(*argv)
        assert code == 0, err
        return out

    def json(self, *argv: str):
        return json.loads(self.ok(*argv, "--json"))


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """run_cli configures structlog for the process (level warning); undo it afterwards,
    or later tests' ``capture_logs`` would miss every info event."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.fixture
def maild(tmp_path: Path, clock: FrozenClock) -> Maild:
    return Maild(write_settings(tmp_path), clock)


def mail(
    tmp_path: Path,
    name: str,
    *,
    sender: str = "cliente@example.com.br",
    to: str = "suporte@example.com",
    subject: str = "Nota fiscal com erro",
    body: str = "Olá, a nota saiu com o CNPJ errado.\n",
    cc: str | None = None,
) -> Path:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{name}@cli.test>"
    msg["Date"] = "Tue, 24 Nov 2026 10:00:00 -0300"
    msg.set_content(body)
    path = tmp_path / f"{name}.eml"
    path.write_bytes(msg.as_bytes())
    return path


def ingest(maild: Maild, *files: Path) -> list[dict]:
    lines = maild.ok("ingest", *map(str, files)).splitlines()
    return [json.loads(line) for line in lines]


@pytest.fixture
def desk(maild: Maild, tmp_path: Path) -> dict[str, int]:
    """Four tickets in four states, made by mail; returns their numbers by name."""
    made = ingest(
        maild,
        mail(tmp_path, "open", subject="Nota fiscal com erro", cc="financas@example.com.br"),
        mail(
            tmp_path,
            "progress",
            sender="compras@loja.example.org",
            to="comercial@example.com",
            subject="Orçamento de 30 licenças",
        ),
        mail(tmp_path, "answered", to="financeiro@example.com", subject="Boleto vencido"),
        mail(tmp_path, "resolved", subject="Senha bloqueada"),
    )
    assert [m["outcome"] for m in made] == ["created"] * 4
    names = ["open", "progress", "answered", "resolved"]
    numbers = dict(zip(names, [m["ticket"] for m in made], strict=True))
    replies = ingest(
        maild,
        mail(
            tmp_path,
            "r-progress",
            sender="ana@example.com",
            to="comercial@example.com",
            subject=f"Re: [#{numbers['progress']}] Orçamento de 30 licenças",
            body="#status in_progress\n\nEstamos preparando a proposta.\n",
        ),
        mail(
            tmp_path,
            "r-answered",
            sender="bruno@example.com",
            to="financeiro@example.com",
            subject=f"Re: [#{numbers['answered']}] Boleto vencido",
            body="Segue o boleto atualizado.\n",
        ),
        mail(
            tmp_path,
            "r-resolved",
            sender="ana@example.com",
            subject=f"Re: [#{numbers['resolved']}] Senha bloqueada",
            body="#close\n\nSenha desbloqueada.\n",
        ),
    )
    assert [r["outcome"] for r in replies] == ["appended"] * 3
    return numbers


# ---------------------------------------------------------------------------
# check-config
# ---------------------------------------------------------------------------


def test_check_config_ok_summary(maild: Maild, tmp_path: Path) -> None:
    code, out, err = maild("check-config")

    assert code == 0, err
    assert out.splitlines()[0] == f"{maild.config}: OK"
    assert "suporte* (suporte@example.com)" in out
    assert f"Maildir {tmp_path / 'var' / 'outbox'}" in out
    assert "listener       disabled" in out
    assert len(out.splitlines()) < 25  # one screen


def test_check_config_broken_file_lists_every_error(tmp_path: Path) -> None:
    config = write_settings(
        tmp_path,
        extra={
            ("daemon", "timezone"): "Mars/Olympus",
            ("listener", "port"): "8025",
            ("smtp", "security"): "ssl",
        },
    )
    text = config.read_text(encoding="utf-8").replace(
        'addresses = ["financeiro@example.com"]', 'addresses = ["financeiro@"]'
    )
    config.write_text(text, encoding="utf-8")

    code, out, err = Maild(config)("check-config")

    assert code == 1
    assert out == ""
    lines = err.splitlines()
    assert lines[0] == f"{config}: 5 error(s)"
    assert sorted(lines[1:]) == sorted(
        [
            "error: daemon.timezone: 'Mars/Olympus' is not a known time zone "
            "(e.g. America/Sao_Paulo)",
            "error: listener.port: must be an integer, got a string",
            "error: smtp.security: 'ssl' is not one of: tls, starttls, none",
            "error: smtp.host: is required",
            "error: departments[2].addresses[0]: 'financeiro@' is not an email address",
        ]
    )
    assert "Traceback" not in err


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "settings.toml"
    for argv in (["check-config"], ["tickets", "list", "--json"]):
        code, out, err = Maild(missing)(*argv)
        assert code != 0
        assert out == ""
        assert f"{missing}: file not found" in err
        assert "Traceback" not in err


def test_config_from_environment_variable(
    maild: Maild, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MAILD_CONFIG", str(maild.config))
    monkeypatch.chdir(tmp_path / "..")
    out, err = io.StringIO(), io.StringIO()
    assert run_cli(["check-config"], out, err) == 0, err.getvalue()
    assert out.getvalue().startswith(f"{maild.config}: OK")


# ---------------------------------------------------------------------------
# db migrate
# ---------------------------------------------------------------------------


def test_db_migrate_twice_is_a_noop(maild: Maild, tmp_path: Path) -> None:
    from maild.storage.binding import bound
    from maild.storage.db import open_database
    from maild.storage.migrations import LATEST
    from maild.storage.models import SchemaVersion

    assert maild.ok("db", "migrate").strip() == f"schema migrated from version 0 to {LATEST}"
    assert maild.ok("db", "migrate").strip() == f"schema is up to date (version {LATEST})"

    db = open_database(f"sqlite:///{tmp_path / 'var' / 'maild.sqlite3'}")
    try:
        with bound(db):
            versions = [r.version for r in SchemaVersion.select().order_by(SchemaVersion.id)]
        assert versions == list(range(1, LATEST + 1))
    finally:
        db.close()


# ---------------------------------------------------------------------------
# tickets list
# ---------------------------------------------------------------------------


def test_tickets_list_json_on_a_fresh_database(maild: Maild) -> None:
    code, out, err = maild("tickets", "list", "--json")
    assert (code, out, err) == (0, "[]\n", "")
    assert maild.ok("tickets", "list").strip() == "no tickets"


def test_listing_json_is_the_only_thing_on_stdout(maild: Maild, tmp_path: Path) -> None:
    """The real console script, logs at debug: stdout is JSON and nothing else."""
    env = {**os.environ, "MAILD_LOG_LEVEL": "debug"}
    cmd = [sys.executable, "-m", "maild", "--config", str(maild.config)]
    fed = subprocess.run(
        [*cmd, "ingest", str(mail(tmp_path, "sub"))],
        env=env,
        capture_output=True,
        timeout=60,
        check=True,
    )
    assert json.loads(fed.stdout)["outcome"] == "created"
    for argv in (["tickets", "list"], ["outbox", "list"], ["quarantine", "list"]):
        done = subprocess.run(
            [*cmd, *argv, "--json"], env=env, capture_output=True, timeout=60, check=True
        )
        assert isinstance(json.loads(done.stdout), list), argv


def test_the_mta_pipe_logs_one_line_per_message_at_info(maild: Maild, tmp_path: Path) -> None:
    """As Postfix runs it: no MAILD_LOG_LEVEL, the shipped log_level (info)."""
    env = {k: v for k, v in os.environ.items() if k != "MAILD_LOG_LEVEL"}
    cmd = [sys.executable, "-m", "maild", "--config", str(maild.config), "ingest"]
    files = [str(mail(tmp_path, "a")), str(mail(tmp_path, "b", subject="Outro assunto"))]
    fed = subprocess.run([*cmd, *files], env=env, capture_output=True, timeout=60, check=True)

    lines = [json.loads(line) for line in fed.stderr.decode().splitlines()]
    processed = [line for line in lines if line["event"] == "message.processed"]
    assert [p["outcome"] for p in processed] == ["created", "created"]
    assert {p["level"] for p in processed} == {"info"}
    assert all("duration_ms" in p and p["ticket"] for p in processed)


def test_ticket_json_fields(maild: Maild, tmp_path: Path) -> None:
    [made] = ingest(maild, mail(tmp_path, "fields", cc="Colega <colega@example.com.br>"))
    [row] = maild.json("tickets", "list")

    assert list(row) == list(TICKET_FIELDS)
    assert row["number"] == made["ticket"]
    assert isinstance(row["number"], int) and len(str(row["number"])) == 6
    assert row["subject"] == "Nota fiscal com erro"
    assert (row["status"], row["priority"], row["department"]) == ("open", "normal", "suporte")
    assert row["requester"] == "cliente@example.com.br"
    assert row["cc"] == ["colega@example.com.br"]
    assert row["assignee"] is None
    assert row["message_count"] == 1
    for key in ("created_at", "updated_at"):
        assert ISO_WITH_OFFSET.match(row[key]), row[key]
        assert datetime.fromisoformat(row[key]).utcoffset() is not None
    assert re.fullmatch(rf"http://127\.0\.0\.1:8080/t/{row['number']}/[\w-]{{20,}}", row["link"])


def test_tickets_list_oldest_first_and_filters(maild: Maild, desk: dict[str, int]) -> None:
    def numbers(*argv: str) -> list[int]:
        return [t["number"] for t in maild.json("tickets", "list", *argv)]

    everything = maild.json("tickets", "list")
    assert [t["number"] for t in everything] == [
        desk["open"],
        desk["progress"],
        desk["answered"],
        desk["resolved"],
    ]
    created = [t["created_at"] for t in everything]
    assert created == sorted(created)
    statuses = {t["number"]: t["status"] for t in everything}
    assert statuses == {
        desk["open"]: "open",
        desk["progress"]: "in_progress",
        desk["answered"]: "waiting_customer",
        desk["resolved"]: "resolved",
    }

    assert numbers("--status", "resolved") == [desk["resolved"]]
    assert numbers("--status", "closed") == []
    assert numbers("--pending") == [desk["open"], desk["progress"]]
    assert numbers("--answered") == [desk["answered"]]
    assert numbers("--pending", "--status", "resolved") == []
    assert numbers("--department", "comercial") == [desk["progress"]]
    assert numbers("--department", "juridico") == []
    assert numbers("--requester", "cliente@example.com.br") == [
        desk["open"],
        desk["answered"],
        desk["resolved"],
    ]
    assert numbers("--requester", "COMPRAS@loja.example.org") == [desk["progress"]]
    assert numbers("--department", "suporte", "--pending") == [desk["open"]]

    this_month = maild.clock.now().astimezone(SP).strftime("%Y-%m")
    assert numbers("--month", this_month) == [t["number"] for t in everything]
    assert numbers("--month", "2001-01") == []


def test_tickets_list_bad_month_is_a_usage_error(maild: Maild) -> None:
    code, out, err = maild("tickets", "list", "--month", "2026-13", "--json")
    assert (code, out) == (1, "")
    assert err.strip() == "error: --month: '2026-13' is not YYYY-MM"


def test_tickets_list_human_table(maild: Maild, desk: dict[str, int]) -> None:
    lines = maild.ok("tickets", "list").splitlines()

    assert lines[0].split() == [
        "NUMBER",
        "STATUS",
        "PRIORITY",
        "DEPT",
        "REQUESTER",
        "CREATED",
        "DUE",
        "MSGS",
        "SUBJECT",
    ]
    assert len(lines) == 5
    assert lines[1].startswith(str(desk["open"]))
    assert "Nota fiscal com erro" in lines[1]
    assert "Orçamento de 30 licenças" in lines[2]
    # Columns line up: every row puts the status where the header does.
    column = lines[0].index("STATUS")
    assert [line[column:].split()[0] for line in lines[1:]] == [
        "open",
        "in_progress",
        "waiting_customer",
        "resolved",
    ]


# ---------------------------------------------------------------------------
# tickets show / rotate-link
# ---------------------------------------------------------------------------


def test_tickets_show_json_adds_thread_and_events(maild: Maild, desk: dict[str, int]) -> None:
    data = maild.json("tickets", "show", str(desk["answered"]))

    assert list(data) == [*TICKET_FIELDS, "thread", "events"]
    assert data["status"] == "waiting_customer"
    assert data["message_count"] == 2 == len(data["thread"])
    first, reply = data["thread"]
    assert set(first) == ENTRY_FIELDS
    assert (first["kind"], first["author"], first["outcome"]) == (
        "customer",
        "cliente@example.com.br",
        "created",
    )
    assert first["message_id"] == "answered@cli.test"
    assert first["text"].startswith("Olá, a nota saiu")
    assert (reply["kind"], reply["author"], reply["outcome"]) == (
        "agent",
        "bruno@example.com",
        "appended",
    )
    assert (first["attachments"], first["refused_attachments"]) == ([], [])
    assert ISO_WITH_OFFSET.match(first["created_at"])
    kinds = [e["kind"] for e in data["events"]]
    assert kinds[0] == "created"
    assert "status_changed" in kinds
    for event in data["events"]:
        assert set(event) == {"kind", "actor", "data", "created_at"}
        assert ISO_WITH_OFFSET.match(event["created_at"])


def test_tickets_show_human(maild: Maild, desk: dict[str, int]) -> None:
    out = maild.ok("tickets", "show", str(desk["open"]))

    assert out.splitlines()[0] == f"#{desk['open']}  Nota fiscal com erro"
    assert "  status      open" in out
    assert "  cc          financas@example.com.br" in out
    assert "--- customer cliente@example.com.br" in out
    assert "Olá, a nota saiu com o CNPJ errado." in out
    assert "events:" in out


@pytest.mark.parametrize(
    "argv",
    [
        ("tickets", "show", "123456"),
        ("tickets", "show", "123456", "--json"),
        ("tickets", "rotate-link", "123456"),
    ],
)
def test_unknown_ticket(maild: Maild, argv: tuple[str, ...]) -> None:
    code, out, err = maild(*argv)
    assert (code, out) == (1, "")
    assert err.strip() == "error: no ticket 123456"


def test_rotate_link_changes_the_link(maild: Maild, tmp_path: Path) -> None:
    [made] = ingest(maild, mail(tmp_path, "rotate"))
    number = str(made["ticket"])
    before = maild.json("tickets", "show", number)["link"]

    printed = maild.ok("tickets", "rotate-link", number).strip()

    after = maild.json("tickets", "show", number)
    assert printed == after["link"] != before
    assert printed.rsplit("/", 1)[0] == before.rsplit("/", 1)[0]
    assert after["events"][-1]["kind"] == "link_rotated"


# ---------------------------------------------------------------------------
# outbox / quarantine
# ---------------------------------------------------------------------------


def test_outbox_list(maild: Maild, tmp_path: Path) -> None:
    assert maild.json("outbox", "list") == []
    [made] = ingest(maild, mail(tmp_path, "ob"))

    rows = maild.json("outbox", "list")
    confirmation = [r for r in rows if r["template"] == "confirmation"]
    assert len(confirmation) == 1
    assert confirmation[0]["ticket"] == made["ticket"]
    assert confirmation[0]["recipients"] == ["cliente@example.com.br"]
    assert confirmation[0]["status"] == "pending"
    assert maild.json("outbox", "list", "--status", "sent") == []
    assert "confirmation" in maild.ok("outbox", "list")


def test_quarantine_list(maild: Maild, tmp_path: Path) -> None:
    assert maild.json("quarantine", "list") == []
    assert maild.ok("quarantine", "list").strip() == "quarantine is empty"
    # Mail with no sender at all cannot be answered: it is quarantined, not dropped.
    nobody = tmp_path / "nobody.eml"
    nobody.write_bytes(
        b"To: suporte@example.com\r\nSubject: sem remetente\r\n"
        b"Message-ID: <nobody@cli.test>\r\n\r\ncorpo\r\n"
    )
    [made] = ingest(maild, nobody)
    assert made["ticket"] is None

    rows = maild.json("quarantine", "list")
    assert len(rows) == 1
    assert rows[0]["message_id"] == "nobody@cli.test"
    assert rows[0]["state"] in ("quarantined", "held")
    assert rows[0]["outcome"] == made["outcome"]
    assert "sem remetente" in maild.ok("quarantine", "list")
