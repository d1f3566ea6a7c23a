"""Known customers (SPEC §13), the ticket-list link in mail and the "meus chamados"
request (SPEC §12), and the customer's language (issue 12), through the real
pipeline and the real ``maild customers`` command on a real database."""

from __future__ import annotations

import json

import pytest
from maild.storage import customers as store
from maild.storage.models import Customer, CustomerLink, Inbound, Outbox, Ticket

from maild.customers_cli import parse_csv
from maild.pipeline import ingest
from maild.policy import types as o
from tests.component.conftest import bodies, counts, mail, outbox, parsed

KNOWN = {"access": {"customers": "known"}}
STRANGER = "estranho@desconhecido.example"


def known_app(make_app, database_url=None):
    return make_app(database_url, **KNOWN)


def add(app, **fields):
    with app.db.atomic():
        store.add_customer(app.clock.now(), **fields)


# ---------------------------------------------------------------------------
# known-customers mode
# ---------------------------------------------------------------------------


def test_a_stranger_gets_a_polite_refusal_and_no_ticket(make_app, database_url):
    app = known_app(make_app, database_url)
    before = counts()

    result = ingest(app, mail(sender=STRANGER, subject="Quero suporte"))

    assert result.outcome == o.UNKNOWN_SENDER_REJECTED and result.ticket is None
    assert Ticket.select().count() == 0
    notices = outbox("notice_unknown_sender")
    assert len(notices) == 1 and notices[0].recipients == [STRANGER]
    text, _html = bodies(notices[0])
    assert "não está cadastrado" in text and "Quero suporte" in text
    assert "/t/" not in text and "/c/" not in text
    assert counts()["tickets"] == before["tickets"]
    row = Inbound.get_by_id(result.inbound_id)
    assert row.outcome == o.UNKNOWN_SENDER_REJECTED and row.detail == "known-customer"


def test_one_notice_per_window(make_app, database_url):
    app = known_app(make_app, database_url)
    for n in range(3):
        assert ingest(app, mail(sender=STRANGER, subject=f"Pedido {n}")).outcome == (
            o.UNKNOWN_SENDER_REJECTED
        )
    assert len(outbox("notice_unknown_sender")) == 1
    app.clock.advance(hours=1, minutes=1)
    ingest(app, mail(sender=STRANGER, subject="Pedido 4"))
    assert len(outbox("notice_unknown_sender")) == 2


def test_no_notice_to_an_auto_reply(make_app):
    app = known_app(make_app)
    result = ingest(
        app, mail(sender=STRANGER, headers={"Auto-Submitted": "auto-replied"}, subject="Ausente")
    )
    assert result.outcome == o.AUTO_REPLY_IGNORED
    assert outbox() == []


@pytest.mark.parametrize(
    "customer",
    [{"email": "mariana@padaria.example.com.br"}, {"domain": "padaria.example.com.br"}],
)
def test_a_known_address_or_domain_opens_tickets(make_app, customer):
    app = known_app(make_app)
    add(app, name="Padaria", **customer)
    result = ingest(app, mail())
    assert result.outcome == o.CREATED


def test_agents_and_ccs_of_existing_tickets_are_always_allowed(make_app):
    app = known_app(make_app)
    add(app, email="mariana@padaria.example.com.br")
    first = ingest(app, mail(cc=["colega@gmail.com"]))
    assert first.outcome == o.CREATED
    # The CC, unknown to the customer table, opens a ticket of their own.
    assert ingest(app, mail(sender="colega@gmail.com", subject="Outro")).outcome == o.CREATED
    # An agent opening a ticket is never refused.
    agent = ingest(app, mail(sender="ana@example.com", sender_name="Ana", subject="Interno"))
    assert agent.outcome == o.CREATED


def test_removing_a_customer_closes_the_door(make_app):
    app = known_app(make_app)
    add(app, domain="cliente.example")
    with app.db.atomic():
        assert store.remove_customer("@cliente.example")
    result = ingest(app, mail(sender="joao@cliente.example"))
    assert result.outcome == o.UNKNOWN_SENDER_REJECTED


