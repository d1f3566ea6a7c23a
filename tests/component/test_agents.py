"""Agents by email through the real pipeline: replies, commands, notes, forwards, spoofing.

Customer and agent mails are plain bytes fed to ``maild.pipeline.ingest`` on a
SQLite database; what the daemon would send is read from the outbox, and the
end-to-end test delivers it over real SMTP to the ``smtp_sink``.
"""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import pytest
from maild.storage.models import Event, Inbound, Outbox, ThreadEntry, Ticket

from maild.agents import agent_trust_warning
from maild.app import App
from maild.pipeline import dry_run, ingest
from maild.records import IngestResult
from maild.sender import OutboxSender
from maild.transports import SmtpTransport
from tests.component.conftest import CUSTOMER, bodies, counts, mail, outbox, ticket
from tests.conftest import read_fixture
from tests.plugins.smtpsink import SmtpSink

ANA = "ana@example.com"  # agent of suporte and comercial
BRUNO = "bruno@example.com"  # agent of financeiro
SEPARATOR = "##- Responda acima desta linha -##"
TRUSTED = "mx.example.com"
AUTH_REQUIRED = {
    "agents_auth": {"require": "authentication-results", "trusted_authserv_id": TRUSTED}
}
AR_PASS = (
    f"{TRUSTED}; dkim=pass header.d=example.com header.s=s1; dmarc=pass header.from=example.com"
)

# The agents who forward in the forward-*.eml fixtures.
FORWARDING_AGENTS = {
    "agents": [
        {"email": ANA, "name": "Ana", "departments": ["suporte", "comercial"]},
        {"email": BRUNO, "name": "Bruno", "departments": ["financeiro"]},
        {"email": "pedro@example.com", "name": "Pedro Santos"},
        {"email": "beatriz@example.com", "name": "Beatriz Melo"},
        {"email": "luiza.prado@example.org", "name": "Luiza Prado"},
    ]
}


