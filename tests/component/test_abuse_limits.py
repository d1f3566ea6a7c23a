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


# ---------------------------------------------------------------------------
# header bomb: limits.max_header_bytes
# ---------------------------------------------------------------------------


def _header_bomb(count: int = 100_000) -> bytes:
    filler = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"v" * 30) for i in range(count))
    return (
        b"From: Mariana <" + CUSTOMER.encode() + b">\r\n"
        b"To: suporte@example.com\r\n"
        b"Subject: bomba\r\n"
        b"Message-ID: <bomb-1@cliente.example>\r\n" + filler + b"\r\ncorpo\r\n"
    )


def test_header_bomb_is_too_large_with_its_headers_cut_and_kept(app) -> None:
    from maild.storage.models import Inbound

    raw = _header_bomb()
    assert len(raw) > 4_000_000
    result = ingest(app, raw)

    assert result.outcome == o.TOO_LARGE
    inbound = Inbound.get_by_id(result.inbound_id)
    assert inbound.raw.headers_only and inbound.raw.size == len(raw)
    kept = app.raw_store.get(inbound.raw.sha256)
    limit = app.settings.limits.max_header_bytes
    assert len(kept) <= limit
    assert kept.startswith(b"From: Mariana") and kept.endswith(b"\r\n\r\n")
    assert b"corpo" not in kept
    notice = outbox("notice_too_large")
    assert len(notice) == 1 and notice[0].recipients == [CUSTOMER]
    text, _ = bodies(notice[0])
    assert "256 KB" in text  # the header limit, not the 25 MB message limit
    assert outbox("confirmation") == []


def test_headers_under_the_limit_are_untouched(make_app) -> None:
    app = make_app(limits={"max_header_bytes": 4096})
    ok = mail(headers={"X-Long": "a" * 3000})
    assert ingest(app, ok).outcome == o.CREATED
    bomb = mail(headers={f"X-Long-{i}": "a" * 900 for i in range(5)})
    result = ingest(app, bomb)
    assert result.outcome == o.TOO_LARGE
    assert len(bomb) < app.settings.attachments.max_message_bytes