def test_anyone_mode_ignores_the_table(app):
    assert ingest(app, mail(sender=STRANGER)).outcome == o.CREATED


def test_dry_run_shows_the_refusal(make_app, write_config, cli, tmp_path):
    app = known_app(make_app)
    config = write_config(app, **KNOWN)
    path = tmp_path / "stranger.eml"
    path.write_bytes(mail(sender=STRANGER))

    code, out, err = cli(app, config, "ingest", "--dry-run", str(path))

    assert code == 0, err
    line = json.loads(out.splitlines()[0])
    assert line["outcome"] == o.UNKNOWN_SENDER_REJECTED and line["ticket"] is None
    assert Inbound.select().count() == 0 and Outbox.select().count() == 0


# ---------------------------------------------------------------------------
# maild customers
# ---------------------------------------------------------------------------


def test_customers_cli_import_list_add_remove_rotate(app, write_config, cli, tmp_path):
    config = write_config(app)
    csv_file = tmp_path / "clientes.csv"
    csv_file.write_text(
        "email,domain,name,organization\n"
        "Mariana@Padaria.example.com.br,,Mariana Souza,Padaria Pão Quente\n"
        ",@oficina.example,,Oficina do Zé\n",
        encoding="utf-8",
    )
    code, out, err = cli(app, config, "customers", "import", str(csv_file))
    assert code == 0, err
    assert "2 customer(s) added" in out

    ingest(app, mail())  # gives Mariana a ticket
    code, out, err = cli(app, config, "customers", "rotate-link", "mariana@padaria.example.com.br")
    assert code == 0, err
    link = out.strip()
    assert link.startswith("http://127.0.0.1:8080/c/")

    code, out, err = cli(app, config, "customers", "list", "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert rows == [
        {
            "email": "mariana@padaria.example.com.br",
            "domain": None,
            "name": "Mariana Souza",
            "organization": "Padaria Pão Quente",
            "tickets": 1,
            "link": link,
        },
        {
            "email": None,
            "domain": "oficina.example",
            "name": "",
            "organization": "Oficina do Zé",
            "tickets": None,
            "link": None,
        },
    ]

    code, out, err = cli(app, config, "customers", "add", "@novo.example", "--name", "Novo")
    assert code == 0 and "@novo.example added" in out
    code, out, err = cli(app, config, "customers", "remove", "@oficina.example")
    assert code == 0, err
    code, out, err = cli(app, config, "customers", "remove", "@oficina.example")
    assert code == 1 and "no customer" in err
    code, out, err = cli(app, config, "customers", "list")
    assert code == 0 and "@novo.example" in out and "oficina" not in out
    code, _, err = cli(app, config, "customers", "add", "not an address")
    assert code == 1 and "neither an email address nor a domain" in err

    # Rotating again: the old link is dead.
    old_key = link.rsplit("/", 1)[1]
    cli(app, config, "customers", "rotate-link", "mariana@padaria.example.com.br")
    assert store.address_for_key(old_key) is None


def test_import_checks_every_row_before_writing(app, write_config, cli, tmp_path):
    config = write_config(app)
    bad = tmp_path / "bad.csv"
    bad.write_text("email,name\nok@example.org,Ok\nnão é email,X\n", encoding="utf-8")
    code, _, err = cli(app, config, "customers", "import", str(bad))
    assert code == 1 and "line 3" in err
    assert Customer.select().count() == 0


def test_parse_csv_rejects_a_header_without_address_columns() -> None:
    assert parse_csv("nome,empresa\nx,y\n")[1] == [
        "line 1: the header needs an 'email' or a 'domain' column"
    ]
    rows, problems = parse_csv("\ufeffemail,domain\na@b.example,b.example\n")
    assert rows == [] and problems == ["line 2: give either an email or a domain"]


# ---------------------------------------------------------------------------
# the list link in mail, and "meus chamados"
# ---------------------------------------------------------------------------