def agent_reply(
    number: int | None,
    body: str,
    *,
    sender: str = ANA,
    subject: str | None = None,
    in_reply_to: str | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    """An agent's Gmail-style reply: text on top, our mail quoted below an attribution."""
    quoted = (
        "Em ter., 24 de nov. de 2026 às 10:00, Acme Suporte <suporte@example.com> escreveu:\n"
        f"> {SEPARATOR}\n>\n> Novo chamado de Mariana Souza.\n>\n"
        "> O sistema mostra erro 500 ao emitir a nota.\n"
    )
    return mail(
        subject=subject if subject is not None else f"Re: [#{number}] Não consigo emitir NF-e",
        sender=sender,
        sender_name="Ana" if sender == ANA else "",
        body=f"{body}\n\n{quoted}",
        in_reply_to=in_reply_to,
        headers=headers,
    )


def open_ticket(app: App, **kwargs: Any) -> int:
    result = ingest(app, mail(**kwargs))
    assert result.outcome == "created"
    assert result.ticket is not None
    return result.ticket


def events(number: int, kind: str | None = None) -> list[Event]:
    query = Event.select().where(Event.ticket == ticket(number)).order_by(Event.id)
    if kind is not None:
        query = query.where(Event.kind == kind)
    return list(query)


def entries(number: int) -> list[ThreadEntry]:
    return list(
        ThreadEntry.select().where(ThreadEntry.ticket == ticket(number)).order_by(ThreadEntry.id)
    )


def error_mails(to: str = ANA) -> list[Outbox]:
    return [row for row in outbox("notice_agent_error") if to in row.recipients]


# ---------------------------------------------------------------------------
# relay
# ---------------------------------------------------------------------------


def test_reply_is_relayed_to_requester_and_ccs_without_quotes(app: App) -> None:
    number = open_ticket(app, cc=["socio@padaria.example.com.br"])
    result = ingest(
        app, agent_reply(number, "Olá Mariana,\n\nReinstale o emissor e tente de novo.")
    )

    assert result.outcome == "appended"
    [row] = outbox("agent_reply", number)
    assert row.recipients == [CUSTOMER, "socio@padaria.example.com.br"]
    text, html = bodies(row)
    assert "Reinstale o emissor e tente de novo." in text
    assert "Reinstale o emissor" in html
    for leaked in ("escreveu:", "Novo chamado de", "> ", "erro 500"):
        assert leaked not in text
    assert ticket(number).status == "waiting_customer"
    [_, agent_entry] = entries(number)
    assert (agent_entry.kind, agent_entry.author) == ("agent", ANA)
    assert agent_entry.text == "Olá Mariana,\n\nReinstale o emissor e tente de novo."
    [changed] = events(number, "status_changed")
    assert changed.actor == ANA


def test_relayed_reply_keeps_the_customers_thread(app: App) -> None:
    number = open_ticket(app, message_id="first@cliente.example")
    ingest(
        app,
        mail(
            subject=f"Re: [#{number}] Não consigo emitir NF-e",
            message_id="second@cliente.example",
            body="Continua.\n",
        ),
    )
    ingest(app, agent_reply(number, "Vamos olhar."))

    [row] = outbox("agent_reply", number)
    relayed = email.message_from_bytes(bytes(row.raw), policy=email.policy.default)
    assert str(relayed["In-Reply-To"]).strip() == "<second@cliente.example>"
    refs = str(relayed["References"]).split()
    assert refs[:2] == ["<first@cliente.example>", "<second@cliente.example>"]
    assert relayed["Auto-Submitted"] is None  # a person's reply, not automatic mail


def test_replying_to_the_notification_needs_nothing_but_reply(app: App) -> None:
    number = open_ticket(app)
    [notification] = outbox("agent_notification", number)
    assert notification.recipients == [ANA]
    # No token in the subject: the client's In-Reply-To is all that ties it.
    raw = agent_reply(
        None,
        "Já estamos vendo.",
        subject="Re: Novo chamado",
        in_reply_to=notification.message_id,
    )
    result = ingest(app, raw)

    assert (result.outcome, result.ticket) == ("appended", number)
    assert len(outbox("agent_reply", number)) == 1


def test_command_lines_are_not_relayed(app: App) -> None:
    number = open_ticket(app)
    ingest(app, agent_reply(number, "#priority alta\n#status in_progress\n\nEstamos verificando."))

    [row] = outbox("agent_reply", number)
    text, _ = bodies(row)
    assert "Estamos verificando." in text
    assert "#priority" not in text and "#status" not in text
    t = ticket(number)
    assert (t.priority, t.status) == ("high", "in_progress")  # the command beats waiting


def test_commands_only_change_the_ticket_and_relay_nothing(app: App) -> None:
    number = open_ticket(app)
    before = len(entries(number))
    ingest(app, agent_reply(number, "#priority urgente"))

    assert ticket(number).priority == "urgent"
    assert ticket(number).status == "open"
    assert outbox("agent_reply", number) == []
    assert len(entries(number)) == before


# ---------------------------------------------------------------------------
# internal notes
# ---------------------------------------------------------------------------


def test_note_stays_internal(app: App) -> None:
    number = open_ticket(app)
    ingest(app, agent_reply(number, "#note\n\nCliente VIP, ligar antes das 12h."))

    assert outbox("agent_reply", number) == []
    note = entries(number)[-1]
    assert (note.kind, note.author) == ("note", ANA)
    assert note.text == "Cliente VIP, ligar antes das 12h."
    assert ticket(number).status == "open"  # a note is no answer to the customer
    assert not any("Cliente VIP" in bytes(row.raw).decode("utf-8", "replace") for row in outbox())


def test_note_with_commands_applies_them_and_still_relays_nothing(app: App) -> None:
    number = open_ticket(app)
    ingest(app, agent_reply(number, "#priority baixa\n#note\n#assign me\n\nAguardando o fiscal."))

    t = ticket(number)
    assert (t.priority, t.assignee) == ("low", ANA)
    assert outbox("agent_reply", number) == []
    assert entries(number)[-1].kind == "note"


# ---------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "priority"),
    [
        ("baixa", "low"),
        ("media", "normal"),
        ("média", "normal"),
        ("alta", "high"),
        ("urgente", "urgent"),
        ("Alta", "high"),
        ("high", "high"),
    ],
)
def test_pt_br_priority_aliases(app: App, word: str, priority: str) -> None:
    number = open_ticket(app)
    if priority == "normal":  # make the change visible
        ingest(app, agent_reply(number, "#priority alta"))
    ingest(app, agent_reply(number, f"#priority {word}\n\nOk."))

    assert ticket(number).priority == priority
    assert events(number, "priority_changed")[-1].actor == ANA


