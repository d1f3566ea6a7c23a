"""Abuse bounds (SPEC §8 ``[limits]``): one inbound mail never makes the desk
write to more addresses than configured, whatever its ``Cc:`` holds."""

from __future__ import annotations

from maild.storage.models import Event, TicketCC

from maild.pipeline import ingest
from maild.policy import types as o
from tests.component.conftest import CUSTOMER, SUPORTE, bodies, mail, outbox, parsed


def _addresses(row) -> set[str]:
    return {a.lower() for a in row.recipients}


def test_cc_bomb_is_capped_with_one_notice(app_any_db) -> None:
    app = app_any_db
    bomb = [f"vitima{i}@alvo{i % 7}.example" for i in range(2000)]
    # Our own addresses and agents in Cc: never count against the cap.
    cc = [SUPORTE, "vendas@example.com", "ana@example.com", *bomb]
    result = ingest(app, mail(cc=cc, subject="Promoção imperdível"))

    assert result.outcome == o.CREATED
    ccs = [row.address for row in TicketCC.select()]
    assert ccs == bomb[:10]

    confirmations = outbox("confirmation")
    assert len(confirmations) == 1
    limits = app.settings.limits
    assert len(_addresses(confirmations[0])) <= limits.max_recipients_per_automatic_mail
    assert CUSTOMER in _addresses(confirmations[0])
    header_to = parsed(confirmations[0])["To"]
    assert CUSTOMER in header_to

    notices = outbox("notice_ccs_left_out")
    assert len(notices) == 1
    assert _addresses(notices[0]) == {CUSTOMER}
    text, html = bodies(notices[0])
    assert bomb[10] in text and bomb[29] in text and bomb[30] not in text
    assert "1970" in text  # "... e mais 1970."
    assert bomb[10] in html

    # Agents see who was left out on the ticket.
    event = Event.get(Event.kind == "ccs_left_out")
    assert event.data["count"] == 1990
    assert event.data["addresses"][0] == bomb[10]

    # Every queued mail together goes to at most requester + cap customers.
    customer_rows = [r for r in outbox() if r.template != "agent_notification"]
    everyone = set().union(*(_addresses(r) for r in customer_rows))
    assert len(everyone) <= 1 + app.settings.limits.max_ccs_per_ticket


def test_small_cc_list_unchanged_and_no_notice(app) -> None:
    ingest(app, mail(cc=["joao@padaria.example.com.br", "rita@padaria.example.com.br"]))
    assert TicketCC.select().count() == 2
    assert outbox("notice_ccs_left_out") == []
    assert len(_addresses(outbox("confirmation")[0])) == 3


def test_limits_are_settings(make_app) -> None:
    app = make_app(limits={"max_ccs_per_ticket": 2, "max_recipients_per_automatic_mail": 2})
    ingest(app, mail(cc=[f"c{i}@padaria.example.com.br" for i in range(5)]))
    assert TicketCC.select().count() == 2
    assert len(_addresses(outbox("confirmation")[0])) == 2
    assert outbox("notice_ccs_left_out")[0].recipients == [CUSTOMER]


def test_colleague_is_not_added_beyond_the_cap(make_app) -> None:
    app = make_app(limits={"max_ccs_per_ticket": 1})
    first = ingest(app, mail(cc=["joao@padaria.example.com.br"], message_id="open@c.example"))
    reply = mail(
        sender="rita@padaria.example.com.br",
        subject=f"Re: [#{first.ticket}] Não consigo emitir NF-e",
        in_reply_to="open@c.example",
    )
    assert ingest(app, reply).outcome == o.APPENDED
    assert [row.address for row in TicketCC.select()] == ["joao@padaria.example.com.br"]
    assert Event.get(Event.kind == "ccs_left_out").data["addresses"] == [
        "rita@padaria.example.com.br"
    ]
