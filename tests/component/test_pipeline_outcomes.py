"""One test per outcome of SPEC §3, driven through ``maild.pipeline.ingest`` on a
real database (SQLite in tmp_path; a subset on PostgreSQL too), with fixtures
from tests/fixtures/mail where one fits and hand-built mails where the ticket
number must be known."""

from __future__ import annotations

import email
import hashlib
import re
from email.utils import parseaddr

import pytest
from maild.storage.models import (
    OUTBOX_BOUNCED,
    OUTBOX_HELD,
    OUTBOX_PENDING,
    Attachment,
    Event,
    Inbound,
    Outbox,
    RawMessage,
    RefusedAttachment,
    ThreadEntry,
    TicketCC,
)

from maild.pipeline import ingest
from maild.policy import types as o
from maild.recovery import release
from tests.component.conftest import (
    CUSTOMER,
    bodies,
    counts,
    mail,
    outbox,
    parsed,
    set_status,
    ticket,
)
from tests.conftest import MAIL_FIXTURES, read_fixture

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"


def open_ticket(app, **kwargs):
    result = ingest(app, mail(**kwargs))
    assert result.outcome == o.CREATED, result
    return result


def entries(number: int) -> list[ThreadEntry]:
    return list(
        ThreadEntry.select().where(ThreadEntry.ticket == ticket(number)).order_by(ThreadEntry.id)
    )


def events(number: int, kind: str) -> list[Event]:
    return list(Event.select().where((Event.ticket == ticket(number)) & (Event.kind == kind)))


# ---------------------------------------------------------------------------
# created
# ---------------------------------------------------------------------------


def test_created_from_gmail_fixture_confirms_and_notifies(app):
    result = ingest(app, read_fixture("gmail-ptbr-alternative-base64.eml"))

    assert result.outcome == o.CREATED
    t = ticket(result.ticket)
    assert (t.status, t.priority, t.department) == ("open", "normal", "suporte")
    assert t.requester == "joao.ribeiro.1987@gmail.com"
    assert t.subject == "Aplicativo não abre após atualização"
    assert len(str(result.ticket)) == 6
    [entry] = entries(result.ticket)
    assert entry.kind == "customer" and "Android 14" in entry.text
    [ack] = outbox("confirmation")
    assert ack.recipients == ["joao.ribeiro.1987@gmail.com"]
    [note] = outbox("agent_notification")
    assert note.recipients == ["ana@example.com"]  # the suporte agent, not bruno
    assert Inbound.get_by_id(result.inbound_id).outcome == o.CREATED


@pytest.mark.parametrize(
    "department_to, key",
    [("comercial@example.com", "comercial"), ("vendas@example.com", "comercial")],
)
def test_created_department_from_recipient_address(app, department_to, key):
    result = open_ticket(app, to=department_to)
    assert ticket(result.ticket).department == key


def test_created_department_delivered_to_wins_over_to(app):
    raw = b"Delivered-To: financeiro@example.com\n" + mail(to="suporte@example.com")
    result = ingest(app, raw)
    assert ticket(result.ticket).department == "financeiro"


def test_confirmation_headers_and_parts(app):
    result = open_ticket(
        app, subject="Re: Pedido 4411 atrasado", message_id="cust-1@cliente.example"
    )
    number = result.ticket
    [ack] = outbox("confirmation")
    msg = parsed(ack)

    assert msg["Subject"].startswith(f"[#{number}] ")
    assert msg["Subject"].count(f"[#{number}]") == 1
    assert msg["In-Reply-To"] == "<cust-1@cliente.example>"
    assert "<cust-1@cliente.example>" in msg["References"]
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["X-Maild-Ticket"] == str(number)
    assert msg["X-Maild-Loop"]
    assert "suporte@example.com" in msg["From"] and "Acme Suporte" in msg["From"]
    assert msg["Message-ID"] == f"<{ack.message_id}>"
    assert msg.get_content_type() == "multipart/alternative"
    text, html = bodies(ack)
    link = f"/t/{number}/{ticket(number).access_key}"
    for part in (text, html):
        assert str(number) in part
        assert link in part
        # Opened at the (frozen) clock's time, shown in the desk's time zone.
        assert "terça-feira, 24/11/2026 às 10:00" in part