def test_several_commands_are_each_an_event_by_the_agent(app: App) -> None:
    number = open_ticket(app)
    ingest(
        app,
        agent_reply(number, "#status in_progress\n#priority alta\n#assign Ana\n\nVerificando."),
    )

    kinds = {(e.kind, e.actor) for e in events(number)}
    assert {
        ("status_changed", ANA),
        ("priority_changed", ANA),
        ("assigned", ANA),
    } <= kinds
    assert events(number, "assigned")[-1].data == {"old": None, "new": ANA}


def test_close_resolves(app: App) -> None:
    number = open_ticket(app)
    ingest(app, agent_reply(number, "#close\n\nResolvido, obrigado!"))

    assert ticket(number).status == "resolved"
    assert len(outbox("agent_reply", number)) == 1


def test_close_sends_the_customer_the_resolved_mail_with_rating_links(app: App) -> None:
    number = open_ticket(app)
    ingest(app, agent_reply(number, "#close\n\nResolvido, obrigado!"))

    (row,) = outbox("resolved", number)
    parsed = email.message_from_bytes(bytes(row.raw), policy=email.policy.default)
    text = parsed.get_body(("plain",)).get_content()
    t = ticket(number)
    assert row.recipients == [t.requester]
    assert f"/t/{number}/{t.access_key}?rate=5" in text


def test_status_command_mails_the_change_but_a_plain_reply_does_not(app: App) -> None:
    number = open_ticket(app)
    ingest(app, agent_reply(number, "Estamos verificando."))
    assert outbox("status_changed", number) == []  # the reply itself tells the customer

    ingest(app, agent_reply(number, "#status in_progress"))
    assert len(outbox("status_changed", number)) == 1

    # An explicit #status waiting on a relayed reply: the reply itself is enough.
    ingest(app, agent_reply(number, "#status waiting\n\nPode testar de novo?"))
    assert len(outbox("status_changed", number)) == 1
    assert ticket(number).status == "waiting_customer"


def test_notifications_skip_an_assignee_no_longer_in_settings(app: App) -> None:
    number = open_ticket(app)
    Ticket.update(assignee="ex-agente@example.com").where(Ticket.number == number).execute()

    ingest(app, mail(subject=f"Re: [#{number}] Não consigo emitir NF-e", body="Alguma novidade?\n"))

    latest = outbox("agent_notification", number)[-1]
    assert latest.recipients == [ANA]


@pytest.mark.parametrize("who", ["me", "Ana", "ana", "ANA@example.com", "ana@example.com"])
def test_assign_forms(app: App, who: str) -> None:
    number = open_ticket(app)
    ingest(app, agent_reply(number, f"#assign {who}"))

    assert ticket(number).assignee == ANA


def test_assign_another_agent_by_name(app: App) -> None:
    number = open_ticket(app)
    ingest(app, agent_reply(number, "#assign Bruno"))

    assert ticket(number).assignee == BRUNO


