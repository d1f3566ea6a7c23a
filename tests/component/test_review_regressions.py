"""Regressions from a review against SPEC §2-§3: weak thread evidence, colleagues
on reopen, refused files in rejections, double processing, new_ticket follow-ups."""

from __future__ import annotations

from maild.storage.models import INBOUND_RECEIVED, Inbound, ThreadEntry, Ticket, TicketCC

from maild.pipeline import ingest, process_inbound
from maild.policy import types as o
from tests.component.conftest import bodies, mail, outbox, set_status, ticket

EXE = b"MZ\x90\x00" + b"\x00" * 60


def _opening(app, **kwargs):
    result = ingest(app, mail(**kwargs))
    assert result.outcome == o.CREATED, result
    return result


def test_stranger_quoting_our_footer_gets_a_new_ticket_not_the_link(app):
    first = _opening(app)
    set_status(first.ticket, "resolved")
    t = ticket(first.ticket)

    result = ingest(
        app,
        mail(sender="eve@gmail.com", subject="Oi", body=f"Ola\nRef: MAILD-{first.ticket}\n"),
    )

    assert result.outcome == o.CREATED
    assert result.ticket != first.ticket
    for row in outbox():
        if "eve@gmail.com" in row.recipients:
            text, html = bodies(row)
            assert t.access_key not in text + html


def test_stranger_replying_by_references_cannot_reopen(app):
    first = _opening(app, to="comercial@example.com")
    set_status(first.ticket, "resolved")

    result = ingest(
        app,
        mail(
            sender="eve@gmail.com",
            to="comercial@example.com",
            subject="Re: Não consigo emitir NF-e",
            in_reply_to=first.message_id,
        ),
    )

    assert result.outcome == o.CREATED
    assert ticket(first.ticket).status == "resolved"


def test_colleague_reopening_becomes_a_cc(app):
    first = _opening(app, sender="lia@loja.example.com.br", to="comercial@example.com")
    set_status(first.ticket, "resolved")

    result = ingest(
        app,
        mail(
            sender="beto@loja.example.com.br",
            to="comercial@example.com",
            subject=f"Re: [#{first.ticket}] Não consigo emitir NF-e",
        ),
    )

    assert result.outcome == o.REOPENED
    ccs = [c.address for c in TicketCC.select().where(TicketCC.ticket == ticket(first.ticket))]
    assert ccs == ["beto@loja.example.com.br"]


def test_empty_opening_lists_its_refused_file(app):
    result = ingest(app, mail(body="\n", attachments=[("fatura.pdf.exe", "application/pdf", EXE)]))

    assert result.outcome == o.EMPTY_REJECTED
    (notice,) = outbox("notice_empty")
    text, html = bodies(notice)
    assert "fatura.pdf.exe" in text and "fatura.pdf.exe" in html


def test_followup_rejection_lists_refused_files(app):
    first = _opening(app)
    set_status(first.ticket, "resolved")
    ingest(
        app,
        mail(
            subject=f"Re: [#{first.ticket}] Não consigo emitir NF-e",
            attachments=[("foto.png", "image/png", EXE)],
        ),
    )
    (notice,) = outbox("notice_followup_rejected")
    text, _ = bodies(notice)
    assert "foto.png" in text


def test_a_processed_message_is_never_processed_again(app):
    first = _opening(app)
    inbound = Inbound.get_by_id(first.inbound_id)
    entries_before = ThreadEntry.select().count()
    outbox_before = len(outbox())

    # A stale copy of the row, as recover() or a second instance would hold it.
    inbound.state = INBOUND_RECEIVED
    again = process_inbound(app, inbound)

    assert again.outcome == o.CREATED
    assert again.ticket == first.ticket
    assert ThreadEntry.select().count() == entries_before
    assert len(outbox()) == outbox_before


def test_new_ticket_policy_opens_one_successor_then_threads_onto_it(app):
    first = _opening(app, to="financeiro@example.com", subject="Boleto vencido")
    set_status(first.ticket, "resolved")
    followup = f"Re: [#{first.ticket}] Boleto vencido"

    second = ingest(app, mail(to="financeiro@example.com", subject=followup))
    third = ingest(app, mail(to="financeiro@example.com", subject=followup, body="De novo.\n"))

    assert second.outcome == o.CREATED
    assert third.outcome == o.APPENDED
    assert third.ticket == second.ticket
    assert Ticket.select().count() == 2
    assert ticket(second.ticket).subject == "Boleto vencido"
