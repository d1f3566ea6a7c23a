"""``GET /c/{key}``, the customer's ticket list (SPEC §12): tabs and their counts,
the month filter, last-activity order, the 404 of a wrong or rotated key, both
languages, and that the GET changes nothing."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from maild.storage import customers as store
from maild.storage.models import CustomerLink, Ticket

from maild.app import App
from maild.pipeline import ingest
from tests.unit.web.conftest import customer_mail

CLIENT = "cliente@example.com.br"
SECURITY = ("Content-Security-Policy", "Referrer-Policy", "X-Content-Type-Options")


def five_tickets(app: App) -> list[Ticket]:
    """Five tickets over three months (Sep, Oct, Nov 2026), one of them as a CC."""
    plan = [
        (datetime(2026, 9, 10, 13, 0, tzinfo=UTC), "Impressora <b>quebrada</b>", CLIENT, ()),
        (datetime(2026, 10, 2, 13, 0, tzinfo=UTC), "Nota fiscal", CLIENT, ()),
        (datetime(2026, 10, 20, 13, 0, tzinfo=UTC), "Boleto", CLIENT, ()),
        (datetime(2026, 11, 3, 13, 0, tzinfo=UTC), "Acesso ao sistema", CLIENT, ()),
        (datetime(2026, 11, 5, 13, 0, tzinfo=UTC), "Reunião", "chefe@example.com.br", (CLIENT,)),
    ]
    tickets = []
    for n, (when, subject, sender, cc) in enumerate(plan):
        app.clock.set(when)  # type: ignore[attr-defined]
        raw = customer_mail(
            subject,
            "Bom dia, preciso de ajuda com isso.",
            sender=sender,
            message_id=f"<m{n}@example.com.br>",
        )
        if cc:
            raw = f"Cc: {', '.join(cc)}\n".encode() + raw
        result = ingest(app, raw)
        assert result.outcome == "created", result
        tickets.append(Ticket.get(Ticket.number == result.ticket))
    statuses = ["resolved", "waiting_customer", "in_progress", "open", "waiting_customer"]
    for ticket, status in zip(tickets, statuses, strict=True):
        Ticket.update(status=status).where(Ticket.id == ticket.id).execute()
    # The September ticket had the latest activity of all.
    Ticket.update(updated_at=datetime(2026, 11, 20, 12, 0)).where(
        Ticket.id == tickets[0].id
    ).execute()
    app.clock.set(datetime(2026, 11, 24, 13, 0, tzinfo=UTC))  # type: ignore[attr-defined]
    return tickets


def list_path(app: App) -> str:
    with app.db.atomic():
        key = store.list_key(CLIENT, app.clock.now())
    return f"/c/{key}"


def numbers_in(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'<a href="/t/(\d+)/', html)]


def test_list_shows_every_ticket_newest_activity_first(app: App, client: Any) -> None:
    tickets = five_tickets(app)
    reply = client.get(list_path(app))
    assert reply.status == 200
    for name in SECURITY:
        assert name in reply.headers
    assert reply.headers["Cache-Control"] == "no-store"
    html = reply.text
    assert 'lang="pt-BR"' in html and "<h1>Meus chamados</h1>" in html
    expected = [tickets[0], tickets[4], tickets[3], tickets[2], tickets[1]]
    assert numbers_in(html) == [t.number for t in expected]
    for ticket in tickets:
        assert f'href="/t/{ticket.number}/{ticket.access_key}"' in html
    # Real table headers, and mail content escaped.
    assert html.count('<th scope="col"') == 7
    assert "Impressora &lt;b&gt;quebrada&lt;/b&gt;" in html
    assert "chefe@example.com.br" in html  # the requester of the ticket CC'd to the customer
    assert 'Todos <span class="count">(5)</span>' in html
    assert 'Pendentes <span class="count">(2)</span>' in html
    assert 'Respondidos <span class="count">(2)</span>' in html
    assert "novembro de 2026" in html and "setembro de 2026" in html


def test_tabs_and_month_filter(app: App, client: Any) -> None:
    tickets = five_tickets(app)
    path = list_path(app)
    pending = client.get(f"{path}?tab=pending").text
    assert sorted(numbers_in(pending)) == sorted([tickets[2].number, tickets[3].number])
    assert 'aria-current="page">Pendentes' in pending
    answered = client.get(f"{path}?tab=answered").text
    assert numbers_in(answered) == [tickets[4].number, tickets[1].number]
    october = client.get(f"{path}?month=2026-10").text
    assert numbers_in(october) == [tickets[2].number, tickets[1].number]
    assert 'Todos <span class="count">(2)</span>' in october
    assert 'Respondidos <span class="count">(1)</span>' in october
    both = client.get(f"{path}?tab=answered&month=2026-10").text
    assert numbers_in(both) == [tickets[1].number]
    empty = client.get(f"{path}?tab=pending&month=2026-09").text
    assert numbers_in(empty) == [] and "Nenhum chamado nesta seleção" in empty
    # Nonsense filters fall back to everything rather than failing.
    odd = client.get(f"{path}?tab=x&month=2026-13").text
    assert len(numbers_in(odd)) == 5


def test_wrong_missing_and_rotated_keys_are_the_same_404(app: App, client: Any) -> None:
    five_tickets(app)
    path = list_path(app)
    missing = client.get("/t/1/nope")
    for bad in ("/c/" + "A" * 32, "/c/x", "/c/%00", "/c/"):
        reply = client.get(bad)
        assert reply.status == 404 and reply.body == missing.body, bad
    with app.db.atomic():
        store.rotate_list_key(CLIENT, app.clock.now())
    assert client.get(path).status == 404


def test_get_changes_nothing(app: App, client: Any) -> None:
    five_tickets(app)
    path = list_path(app)
    before = [(t.id, t.updated_at, t.status) for t in Ticket.select().order_by(Ticket.id)]
    links = CustomerLink.select().count()
    client.get(path)
    client.get(f"{path}?tab=pending&month=2026-11")
    assert [(t.id, t.updated_at, t.status) for t in Ticket.select().order_by(Ticket.id)] == before
    assert CustomerLink.select().count() == links


def test_list_in_english_for_an_english_customer(app: App, client: Any) -> None:
    raw = b"Content-Language: en\n" + customer_mail("Printer", "It does not print.")
    ingest(app, raw)
    html = client.get(list_path(app)).text
    assert 'lang="en"' in html and "<h1>My tickets</h1>" in html
    assert 'All <span class="count">(1)</span>' in html and "Open" in html


def test_an_address_without_tickets_sees_an_empty_list(app: App, client: Any) -> None:
    html = client.get(list_path(app)).text
    assert "ainda não tem chamados" in html