def test_invalid_command_applies_nothing_relays_nothing_and_names_the_line(app: App) -> None:
    number = open_ticket(app)
    before = counts()
    before_outbox = len(outbox())
    result = ingest(
        app,
        agent_reply(number, "#status resolved\n#priority altissima\n#assign me\n\nResolvido."),
    )

    assert (result.outcome, result.ticket) == ("agent_refused", number)
    assert result.detail is not None and result.detail.endswith(": command")

    t = ticket(number)
    assert (t.status, t.priority, t.assignee) == ("open", "normal", None)
    assert outbox("agent_reply", number) == []
    after = counts()
    assert after["entries"] == before["entries"]
    assert after["events"] == before["events"] + 1  # the refusal itself, for the audit
    [error] = events(number, "agent_command_error")
    assert error.data["line"] == "#priority altissima"
    assert len(outbox()) == before_outbox + 1
    [row] = error_mails()
    text, _ = bodies(row)
    assert "#priority altissima" in text
    assert "#status open|in_progress|waiting|resolved|closed" in text
    assert "#priority low|normal|high|urgent" in text
    assert f"[#{number}]" in str(email.message_from_bytes(bytes(row.raw))["Subject"])


@pytest.mark.parametrize(
    ("command", "named"),
    [
        ("#assign Carla", "#assign Carla"),
        ("#department juridico", "#department juridico"),
        ("#frobnicate", "#frobnicate"),
        ("#note please call", "#note please call"),
    ],
)
def test_each_kind_of_invalid_command_is_refused(app: App, command: str, named: str) -> None:
    number = open_ticket(app)
    result = ingest(app, agent_reply(number, f"#priority alta\n{command}\n\nTexto."))

    assert result.outcome == "agent_refused"
    assert ticket(number).priority == "normal"
    assert outbox("agent_reply", number) == []
    [row] = error_mails()
    assert named in bodies(row)[0]


def test_department_moves_the_ticket_and_drops_an_assignee_not_in_it(app: App) -> None:
    number = open_ticket(app)
    ingest(app, agent_reply(number, "#assign me"))
    ingest(app, agent_reply(number, "#department financeiro\n\nPassando para o financeiro."))

    t = ticket(number)
    assert (t.department, t.assignee) == ("financeiro", None)
    [moved] = events(number, "department_changed")
    assert (moved.actor, moved.data) == (ANA, {"old": "suporte", "new": "financeiro"})
    assert events(number, "assigned")[-1].data == {"old": ANA, "new": None}

    ingest(app, mail(subject=f"Re: [#{number}] Não consigo emitir NF-e", body="E agora?\n"))
    assert outbox("agent_notification", number)[-1].recipients == [BRUNO]


# ---------------------------------------------------------------------------
# refusals: unknown ticket, other department
# ---------------------------------------------------------------------------


def test_token_of_an_unknown_ticket_gets_an_error_and_opens_nothing(app: App) -> None:
    before = counts()
    result = ingest(app, agent_reply(999999, "#close\n\nFeito."))

    assert (result.outcome, result.ticket) == ("agent_refused", None)
    assert result.detail is not None and result.detail.endswith(": unknown_ticket")
    record = Inbound.get_by_id(result.inbound_id)
    assert (record.outcome, record.ticket_id) == ("agent_refused", None)
    assert counts()["tickets"] == before["tickets"]
    [row] = error_mails()
    text, _ = bodies(row)
    assert "999999" in text
    assert outbox("agent_reply") == []


def test_unknown_token_on_a_thread_found_by_references_applies_nothing(app: App) -> None:
    number = open_ticket(app)
    [notification] = outbox("agent_notification", number)
    raw = agent_reply(
        None,
        "#close\n\nFeito.",
        subject="Re: [#999999] Não consigo emitir NF-e",
        in_reply_to=notification.message_id,
    )
    result = ingest(app, raw)

    assert (result.outcome, result.ticket) == ("agent_refused", None)
    assert result.detail is not None and result.detail.endswith(": unknown_ticket")
    assert ticket(number).status == "open"
    assert outbox("agent_reply", number) == []
    assert "999999" in bodies(error_mails()[0])[0]


