"""maild.status_mail: which status changes are mailed, and what the mail carries."""

from __future__ import annotations

import email
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import default as default_policy

import pytest
from maild.storage import outbox as ob
from maild.storage import tickets as store
from maild.storage.models import Outbox, Ticket

from maild.app import App
from maild.clock import FrozenClock
from maild.pipeline import ingest
from maild.status_mail import queue_status_change, rating_links, should_mail

CUSTOMER = "cliente@example.com.br"
COLLEAGUE = "colega@example.com.br"
OPENING_ID = "abertura-1@example.com.br"


def open_ticket(app: App) -> Ticket:
    msg = EmailMessage()
    msg["From"] = f"Joana <{CUSTOMER}>"
    msg["To"] = "suporte@example.com"
    msg["Cc"] = COLLEAGUE
    msg["Subject"] = "Boleto em duplicidade"
    msg["Message-ID"] = f"<{OPENING_ID}>"
    msg.set_content("Recebi dois boletos iguais.\n")
    result = ingest(app, msg.as_bytes(), "ingest")
    assert result.outcome == "created"
    return Ticket.get(Ticket.number == result.ticket)


def change(
    app: App, ticket: Ticket, new: str, actor: str = "ana@example.com", key: str = "s:1"
) -> Outbox | None:
    old = ticket.status
    with app.db.atomic():
        store.set_status(ticket, new, actor, app.clock.now())
        ticket.save()
        return queue_status_change(app, ticket, old, new, app.clock.now(), key, actor)


def parsed(row: Outbox) -> EmailMessage:
    msg = email.message_from_bytes(bytes(row.raw), policy=default_policy)
    assert isinstance(msg, EmailMessage)
    return msg


def bodies(row: Outbox) -> tuple[str, str]:
    msg = parsed(row)
    text, html = msg.get_body(("plain",)), msg.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


@pytest.fixture
def ticket(app: App) -> Ticket:
    return open_ticket(app)


def test_resolved_mail_carries_the_five_rating_links(app: App, ticket: Ticket) -> None:
    row = change(app, ticket, "resolved")

    assert row is not None and row.template == "resolved"
    assert row.status == ob.OUTBOX_PENDING
    assert row.recipients == [CUSTOMER, COLLEAGUE]
    link = f"http://127.0.0.1:8080/t/{ticket.number}/{ticket.access_key}"
    text, html = bodies(row)
    for n in range(1, 6):
        assert f"{link}?rate={n}" in text
        assert f"{link}?rate={n}" in html
    msg = parsed(row)
    assert msg["Subject"] == f"[#{ticket.number}] Boleto em duplicidade"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["In-Reply-To"] == f"<{OPENING_ID}>"
    assert [a.addr_spec for a in msg["Cc"].addresses] == [COLLEAGUE]
    assert "Resolvido" in text


def test_rating_links_shape(ticket: Ticket) -> None:
    links = rating_links("https://help.example.com/", ticket)
    assert [item["stars"] for item in links] == [1, 2, 3, 4, 5]
    assert links[2]["url"] == (
        f"https://help.example.com/t/{ticket.number}/{ticket.access_key}?rate=3"
    )


@pytest.mark.parametrize(
    ("language", "old_label", "new_label"),
    [("pt_BR", "Aberto", "Em andamento"), ("en", "Open", "In progress")],
)
def test_status_changed_names_old_and_new(
    make_app: Callable[..., App], language: str, old_label: str, new_label: str
) -> None:
    app = make_app(daemon={"language": language})
    ticket = open_ticket(app)
    row = change(app, ticket, "in_progress")
    assert row is not None and row.template == "status_changed"
    text, html = bodies(row)
    assert old_label in text and new_label in text
    assert old_label in html and new_label in html


@pytest.mark.parametrize(
    ("old", "new", "by_customer", "expected"),
    [
        ("open", "in_progress", False, True),
        ("open", "waiting_customer", False, True),
        ("in_progress", "resolved", False, True),
        ("open", "closed", False, True),
        ("resolved", "open", False, True),
        ("open", "open", False, False),
        ("resolved", "closed", False, False),
        ("closed", "open", False, False),
        ("closed", "resolved", False, False),
        ("open", "closed", True, False),
        ("open", "resolved", True, True),
    ],
)
def test_should_mail(old: str, new: str, by_customer: bool, expected: bool) -> None:
    assert should_mail(old, new, by_customer=by_customer) is expected


def test_unknown_status_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown ticket status 'waiting'"):
        should_mail("open", "waiting")


def test_nothing_queued_for_silent_changes(app: App, ticket: Ticket) -> None:
    before = Outbox.select().count()
    assert change(app, ticket, "open", key="s:same") is None
    assert change(app, ticket, "closed", actor=COLLEAGUE, key="s:cust") is None
    ticket.status = "closed"
    assert queue_status_change(app, ticket, "closed", "open", app.clock.now(), "s:x", "ana") is None
    assert Outbox.select().count() == before


def test_customer_who_resolves_still_gets_the_rating_request(app: App, ticket: Ticket) -> None:
    row = change(app, ticket, "resolved", actor=CUSTOMER.upper())
    assert row is not None and row.template == "resolved"


def test_idempotent_per_key(app: App, ticket: Ticket, clock: FrozenClock) -> None:
    first = change(app, ticket, "in_progress", key="status:7")
    again = queue_status_change(
        app, ticket, "open", "in_progress", clock.now(), "status:7", "ana@example.com"
    )
    assert first is not None and again is not None and again.id == first.id
    assert Outbox.select().where(Outbox.template == "status_changed").count() == 1


def test_suppressed_while_the_addresses_cool_down(
    app: App, ticket: Ticket, clock: FrozenClock
) -> None:
    for address in (CUSTOMER, COLLEAGUE):
        ob.start_cooldown(address, clock.now(), reason="bounce")
    row = change(app, ticket, "resolved")
    assert row is not None and row.status == ob.OUTBOX_HELD