def test_confirmation_subject_of_an_opening_naming_a_missing_ticket(app):
    # A token naming a ticket that does not exist is ignored: a new ticket opens,
    # and the confirmation's subject carries only the new token first.
    result = open_ticket(app, subject="RES: [#999999] Boleto vencido")
    [ack] = outbox("confirmation")
    assert parsed(ack)["Subject"].startswith(f"[#{result.ticket}] ")


# ---------------------------------------------------------------------------
# appended: every way a reply threads
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["RES: ", "Re: ", "Fwd: ", "ENC: ", "AW: ", "re:  RES:"])
def test_appended_by_token_with_reply_prefixes(app, prefix):
    number = open_ticket(app).ticket
    set_status(number, "waiting_customer")

    result = ingest(app, mail(subject=f"{prefix}[#{number}] outra coisa", body="Ainda com erro.\n"))

    assert (result.outcome, result.ticket) == (o.APPENDED, number)
    assert ticket(number).status == "open"  # customer -> open
    assert [e.text for e in entries(number)][-1] == "Ainda com erro."
    assert len(outbox("agent_notification", number)) == 2  # created + appended
    assert counts()["tickets"] == 1


def test_appended_by_token_in_outlook_fixture(app):
    requester = "mariana.souza@padariapao.example.com.br"
    number = open_ticket(app, sender=requester).ticket
    raw = read_fixture("subject-token-res-ptbr.eml").replace(b"592110", str(number).encode())

    result = ingest(app, raw)

    assert (result.outcome, result.ticket) == (o.APPENDED, number)
    assert entries(number)[-1].text.startswith("Funcionou, obrigada!")


def test_appended_by_in_reply_to_of_our_confirmation(app):
    number = open_ticket(app).ticket
    [ack] = outbox("confirmation")

    result = ingest(app, mail(subject="sem token nenhum", in_reply_to=ack.message_id))

    assert (result.outcome, result.ticket) == (o.APPENDED, number)


def test_appended_by_plus_address(app):
    number = open_ticket(app).ticket

    result = ingest(app, mail(subject="outro assunto", to=f"suporte+{number}@example.com"))

    assert (result.outcome, result.ticket) == (o.APPENDED, number)
    assert ticket(number).department == "suporte"


def test_appended_by_reply_prefixed_same_subject(app):
    number = open_ticket(app, subject="Não consigo emitir NF-e").ticket

    result = ingest(app, mail(subject="RES: nao consigo  emitir NF-E"))

    assert (result.outcome, result.ticket) == (o.APPENDED, number)


def test_reply_prefixed_same_subject_from_another_sender_opens_new(app):
    number = open_ticket(app, subject="Não consigo emitir NF-e").ticket

    result = ingest(app, mail(subject="Re: Não consigo emitir NF-e", sender="x@outra.example.com"))

    assert result.outcome == o.CREATED and result.ticket != number


def test_agent_reply_sets_waiting_customer_and_relays(app):
    number = open_ticket(app).ticket

    result = ingest(
        app, mail(subject=f"Re: [#{number}]", sender="ana@example.com", body="Reinstale o app.\n")
    )

    assert (result.outcome, result.ticket) == (o.APPENDED, number)
    assert ticket(number).status == "waiting_customer"
    relayed = outbox("agent_reply", number)
    assert len(relayed) == 1 and relayed[0].recipients == [CUSTOMER]


# ---------------------------------------------------------------------------
# reopened / followup_rejected / new_ticket
# ---------------------------------------------------------------------------


def test_reopened_on_department_with_reopen_policy(app):
    number = open_ticket(app, to="comercial@example.com").ticket
    set_status(number, "resolved")

    result = ingest(app, mail(subject=f"Re: [#{number}] voltou", to="comercial@example.com"))

    assert (result.outcome, result.ticket) == (o.REOPENED, number)
    assert ticket(number).status == "open"
    assert len(entries(number)) == 2
    assert len(events(number, "reopened")) == 1