def test_agent_outside_the_tickets_department_is_refused(app: App) -> None:
    number = open_ticket(app, to="financeiro@example.com", subject="Boleto errado")
    before = counts()
    refused = ingest(
        app, agent_reply(number, "#close\n\nResolvido.", subject=f"Re: [#{number}] Boleto")
    )

    assert (refused.outcome, refused.ticket) == ("agent_refused", number)
    assert refused.detail is not None and refused.detail.endswith(": department")
    assert ticket(number).status == "open"
    assert outbox("agent_reply", number) == []
    assert counts()["entries"] == before["entries"]
    [event] = events(number, "agent_refused")
    assert event.actor == ANA
    [row] = error_mails()
    assert "Financeiro" in bodies(row)[0]
    assert "/t/" not in bodies(row)[0]  # no link to a ticket she has no part in

    result = ingest(
        app, agent_reply(number, "Vou verificar.", sender=BRUNO, subject=f"Re: [#{number}] Boleto")
    )
    assert result.outcome == "appended"
    assert len(outbox("agent_reply", number)) == 1


def test_the_assignee_may_act_outside_their_departments(app: App) -> None:
    number = open_ticket(app, to="financeiro@example.com", subject="Boleto errado")
    ingest(
        app,
        agent_reply(number, "#assign ana", sender=BRUNO, subject=f"Re: [#{number}] Boleto"),
    )
    ingest(app, agent_reply(number, "Oi, sou a Ana.", subject=f"Re: [#{number}] Boleto"))

    assert len(outbox("agent_reply", number)) == 1
    assert error_mails() == []


# ---------------------------------------------------------------------------
# forged agent mail
# ---------------------------------------------------------------------------


def test_forged_agent_mail_is_a_customers(make_app: Any) -> None:
    app = make_app(**AUTH_REQUIRED)
    number = open_ticket(app)
    result = ingest(app, agent_reply(number, "#status closed\n\nFechando."))

    assert result.outcome == "unauthorized"
    t = ticket(number)
    assert (t.status, t.priority) == ("open", "normal")
    assert outbox("agent_reply") == []
    assert error_mails() == []


def test_authentication_results_of_another_server_do_not_count(make_app: Any) -> None:
    app = make_app(**AUTH_REQUIRED)
    number = open_ticket(app)
    forged = AR_PASS.replace(TRUSTED, "mx.attacker.example")
    result = ingest(
        app,
        agent_reply(number, "#close\n\nFechando.", headers={"Authentication-Results": forged}),
    )

    assert result.outcome == "unauthorized"
    assert ticket(number).status == "open"


def test_forged_agent_opening_is_a_customer_ticket_without_commands(make_app: Any) -> None:
    app = make_app(**AUTH_REQUIRED)
    raw = mail(sender=ANA, subject="Pedido urgente", body="#priority urgente\n\nAbram para mim.")
    result = ingest(app, raw)

    assert result.outcome == "created"
    t = ticket(result.ticket)
    assert (t.requester, t.priority) == (ANA, "normal")
    assert "#priority urgente" in entries(t.number)[0].text  # just text from a customer


def test_authenticated_agent_is_an_agent(make_app: Any) -> None:
    app = make_app(**AUTH_REQUIRED)
    number = open_ticket(app)
    result = ingest(
        app,
        agent_reply(number, "#close\n\nResolvido.", headers={"Authentication-Results": AR_PASS}),
    )

    assert result.outcome == "appended"
    assert ticket(number).status == "resolved"
    assert len(outbox("agent_reply", number)) == 1


def test_trust_warning(settings_factory: Any) -> None:
    warning = agent_trust_warning(settings_factory())
    assert warning is not None and "authentication-results" in warning
    assert agent_trust_warning(settings_factory(**AUTH_REQUIRED)) is None


