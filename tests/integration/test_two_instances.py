"""Two maild instances on one PostgreSQL behave as one system (SPEC §10): the same
opening arriving at both at once makes one ticket, and concurrent replies to one
ticket never lose an update.

Each "instance" is an App with its own data_dir and its own connections, as two
hosts would have; the mail is handed to both at the same moment by a barrier.
"""

from __future__ import annotations

import functools
import threading
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any

import pytest
from maild.storage.models import ThreadEntry, Ticket

from maild.app import App
from maild.pipeline import ingest
from maild.records import IngestResult

pytestmark = pytest.mark.integration

ROUNDS = 8


def mail(sender: str, subject: str, message_id: str, body: str = "Olá, preciso de ajuda.") -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = sender
    msg["To"] = "suporte@example.com"
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{message_id}>"
    msg.set_content(body)
    return msg.as_bytes()


def at_once(*deliveries: tuple[App, bytes]) -> list[IngestResult]:
    """Each instance ingests its mail in a thread of its own, bound to its own
    database connection, at the same moment."""
    barrier = threading.Barrier(len(deliveries))
    results: list[Any] = [None] * len(deliveries)

    def run(i: int, app: App, raw: bytes) -> None:
        barrier.wait(10)
        try:
            results[i] = ingest(app, raw)
        except BaseException as exc:  # reported by the assertion below
            results[i] = exc

    threads = [
        app.thread(functools.partial(run, i, app, raw), name=f"instance-{i}")
        for i, (app, raw) in enumerate(deliveries)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for r in results:
        assert isinstance(r, IngestResult), r
    return results


@pytest.fixture
def pair(make_app: Any, tmp_path: Path, database_url: str) -> tuple[App, App]:
    if not database_url.startswith("postgresql"):
        pytest.skip("several instances share PostgreSQL only")
    agents = [{"email": "ana@example.com", "name": "Ana", "departments": ["suporte"]}]
    first = make_app(database_url, daemon={"data_dir": str(tmp_path / "a")}, agents=agents)
    second = make_app(database_url, daemon={"data_dir": str(tmp_path / "b")}, agents=agents)
    return first, second


def test_the_same_opening_at_both_instances_makes_one_ticket(pair: tuple[App, App]) -> None:
    first, second = pair
    for n in range(ROUNDS):
        # The customer's client sent it twice (two Message-IDs), to two MX hosts.
        subject = f"Nota fiscal {n} com erro"
        a = mail("cliente@example.com.br", subject, f"open-{n}-a@cliente.example")
        b = mail("cliente@example.com.br", subject, f"open-{n}-b@cliente.example")

        results = at_once((first, a), (second, b))

        assert sorted(r.outcome for r in results) == ["created", "duplicate_subject_rejected"]
        assert len({r.ticket for r in results}) == 1  # the notice names the one ticket
    assert Ticket.select().count() == ROUNDS


def test_concurrent_customer_and_agent_replies_lose_no_update(pair: tuple[App, App]) -> None:
    first, second = pair
    for n in range(ROUNDS):
        opened = ingest(first, mail("cliente@example.com.br", f"Pedido {n}", f"p-{n}@c.example"))
        token = f"[#{opened.ticket}]"
        customer = mail(
            "cliente@example.com.br", f"Re: {token} Pedido {n}", f"c-{n}@c.example", "Mais um dado."
        )
        agent = mail(
            "Ana <ana@example.com>",
            f"Re: {token} Pedido {n}",
            f"a-{n}@example.com",
            "#priority urgent\n\nEstamos vendo.",
        )

        results = at_once((first, customer), (second, agent))

        assert [r.outcome for r in results] == ["appended", "appended"]
        ticket = Ticket.get(Ticket.number == opened.ticket)
        assert ticket.priority == "urgent", f"round {n}: the agent's #priority was lost"
        # The status is the one the later of the two set: the second transaction
        # waited for the ticket's row lock before it wrote its thread entry.
        last = ThreadEntry.select().where(ThreadEntry.ticket == ticket).order_by(-ThreadEntry.id)
        expected = {"customer": "open", "agent": "waiting_customer"}[last.first().kind]
        assert ticket.status == expected, f"round {n}"