@pytest.mark.parametrize(
    "to, status", [("suporte@example.com", "resolved"), ("comercial@example.com", "closed")]
)
def test_followup_rejected(app, to, status):
    number = open_ticket(app, to=to).ticket
    set_status(number, status)
    before = counts()

    result = ingest(app, mail(subject=f"Re: [#{number}] de novo", to=to))

    assert result.outcome == o.FOLLOWUP_REJECTED
    assert ticket(number).status == status
    assert len(entries(number)) == 1  # not added to the thread
    [notice] = outbox("notice_followup_rejected")
    assert notice.recipients == [CUSTOMER]
    text, _ = bodies(notice)
    assert ticket(number).access_key in text  # the quick-access link
    assert to in text  # how to open a new ticket
    assert counts()["entries"] == before["entries"]


def test_new_ticket_policy_opens_a_new_ticket(app):
    number = open_ticket(app, to="financeiro@example.com", subject="Boleto").ticket
    set_status(number, "resolved")

    result = ingest(app, mail(subject=f"Re: [#{number}] Boleto", to="financeiro@example.com"))

    assert result.outcome == o.CREATED
    assert result.ticket != number
    assert ticket(number).status == "resolved"
    assert len(entries(number)) == 1
    assert ticket(result.ticket).department == "financeiro"


# ---------------------------------------------------------------------------
# duplicate_subject_rejected
# ---------------------------------------------------------------------------


def test_duplicate_subject_rejected_then_created_after_resolution(app):
    first = open_ticket(app, subject="RES: Não consigo emitir NF-e").ticket

    result = ingest(app, mail(subject="nao consigo emitir nf-e"))

    assert result.outcome == o.DUPLICATE_SUBJECT_REJECTED
    assert result.ticket == first
    assert counts()["tickets"] == 1
    assert len(entries(first)) == 1
    [notice] = outbox("notice_duplicate_subject")
    assert notice.recipients == [CUSTOMER]
    text, html = bodies(notice)
    for part in (text, html):
        assert str(first) in part and ticket(first).access_key in part
    [event] = events(first, "duplicate_subject_rejected")
    assert event.actor == CUSTOMER

    set_status(first, "resolved")
    again = ingest(app, mail(subject="Não consigo emitir NF-e"))
    assert again.outcome == o.CREATED and again.ticket != first


def test_duplicate_subject_is_per_requester_and_department(app):
    open_ticket(app, subject="Erro no login")
    assert ingest(app, mail(subject="Erro no login", sender="b@outra.example")).outcome == o.CREATED
    assert (
        ingest(app, mail(subject="Erro no login", to="comercial@example.com")).outcome == o.CREATED
    )


def test_empty_subjects_never_count_as_duplicates(app):
    open_ticket(app, subject="")
    assert ingest(app, mail(subject="")).outcome == o.CREATED


# ---------------------------------------------------------------------------
# empty_rejected
# ---------------------------------------------------------------------------


def test_empty_rejected_opening(app):
    result = ingest(app, mail(subject="Ajuda", body="\n\n-- \nMariana\nPadaria Pão\n"))

    assert result.outcome == o.EMPTY_REJECTED
    assert counts()["tickets"] == 0
    [notice] = outbox("notice_empty")
    assert notice.recipients == [CUSTOMER]


def test_empty_reply_to_a_ticket_is_not_added(app):
    number = open_ticket(app).ticket
    quoted = "> O sistema mostra erro 500 ao emitir a nota.\n"

    result = ingest(app, mail(subject=f"Re: [#{number}]", body=quoted))

    assert result.outcome == o.EMPTY_REJECTED
    assert len(entries(number)) == 1


def test_attachment_only_opening_is_not_empty(app):
    result = ingest(app, mail(body="", attachments=[("tela.png", "image/png", PNG)]))
    assert result.outcome == o.CREATED