# ---------------------------------------------------------------------------
# forwards
# ---------------------------------------------------------------------------

FORWARD_CASES = [
    # fixture, requester, name, subject, text start, department
    (
        "forward-gmail-en.eml",
        "maria.souza@example.org",
        "Maria Souza",
        "Boleto com valor errado",
        "Bom dia Pedro,",
        "suporte",
    ),
    (
        "forward-outlook-ptbr.eml",
        "marcos.teixeira@example.org",
        "Marcos Teixeira",
        "Cobrança duplicada no cartão",
        "Prezados,",
        "suporte",
    ),
    (
        "forward-outlook-en-original-message.eml",
        "carlos.lima@example.net",
        "Carlos Lima",
        "Invoice 2231 overdue?",
        "Hi Pedro,",
        "suporte",
    ),
    (
        "forward-apple-mail-ptbr.eml",
        "otavio.nunes@example.org",
        "Otávio Nunes",
        "Pedido 4471 não entregue",
        "Olá, meu pedido 4471",
        "suporte",
    ),
    (
        "forward-attached-rfc822.eml",
        "sofia.ramos@example.org",
        "Sofia Ramos",
        "Solicitação de 2ª via",
        "Boa tarde, preciso da segunda via",
        "suporte",
    ),
    (
        "forward-attached-eml-octet-stream.eml",
        "rafael.gomes@example.org",
        "Rafael Gonçalves Gomes",
        "Contrato assinado",
        "Pedro, segue o contrato assinado.",
        "comercial",
    ),
]


@pytest.mark.parametrize(
    ("fixture", "requester", "name", "subject", "start", "department"),
    FORWARD_CASES,
    ids=[case[0] for case in FORWARD_CASES],
)
def test_forward_opens_the_ticket_for_the_original_sender(
    make_app: Any,
    fixture: str,
    requester: str,
    name: str,
    subject: str,
    start: str,
    department: str,
) -> None:
    app = make_app(**FORWARDING_AGENTS)
    raw = read_fixture(fixture)
    agent = email.message_from_bytes(raw, policy=default_policy)["From"].addresses[0]
    result = ingest(app, raw)

    assert result.outcome == "created"
    t = ticket(result.ticket)
    assert (t.requester, t.requester_name, t.subject) == (requester, name, subject)
    assert t.department == department
    [first] = entries(t.number)
    assert (first.kind, first.author, first.author_name) == ("customer", requester, name)
    assert first.text.startswith(start)
    [created] = events(t.number, "created")
    assert created.actor == agent.addr_spec.lower()
    assert created.data["forwarded_by"] == agent.addr_spec.lower()
    [confirmation] = outbox("confirmation", t.number)
    assert confirmation.recipients == [requester]
    text, _ = bodies(confirmation)
    assert name.split()[0] in text  # greets the customer, not the agent
    assert agent.display_name not in text
    assert [r for r in outbox("notice_refused_attachments")] == []
    refused = ("Contrato assinado.eml" in bodies(row)[0] for row in outbox(ticket=t.number))
    assert not any(refused)


def test_forward_in_a_dry_run_changes_nothing(make_app: Any) -> None:
    app = make_app(**FORWARDING_AGENTS)
    result = dry_run(app, read_fixture("forward-gmail-en.eml"))

    assert result.outcome == "created"
    assert counts()["tickets"] == 0


def test_forward_notification_names_the_customer(make_app: Any) -> None:
    app = make_app(**FORWARDING_AGENTS)
    result = ingest(app, read_fixture("forward-gmail-en.eml"))

    [notification] = outbox("agent_notification", result.ticket)
    assert "pedro@example.com" in notification.recipients  # the forwarder learns the number
    text, _ = bodies(notification)
    assert "Maria Souza <maria.souza@example.org>" in text
    assert "O boleto de março" in text