def test_confirmation_carries_the_list_link_when_only_the_requester_reads_it(app):
    ingest(app, mail())
    text, html = bodies(outbox("confirmation")[0])
    key = CustomerLink.get(CustomerLink.address == "mariana@padaria.example.com.br").access_key
    assert f"http://127.0.0.1:8080/c/{key}" in text and f"/c/{key}" in html

    ingest(app, mail(subject="Com cópia", cc=["colega@padaria.example.com.br"]))
    text, _ = bodies(outbox("confirmation")[1])
    assert "/c/" not in text  # the CC must not see the requester's other tickets


def test_agent_reply_carries_the_list_link(app):
    number = ingest(app, mail()).ticket
    ingest(
        app,
        mail(
            sender="ana@example.com",
            sender_name="Ana",
            subject=f"Re: [#{number}] Não consigo emitir NF-e",
            body="Já corrigimos.\n",
        ),
    )
    text, _ = bodies(outbox("agent_reply")[0])
    assert "Meus chamados: http://127.0.0.1:8080/c/" in text


@pytest.mark.parametrize(
    "subject", ["Meus chamados", "MEUS CHAMADOS", "My tickets", "RE: meus chamados"]
)
def test_my_tickets_request_answers_the_from_address_only(app, subject):
    ingest(app, mail())
    before = Ticket.select().count()
    result = ingest(
        app,
        mail(subject=subject, headers={"Reply-To": "outro@elsewhere.example"}, cc=["x@y.example"]),
    )
    assert result.outcome == o.TICKET_LIST_REQUESTED and result.ticket is None
    assert Ticket.select().count() == before
    (row,) = outbox("ticket_list")
    assert row.recipients == ["mariana@padaria.example.com.br"]
    message = parsed(row)
    assert "Cc" not in message
    text, _ = bodies(row)
    key = store.list_key("mariana@padaria.example.com.br", app.clock.now(), create=False)
    assert f"/c/{key}" in text and "1 chamado" in text


def test_my_tickets_request_follows_the_loop_rules(app):
    result = ingest(app, mail(subject="Meus chamados", headers={"Precedence": "bulk"}))
    assert result.outcome == o.AUTO_REPLY_IGNORED
    assert outbox("ticket_list") == []


# ---------------------------------------------------------------------------
# language per customer
# ---------------------------------------------------------------------------

ENGLISH_BODY = "Hello, the printer on the second floor does not print. Can you help? Thanks\n"


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        ({"Content-Language": "en-US"}, "Oi\n", "en"),
        ({"Accept-Language": "en-GB, pt-BR;q=0.5"}, "Oi\n", "en"),
        ({}, ENGLISH_BODY, "en"),
        ({}, "Bom dia, a impressora não imprime. Por favor me ajude.\n", "pt_BR"),
        ({}, "ok\n", "pt_BR"),  # nothing clear: the desk's language
        ({"Content-Language": "de-DE"}, "Hallo\n", "pt_BR"),  # not one we answer in
    ],
)
def test_ticket_language_is_chosen_at_creation(app, headers, body, expected):
    # Content-* headers go in front: EmailMessage.set_content drops them.
    raw = "".join(f"{k}: {v}\n" for k, v in headers.items()).encode() + mail(
        subject="Printer", body=body
    )
    result = ingest(app, raw)
    assert Ticket.get(Ticket.number == result.ticket).language == expected


def test_every_later_mail_uses_the_tickets_language(app):
    number = ingest(app, mail(subject="Printer", body=ENGLISH_BODY)).ticket
    text, _ = bodies(outbox("confirmation")[0])
    assert "We received your message" in text and "Please type your reply" in text
    # The agents are told in the desk's language.
    agent_text, _ = bodies(outbox("agent_notification")[0])
    assert "Responda acima desta linha" in agent_text
    ingest(
        app,
        mail(
            sender="ana@example.com",
            sender_name="Ana",
            subject=f"Re: [#{number}] Printer",
            body="#status resolved\nFixed, please try again.\n",
        ),
    )
    text, _ = bodies(outbox("agent_reply")[0])
    assert "My tickets:" in text and "Please type your reply" in text
    resolved_text, _ = bodies(outbox("resolved")[0])
    assert "Please type your reply" in resolved_text
    # A Portuguese follow-up on the English ticket is still answered in English.
    result = ingest(app, mail(subject=f"[#{number}] Printer", body="Obrigada, mas não funcionou"))
    assert result.outcome == o.FOLLOWUP_REJECTED
    text, _ = bodies(outbox("notice_followup_rejected")[0])
    assert "Please type your reply" in text