# ---------------------------------------------------------------------------
# unauthorized and access
# ---------------------------------------------------------------------------


def test_unauthorized_notice_reveals_nothing(app):
    number = open_ticket(app, subject="Segredo comercial da padaria").ticket
    before = counts()

    result = ingest(
        app,
        mail(subject=f"Re: [#{number}] quero ver", sender="curioso@gmail.com", body="Oi?\n"),
    )

    assert result.outcome == o.UNAUTHORIZED
    assert result.ticket is None  # the record does not tie the stranger to the ticket
    assert len(entries(number)) == 1
    assert len(events(number, "unauthorized_attempt")) == 1
    [notice] = outbox("notice_unauthorized")
    assert notice.recipients == ["curioso@gmail.com"]
    assert notice.ticket_id is None
    text, html = bodies(notice)
    t = ticket(number)
    for part in (text, html):
        assert str(number) not in part
        assert t.access_key not in part and "/t/" not in part
        assert "Segredo" not in part
    assert counts()["entries"] == before["entries"]


def test_same_domain_colleague_is_added_as_cc(app):
    number = open_ticket(app).ticket

    result = ingest(app, mail(subject=f"Re: [#{number}]", sender="joao@padaria.example.com.br"))

    assert (result.outcome, result.ticket) == (o.APPENDED, number)
    ccs = [r.address for r in TicketCC.select().where(TicketCC.ticket == ticket(number))]
    assert ccs == ["joao@padaria.example.com.br"]


def test_free_mail_stranger_with_same_domain_is_unauthorized(app):
    number = open_ticket(app, sender="cliente@gmail.com").ticket

    result = ingest(app, mail(subject=f"Re: [#{number}]", sender="outro@gmail.com"))

    assert result.outcome == o.UNAUTHORIZED
    assert TicketCC.select().count() == 0


def test_same_domain_disabled(make_app):
    app = make_app(access={"allow_same_domain": False})
    number = open_ticket(app).ticket
    result = ingest(app, mail(subject=f"Re: [#{number}]", sender="joao@padaria.example.com.br"))
    assert result.outcome == o.UNAUTHORIZED


def test_ccs_of_an_opening_become_ticket_ccs_and_get_the_confirmation(app):
    cc = ("Joao@Padaria.example.com.br", "contador@gmail.com", "suporte@example.com")

    result = open_ticket(app, cc=cc)

    got = [r.address for r in TicketCC.select().where(TicketCC.ticket == ticket(result.ticket))]
    assert sorted(got) == ["contador@gmail.com", "joao@padaria.example.com.br"]
    [ack] = outbox("confirmation")
    assert sorted(ack.recipients) == sorted([CUSTOMER, *got])
    assert "contador@gmail.com" in parsed(ack)["Cc"]
    # and a CC may then post to the ticket
    reply = ingest(app, mail(subject=f"Re: [#{result.ticket}]", sender="contador@gmail.com"))
    assert reply.outcome == o.APPENDED


# ---------------------------------------------------------------------------
# auto_reply_ignored and loops
# ---------------------------------------------------------------------------


def test_auto_reply_naming_a_ticket_is_a_system_note(app):
    requester = "mariana.souza@padariapao.example.com.br"
    number = open_ticket(app, sender=requester).ticket
    set_status(number, "waiting_customer")
    rows = len(outbox())
    raw = read_fixture("auto-reply-out-of-office.eml").replace(b"592110", str(number).encode())

    result = ingest(app, raw)

    assert (result.outcome, result.ticket) == (o.AUTO_REPLY_IGNORED, number)
    assert ticket(number).status == "waiting_customer"
    assert entries(number)[-1].kind == "system"
    assert len(outbox()) == rows