def test_agent_mail_that_is_not_a_forward_opens_a_ticket_for_the_agent(app: App) -> None:
    raw = mail(sender=ANA, sender_name="Ana", subject="Impressora do balcão", body="Não liga.\n")
    result = ingest(app, raw)

    assert result.outcome == "created"
    t = ticket(result.ticket)
    assert t.requester == ANA
    assert events(t.number, "created")[0].actor == ANA


def test_forward_of_our_own_notification_is_not_a_forward(app: App) -> None:
    body = (
        "Vejam isto.\n\n---------- Forwarded message ---------\n"
        "From: Acme Suporte <suporte@example.com>\nDate: Tue\nSubject: Aviso\n"
        "To: Ana <ana@example.com>\n\nTexto do aviso.\n"
    )
    result = ingest(app, mail(sender=ANA, sender_name="Ana", subject="Fwd: Aviso", body=body))

    assert ticket(result.ticket).requester == ANA


# ---------------------------------------------------------------------------
# end to end over SMTP
# ---------------------------------------------------------------------------


def sink_texts(sink: SmtpSink) -> list[tuple[EmailMessage, str]]:
    out = []
    for received in sink.messages:
        part = received.message.get_body(("plain",))
        assert part is not None
        out.append((received.message, part.get_content().replace("\r\n", "\n")))
    return out


def test_end_to_end_customer_agent_customer(make_app: Any, smtp_sink: SmtpSink) -> None:
    app = make_app(smtp={"host": smtp_sink.host, "port": smtp_sink.port, "security": "none"})
    assert app.settings.smtp is not None
    sender = OutboxSender(app, SmtpTransport(app.settings.smtp))

    # 1. the customer opens a ticket
    opened: IngestResult = ingest(app, mail(message_id="abertura-1@padaria.example.com.br"))
    number = opened.ticket
    assert number is not None
    sender.drain()
    smtp_sink.wait_for(2)
    [notification] = [m for m, _ in sink_texts(smtp_sink) if ANA in str(m["To"])]
    assert f"[#{number}]" in str(notification["Subject"])

    # 2. the agent answers the notification with her client's Reply
    reply_to_id = str(notification["Message-ID"]).strip("<>")
    quoted = "\n".join(
        "> " + line
        for line in notification.get_body(("plain",)).get_content().splitlines()  # type: ignore[union-attr]
    )
    raw = mail(
        subject=f"Re: {notification['Subject']}",
        sender=ANA,
        sender_name="Ana",
        to=str(notification["Reply-To"]),
        body=(
            "#priority alta\n\nOlá Mariana, já corrigimos o emissor. Pode tentar de novo?\n\n"
            f"Em ter., 24 de nov. de 2026 às 10:00, Acme Suporte escreveu:\n{quoted}\n"
        ),
        in_reply_to=reply_to_id,
    )
    replied = ingest(app, raw)
    assert (replied.outcome, replied.ticket) == ("appended", number)
    smtp_sink.clear()
    sender.drain()
    [received] = smtp_sink.wait_for(1)

    # 3. the customer receives the reply: no quotes, no command line
    assert received.rcpt_tos == [CUSTOMER]
    message = received.message
    assert f"[#{number}]" in str(message["Subject"])
    assert "abertura-1@padaria.example.com.br" in str(message["In-Reply-To"])
    assert message["Auto-Submitted"] is None  # a person's answer, not automatic mail
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "já corrigimos o emissor" in text
    for leaked in ("#priority", "escreveu:", "Novo chamado", "erro 500"):
        assert leaked not in text

    # the ticket shows the change and who made it
    t = Ticket.get(Ticket.number == number)
    assert (t.priority, t.status) == ("high", "waiting_customer")
    [changed] = events(number, "priority_changed")
    assert (changed.actor, changed.data) == (ANA, {"old": "normal", "new": "high"})