def test_a_refusal_without_a_ticket_is_in_the_senders_language(make_app):
    app = known_app(make_app)
    ingest(app, mail(sender=STRANGER, subject="Support", body=ENGLISH_BODY))
    text, _ = bodies(outbox("notice_unknown_sender")[0])
    assert "is not registered with our help desk" in text


# ---------------------------------------------------------------------------
# a flooding customer is told; listings by address include CC tickets
# ---------------------------------------------------------------------------


def test_the_rate_limit_notice_is_not_swallowed_by_the_auto_mail_cap(app, clock):
    # Defaults: 20 messages an hour allowed, 10 automatic mails an hour to one address.
    for n in range(20):
        assert ingest(app, mail(subject=f"Pedido {n}")).outcome == o.CREATED
        clock.advance(minutes=1)
    assert ingest(app, mail(subject="Pedido 21")).outcome == o.RATE_LIMITED
    (notice,) = outbox("notice_rate_limited")
    assert notice.status == "pending"  # queued for sending, not suppressed


def test_a_held_reply_on_an_english_ticket_is_told_in_english(make_app, clock):
    app = make_app(limits={"max_messages_per_sender_per_hour": 2})
    number = ingest(app, mail(subject="Printer", body=ENGLISH_BODY)).ticket
    clock.advance(minutes=1)
    assert ingest(app, mail(subject=f"Re: [#{number}] Printer", body="Mais uma coisa")).ticket
    clock.advance(minutes=1)
    held = ingest(app, mail(subject=f"Re: [#{number}] Printer", body="Ainda não funciona"))
    assert held.outcome == o.RATE_LIMITED
    (notice,) = outbox("notice_rate_limited")
    text, _ = bodies(notice)
    assert "Please type your reply" in text  # the ticket's language, not the message's


def test_tickets_list_requester_includes_tickets_where_the_address_is_cc(app, write_config, cli):
    own = ingest(app, mail()).ticket
    copied = ingest(
        app, mail(sender="chefe@padaria.example.com.br", cc=["mariana@padaria.example.com.br"])
    ).ticket
    config = write_config(app)
    code, out, err = cli(
        app, config, "tickets", "list", "--requester", "mariana@padaria.example.com.br", "--json"
    )
    assert code == 0, err
    assert sorted(row["number"] for row in json.loads(out)) == sorted([own, copied])


def test_status_mail_labels_are_in_the_tickets_language(app):
    number = ingest(app, mail(subject="Printer", body=ENGLISH_BODY)).ticket
    ingest(
        app,
        mail(
            sender="ana@example.com",
            sender_name="Ana",
            subject=f"Re: [#{number}] Printer",
            body="#status in_progress\n#note\nLooking into it.\n",
        ),
    )
    (row,) = outbox("status_changed")
    text, _ = bodies(row)
    assert "In progress" in text and "Em andamento" not in text


def test_customer_storage_on_both_databases(make_app, database_url):
    app = make_app(database_url)
    now = app.clock.now()
    with app.db.atomic():
        store.add_customer(now, email="Ana@Cliente.example", name="Ana")
        store.add_customer(now, domain="@oficina.example")
        _, created = store.add_customer(now, email="ana@cliente.example", organization="Cliente")
        assert not created
        first = store.list_key("ana@cliente.example", now)
        assert store.list_key("ANA@cliente.example", now) == first
    assert store.is_known("ana@cliente.example") and store.is_known("ze@oficina.example")
    assert not store.is_known("ze@cliente.example") and not store.is_known("")
    row = Customer.get(Customer.email == "ana@cliente.example")
    assert (row.name, row.organization) == ("Ana", "Cliente")
    assert store.address_for_key(first) == "ana@cliente.example"