@pytest.mark.parametrize(
    "fixture",
    [
        "auto-gmail-vacation.eml",
        "auto-list-mail.eml",
        "auto-outlook-oof-en.eml",
        "list-mail-list-id.eml",
    ],
)
def test_auto_replies_and_list_mail_are_ignored(app, fixture):
    result = ingest(app, read_fixture(fixture))
    assert result.outcome == o.AUTO_REPLY_IGNORED
    assert counts()["tickets"] == 0 and len(outbox()) == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sender": "noreply@cliente.example"},
        {"sender": "no-reply@cliente.example"},
        {"sender": "comercial@example.com"},  # our own department address
        {"headers": {"X-Maild-Loop": "example.com"}},
        {"headers": {"Auto-Submitted": "auto-generated"}},
        {"headers": {"Precedence": "bulk"}},
        {"headers": {"Return-Path": "<>"}},
    ],
)
def test_loop_protection_sends_nothing(app, kwargs):
    result = ingest(app, mail(**kwargs))
    assert result.outcome == o.AUTO_REPLY_IGNORED
    assert len(outbox()) == 0


def test_auto_submitted_no_is_an_ordinary_mail(app):
    result = ingest(app, mail(headers={"Auto-Submitted": "no"}))
    assert result.outcome == o.CREATED


def test_per_recipient_hourly_cap_on_automatic_mail(make_app, clock):
    app = make_app(limits={"max_auto_replies_per_recipient_per_hour": 2})
    for n in range(3):
        open_ticket(app, subject=f"Assunto {n}")
    acks = outbox("confirmation")
    assert [r.status for r in acks] == [OUTBOX_PENDING, OUTBOX_PENDING, OUTBOX_HELD]

    clock.advance(hours=1, minutes=1)
    open_ticket(app, subject="Assunto 4")
    assert outbox("confirmation")[-1].status == OUTBOX_PENDING


# ---------------------------------------------------------------------------
# bounce
# ---------------------------------------------------------------------------


def test_bounce_marks_our_outbox_row_and_cools_the_address_down(app):
    requester = "maria.souza@example.org"
    number = open_ticket(app, sender=requester).ticket
    [ack] = outbox("confirmation")
    raw = read_fixture("bounce-postfix-dsn.eml").replace(
        b"out-1@maild.example.com", ack.message_id.encode()
    )
    status_before = ticket(number).status

    result = ingest(app, raw)

    assert (result.outcome, result.ticket) == (o.BOUNCE, number)
    assert Outbox.get_by_id(ack.id).status == OUTBOX_BOUNCED
    note = entries(number)[-1]
    assert note.kind == "system" and requester in note.text
    assert ticket(number).status == status_before
    # cool-down: the next automatic mail to that address is not sent
    second = open_ticket(app, sender=requester, subject="Outro assunto").ticket
    [ack2] = outbox("confirmation", second)
    assert ack2.status == OUTBOX_HELD


def test_bounce_of_unknown_message_changes_nothing_else(app):
    before = counts()
    result = ingest(app, read_fixture("bounce-postfix-dsn.eml"))
    assert result.outcome == o.BOUNCE
    assert counts() == before


def test_bounce_never_reopens(app):
    requester = "maria.souza@example.org"
    number = open_ticket(app, sender=requester).ticket
    [ack] = outbox("confirmation")
    set_status(number, "resolved")
    raw = read_fixture("bounce-postfix-dsn.eml").replace(
        b"out-1@maild.example.com", ack.message_id.encode()
    )
    assert ingest(app, raw).outcome == o.BOUNCE
    assert ticket(number).status == "resolved"


# ---------------------------------------------------------------------------
# rate_limited
# ---------------------------------------------------------------------------


def test_rate_limited_held_one_notice_then_released(make_app, clock):
    app = make_app(limits={"max_auto_replies_per_recipient_per_hour": 100})
    for n in range(20):
        open_ticket(app, subject=f"Pedido {n}")
        clock.advance(minutes=1)

    held = ingest(app, mail(subject="Pedido 21"))
    held2 = ingest(app, mail(subject="Pedido 22"))

    assert held.outcome == held2.outcome == o.RATE_LIMITED
    assert Inbound.get_by_id(held.inbound_id).state == "held"
    assert counts()["tickets"] == 20
    assert len(outbox("notice_rate_limited")) == 1  # one notice per window

    released = release(app, held.inbound_id)
    assert released.outcome == o.CREATED
    assert ticket(released.ticket).subject == "Pedido 21"
    assert Inbound.get_by_id(held.inbound_id).state == "processed"


