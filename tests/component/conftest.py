"""Helpers for component tests: build mails, count rows, read the outbox, run the CLI.

Everything here drives the real pipeline on a real database; nothing is mocked.
"""

from __future__ import annotations

import email
import io
import itertools
import json
import sys
from collections.abc import Iterable, Sequence
from email.message import EmailMessage, Message
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from maild.storage.models import (
    Attachment,
    Event,
    Inbound,
    Outbox,
    ThreadEntry,
    Ticket,
    TicketCC,
)

from maild.app import App
from maild.cli import run_cli
from tests.conftest import BASE_SETTINGS, _merge

_counter = itertools.count(1)

CUSTOMER = "mariana@padaria.example.com.br"
SUPORTE = "suporte@example.com"


# SPEC §7: the JSON fields of a ticket, in order, and of a thread entry.
TICKET_FIELDS = (
    "number",
    "subject",
    "status",
    "priority",
    "department",
    "requester",
    "cc",
    "assignee",
    "created_at",
    "updated_at",
    "message_count",
    "link",
    # SPEC §11: due times (null once met) and whether one has passed
    "first_response_due",
    "resolution_due",
    "overdue",
)
ENTRY_FIELDS = frozenset(
    {
        "id",
        "kind",
        "author",
        "message_id",
        "outcome",
        "text",
        "created_at",
        "attachments",
        "refused_attachments",
    }
)


def mail(
    *,
    subject: str = "Não consigo emitir NF-e",
    sender: str = CUSTOMER,
    sender_name: str = "Mariana Souza",
    to: str = SUPORTE,
    cc: Sequence[str] = (),
    body: str = "O sistema mostra erro 500 ao emitir a nota.\n",
    message_id: str | None = None,
    in_reply_to: str | None = None,
    headers: dict[str, str] | None = None,
    attachments: Iterable[tuple[str, str, bytes]] = (),
) -> bytes:
    """A customer mail as raw bytes; a fresh Message-ID unless one is given."""
    msg = EmailMessage()
    msg["From"] = f"{sender_name} <{sender}>" if sender_name else sender
    msg["To"] = to
    if cc:
        msg["Cc"] = ", ".join(cc)
    msg["Subject"] = subject
    msg["Date"] = "Tue, 24 Nov 2026 10:00:00 -0300"
    msg["Message-ID"] = f"<{message_id or f'test-{next(_counter)}@cliente.example'}>"
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to}>"
        msg["References"] = f"<{in_reply_to}>"
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    for filename, ctype, payload in attachments:
        maintype, subtype = ctype.split("/", 1)
        msg.add_attachment(payload, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes()


def counts() -> dict[str, int]:
    """Row counts of everything an ingest may change."""
    return {
        "tickets": Ticket.select().count(),
        "entries": ThreadEntry.select().count(),
        "outbox": Outbox.select().count(),
        "events": Event.select().count(),
        "attachments": Attachment.select().count(),
        "ccs": TicketCC.select().count(),
    }


def inbound_count() -> int:
    return Inbound.select().count()


def outbox(template: str | None = None, ticket: Ticket | int | None = None) -> list[Outbox]:
    query = Outbox.select().order_by(Outbox.id)
    if template is not None:
        query = query.where(Outbox.template == template)
    if ticket is not None:
        number = ticket if isinstance(ticket, int) else ticket.number
        query = query.where(Outbox.ticket == Ticket.get(Ticket.number == number))
    return list(query)


def parsed(row: Outbox) -> Message:
    return email.message_from_bytes(bytes(row.raw), policy=default_policy)


def bodies(row: Outbox) -> tuple[str, str]:
    """(text, html) of an outbox row."""
    msg = parsed(row)
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    return (
        text.get_content() if text is not None else "",
        html.get_content() if html is not None else "",
    )


def ticket(number: int) -> Ticket:
    return Ticket.get(Ticket.number == number)


def set_status(number: int, status: str) -> None:
    Ticket.update(status=status).where(Ticket.number == number).execute()


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(value)


def to_toml(data: dict[str, Any]) -> str:
    """Enough TOML for settings: tables of scalars/lists and arrays of tables."""
    lines: list[str] = []
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append(f"[{key}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in value.items()]
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for item in value:
                lines.append(f"[[{key}]]")
                lines += [f"{k} = {_toml_value(v)}" for k, v in item.items()]
        lines.append("")
    return "\n".join(lines)


@pytest.fixture
def write_config(tmp_path: Path):
    """Write a settings.toml matching an App made by ``make_app`` (same data dir and db)."""

    def write(app: App, **tables: Any) -> Path:
        data = _merge(BASE_SETTINGS, tables)
        data["daemon"]["data_dir"] = str(app.settings.daemon.data_dir)
        data["database"] = {"url": _db_url(app)}
        data.setdefault("storage", {"blobs": app.settings.storage.blobs})
        path = tmp_path / "settings.toml"
        path.write_text(to_toml(data), encoding="utf-8")
        return path

    return write


def _db_url(app: App) -> str:
    db = app.db
    if hasattr(db, "database") and not str(db.__class__.__name__).startswith("Postgres"):
        return f"sqlite:///{db.database}"
    raise NotImplementedError("CLI tests run on SQLite")


@pytest.fixture
def cli():
    """Run ``maild`` in-process; returns (exit code, stdout, stderr).

    The CLI opens its own App on the same database and binds it only while the
    command runs: the test's binding is untouched.
    """

    def run(app: App, config: Path, *argv: str, stdin: bytes | None = None) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        saved = sys.stdin
        if stdin is not None:
            sys.stdin = io.TextIOWrapper(io.BytesIO(stdin))
        try:
            code = run_cli(["--config", str(config), *argv], out, err, clock=app.clock)
        finally:
            sys.stdin = saved
        return code, out.getvalue(), err.getvalue()

    return run