def test_rate_limit_window_slides(make_app, clock):
    app = make_app(limits={"max_messages_per_sender_per_hour": 2})
    open_ticket(app, subject="a")
    open_ticket(app, subject="b")
    assert ingest(app, mail(subject="c")).outcome == o.RATE_LIMITED
    clock.advance(hours=1, minutes=1)
    assert ingest(app, mail(subject="d")).outcome == o.CREATED


# ---------------------------------------------------------------------------
# too_large
# ---------------------------------------------------------------------------


def test_too_large_keeps_only_headers_and_tells_the_limit(make_app):
    app = make_app(attachments={"max_message_bytes": 4096})
    raw = mail(subject="Planilha", attachments=[("dados.pdf", "application/pdf", b"%PDF-" * 2000)])
    assert len(raw) > 4096

    result = ingest(app, raw)

    assert result.outcome == o.TOO_LARGE
    assert counts()["tickets"] == 0
    row = Inbound.get_by_id(result.inbound_id).raw
    assert row.headers_only and row.size == len(raw)
    kept = app.raw_store.get(row.sha256)
    assert kept == raw[: raw.index(b"\n\n") + 2]
    assert b"%PDF-" not in kept
    [notice] = outbox("notice_too_large")
    text, _ = bodies(notice)
    assert "4 KB" in text


# ---------------------------------------------------------------------------
# quarantined
# ---------------------------------------------------------------------------


def test_quarantined_on_internal_error_and_released_later(files_app):
    app = files_app
    # A real failure path, no monkeypatching: the attachment store cannot be
    # created because a plain file sits where its folder should be.
    blocker = app.settings.daemon.data_dir / "attachments"
    blocker.write_text("not a folder")
    raw = mail(subject="Com anexo", attachments=[("tela.png", "image/png", PNG)])

    result = ingest(app, raw)

    assert result.outcome == o.QUARANTINED
    row = Inbound.get_by_id(result.inbound_id)
    assert row.state == "quarantined" and row.detail
    assert app.raw_store.get(row.raw.sha256) == raw
    assert counts()["tickets"] == 0 and len(outbox()) == 0  # all rolled back

    blocker.unlink()
    again = release(app, result.inbound_id)
    assert again.outcome == o.CREATED
    assert Attachment.select().count() == 1


def test_message_with_no_sender_is_quarantined(app):
    result = ingest(app, read_fixture("empty.eml"))
    assert result.outcome == o.QUARANTINED
    assert len(outbox()) == 0


# ---------------------------------------------------------------------------
# duplicate_message
# ---------------------------------------------------------------------------


def test_duplicate_message_same_bytes_and_same_message_id(app):
    raw = mail(message_id="dup-1@cliente.example")
    first = ingest(app, raw)
    before = counts()

    again = ingest(app, raw)
    other_bytes = ingest(
        app, mail(message_id="dup-1@cliente.example", subject="Diferente", body="Outro texto\n")
    )

    assert again.outcome == other_bytes.outcome == o.DUPLICATE_MESSAGE
    assert again.ticket == first.ticket
    assert counts() == before


def test_duplicate_message_without_message_id_by_sha(app):
    raw = read_fixture("no-message-id.eml")
    first = ingest(app, raw)
    before = counts()
    assert ingest(app, raw).outcome == o.DUPLICATE_MESSAGE
    assert counts() == before
    assert first.outcome != o.DUPLICATE_MESSAGE


# ---------------------------------------------------------------------------
# attachments and priority
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("blobs", ["database", "files"])
def test_allowed_attachments_saved_content_addressed(make_app, blobs):
    app = make_app(storage={"blobs": blobs})
    result = ingest(app, read_fixture("attachments-png-jpeg-gif-pdf.eml"))

    assert result.outcome == o.CREATED
    rows = list(Attachment.select().order_by(Attachment.id))
    assert [a.filename for a in rows] == ["tela1.png", "foto.JPEG", "animacao.gif", "boleto.pdf"]
    root = app.settings.daemon.data_dir / "attachments"
    for att in rows:
        data = app.attachment_store.get(att.sha256)
        assert hashlib.sha256(data).hexdigest() == att.sha256
        assert len(data) == att.size
        path = root / att.sha256[:2] / att.sha256[2:4] / att.sha256
        assert path.exists() is (blobs == "files")


def test_png_that_is_an_exe_is_refused_and_listed(app):
    result = ingest(app, read_fixture("attachment-png-that-is-exe.eml"))

    assert result.outcome == o.CREATED  # the rest of the message is processed
    assert Attachment.select().count() == 0
    [refused] = RefusedAttachment.select()
    assert refused.filename == "comprovante.png"
    assert refused.reason_code == "content_mismatch"
    [ack] = outbox("confirmation")
    text, html = bodies(ack)
    for part in (text, html):
        assert "comprovante.png" in part
        assert "o conteúdo não corresponde à extensão do arquivo" in part


def test_double_extension_exe_is_refused(app):
    ingest(app, read_fixture("attachment-double-extension-exe.eml"))
    assert Attachment.select().count() == 0
    assert RefusedAttachment.select().count() >= 1


def test_path_traversal_filename_is_sanitized(app):
    result = ingest(app, read_fixture("attachment-path-traversal-filename.eml"))

    assert result.outcome == o.CREATED
    names = [a.filename for a in Attachment.select()] + [
        r.filename for r in RefusedAttachment.select()
    ]
    assert names
    for name in names:
        assert "/" not in name and "\\" not in name and ".." not in name
    assert not (app.settings.daemon.data_dir / "etc").exists()


def test_inline_cid_image_is_saved(app):
    ingest(app, read_fixture("inline-cid-image-outlook.eml"))

    [att] = Attachment.select()
    assert att.inline
    assert att.content_id == "image001.png@01DB98A1.5C2E3F40"
    assert app.attachment_store.exists(att.sha256)


def test_priority_high_from_importance_header(app):
    result = ingest(app, read_fixture("high-importance.eml"))
    assert ticket(result.ticket).priority == "high"


@pytest.mark.parametrize(
    "headers", [{"Importance": "High"}, {"X-Priority": "2 (High)"}, {"Priority": "urgent"}]
)
def test_priority_headers(app, headers):
    assert ticket(open_ticket(app, headers=headers).ticket).priority == "high"


# ---------------------------------------------------------------------------
# outbox idempotency
# ---------------------------------------------------------------------------


def test_outbox_idempotency_keys_are_unique_and_tied_to_the_inbound(app):
    first = open_ticket(app, cc=("joao@padaria.example.com.br",))
    ingest(app, mail(subject=f"Re: [#{first.ticket}]", body="mais detalhes\n"))
    ingest(app, mail(subject="nao consigo emitir nf-e"))  # duplicate subject notice

    keys = [r.idem_key for r in Outbox.select()]
    assert len(keys) == len(set(keys)) >= 4
    assert f"ack:{first.inbound_id}" in keys
    assert all(re.match(r"^[a-z_]+:\d+(:[a-z_]+)?$", k) for k in keys), keys


# ---------------------------------------------------------------------------
# both databases
# ---------------------------------------------------------------------------


def test_core_outcomes_on_any_database(app_any_db):
    app = app_any_db
    created = open_ticket(app, subject="RES: Não consigo emitir NF-e", message_id="any-1@c.example")
    number = created.ticket

    appended = ingest(app, mail(subject=f"ENC: [#{number}]", body="detalhe\n"))
    dup_msg = ingest(app, mail(message_id="any-1@c.example"))
    dup_subj = ingest(app, mail(subject="nao consigo emitir nf-e"))

    assert (appended.outcome, appended.ticket) == (o.APPENDED, number)
    assert dup_msg.outcome == o.DUPLICATE_MESSAGE
    assert (dup_subj.outcome, dup_subj.ticket) == (o.DUPLICATE_SUBJECT_REJECTED, number)
    assert counts()["tickets"] == 1
    assert len(entries(number)) == 2
    assert RawMessage.select().count() == 4


def test_delayed_dsn_is_a_note_not_a_bounce(app):
    requester = "joao@example.net"
    number = open_ticket(app, sender=requester).ticket
    [ack] = outbox("confirmation")
    raw = read_fixture("bounce-postfix-delay.eml").replace(
        b"out-7@maild.example.com", ack.message_id.encode()
    )

    result = ingest(app, raw)

    assert (result.outcome, result.ticket) == (o.BOUNCE, number)
    # the remote MTA is still trying: our row is not bounced, no cool-down
    assert Outbox.get_by_id(ack.id).status == OUTBOX_PENDING
    assert "delayed" in entries(number)[-1].text.lower()
    second = open_ticket(app, sender=requester, subject="Outro assunto").ticket
    assert outbox("confirmation", second)[0].status == OUTBOX_PENDING


REPLY_FIXTURES = sorted(
    p.name for p in MAIL_FIXTURES.glob("reply-*.eml") if b"592110" in p.read_bytes()
)


@pytest.mark.parametrize("fixture", REPLY_FIXTURES)
def test_client_replies_thread_by_token_and_are_stripped(app, fixture):
    raw = read_fixture(fixture)
    sender = parseaddr(email.message_from_bytes(raw)["From"])[1].lower()
    number = open_ticket(app, sender=sender, subject="Assunto original").ticket
    raw = raw.replace(b"592110", str(number).encode())

    result = ingest(app, raw)

    assert (result.outcome, result.ticket) == (o.APPENDED, number), fixture
    entry = entries(number)[-1]
    assert entry.text.strip()
    assert len(entry.text) < len(entry.full_text)  # quoted history cut, whole kept
    quoted = [line for line in entry.text.splitlines() if line.startswith(">")]
    if "interleaved" in fixture:  # each answer keeps the question it answers
        assert quoted and not any("Ref:" in line or "Acme" in line for line in quoted)
    else:
        assert not quoted


def test_dry_run_on_any_database(app_any_db):
    from maild.pipeline import dry_run

    app = app_any_db
    seen = read_fixture("no-message-id.eml")
    ingest(app, seen)
    before, inbound = counts(), Inbound.select().count()

    fresh = dry_run(app, mail(attachments=[("tela.png", "image/png", PNG)]))
    again = dry_run(app, seen)

    assert fresh.outcome == o.CREATED and fresh.ticket is not None
    assert again.outcome == o.DUPLICATE_MESSAGE
    assert counts() == before and Inbound.select().count() == inbound
    assert not (app.settings.daemon.data_dir / "attachments").exists()


@pytest.mark.parametrize("error", [True, False], ids=["internal-error", "no-sender"])
def test_a_quarantined_message_arriving_again_is_a_duplicate(files_app, error):
    app = files_app
    blocker = app.settings.daemon.data_dir / "attachments"
    if error:
        blocker.write_text("not a folder")
        raw = mail(message_id="q-1@c.example", attachments=[("tela.png", "image/png", PNG)])
    else:
        raw = read_fixture("empty.eml")
    first = ingest(app, raw)

    again = ingest(app, raw)

    assert first.outcome == o.QUARANTINED
    assert again.outcome == o.DUPLICATE_MESSAGE
    assert Inbound.select().where(Inbound.state == "quarantined").count() == 1
    if error:
        blocker.unlink()
        assert release(app, first.inbound_id).outcome == o.CREATED


def test_our_own_addresses_in_cc_never_become_ticket_ccs(app):
    cc = ("suporte+123456@example.com", "Vendas@example.com", "ana@example.com")

    result = open_ticket(app, cc=cc)

    assert TicketCC.select().count() == 0
    [ack] = outbox("confirmation", result.ticket)
    assert ack.recipients == [CUSTOMER]
