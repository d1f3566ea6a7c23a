"""Handler tests for the quick-access web view: every route, the 404 cases, form
tokens, headers, escaping, and that GET never changes state."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import zlib
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path
from struct import pack
from typing import Any

import peewee
import pytest
from maild.storage import tickets as store
from maild.storage.models import Event, Inbound, Outbox, ThreadEntry, Ticket

from maild.app import App
from maild.web import rating_links
from maild.web.access import CSP, content_disposition, cross_site, key_matches
from tests.unit.web.conftest import customer_mail

SECURITY = {
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


def link_path(ticket: Ticket) -> str:
    return f"/t/{ticket.number}/{ticket.access_key}"


def reload(ticket: Ticket) -> Ticket:
    return Ticket.get_by_id(ticket.id)


def tiny_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return pack(">I", len(data)) + body + pack(">I", zlib.crc32(body))

    header = pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def outbox_texts(template: str) -> list[str]:
    texts = []
    for row in Outbox.select().where(Outbox.template == template).order_by(Outbox.id):
        msg = message_from_bytes(bytes(row.raw), policy=default_policy)
        texts.append(msg.get_body(("plain",)).get_content())
    return texts


def assert_security_headers(reply: Any) -> None:
    for name, value in SECURITY.items():
        assert reply.headers[name] == value, name
    assert reply.headers["Cache-Control"] == "no-store"
    assert "aiohttp" not in reply.headers.get("Server", "")


# ---------------------------------------------------------------------------
# GET /t/{number}/{key}
# ---------------------------------------------------------------------------


def test_page_shows_summary_and_customer_thread(app: App, client: Any, ticket: Ticket) -> None:
    now = app.clock.now()
    with app.db.atomic():
        store.add_entry(ticket, kind="note", now=now, author="ana@example.com", text="SEGREDO")
        store.add_entry(ticket, kind="system", now=now, text="relatório de entrega interno")
        store.add_entry(
            ticket,
            kind="agent",
            now=now,
            author="ana@example.com",
            author_name="Ana",
            text="Reinicie a impressora, por favor.",
        )

    page = client.get(link_path(ticket))

    assert page.status == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert_security_headers(page)
    html = page.text
    assert f"[#{ticket.number}]" in html
    assert "Impressora não imprime" in html
    for label in ("Aberto", "Média", "Suporte", "24/11/2026 10:00"):
        assert label in html
    assert "a impressora do financeiro parou de imprimir" in html
    assert "Reinicie a impressora" in html and "Ana" in html
    assert "SEGREDO" not in html
    assert "relatório de entrega interno" not in html
    assert 'name="viewport"' in html and 'lang="pt-BR"' in html
    assert 'action="' + link_path(ticket) + '/reply"' in html
    assert 'action="' + link_path(ticket) + '/close"' in html
    assert "/rate" not in html  # no rating before the ticket is resolved


def test_agent_commands_signature_and_quotes_never_reach_the_page(
    app: App, client: Any, ticket: Ticket
) -> None:
    with app.db.atomic():
        store.add_entry(
            ticket,
            kind="agent",
            now=app.clock.now(),
            author="ana@example.com",
            text="Reinicie a impressora, por favor.",
            full_text=(
                "#priority high\n#assign me\nReinicie a impressora, por favor.\n"
                "-- \nAna, ramal interno 4411\n> Novo chamado: nota interna"
            ),
        )

    html = client.get(link_path(ticket)).text

    assert "Reinicie a impressora" in html
    for leaked in ("#priority", "#assign", "ramal interno", "nota interna"):
        assert leaked not in html


def test_page_in_english(make_app: Any, web_client_for: Any, opened: Any) -> None:
    app = make_app(daemon={"language": "en"})
    # An English desk, and a mail that does not say its language: the desk's.
    ticket = opened(app, customer_mail("Printer", "Hi, see the attached file."))
    html = web_client_for(app).get(link_path(ticket)).text
    assert 'lang="en"' in html
    for label in ("Status", "Open", "Normal", "Send reply", "Close ticket"):
        assert label in html


def test_stripped_text_shown_with_the_whole_message_behind_details(
    app: App, client: Any, ticket: Ticket, mail: Any, opened: Any
) -> None:
    body = (
        "Ainda não funciona.\n\n"
        "Em ter., 24 de nov. de 2026 às 10:00, Acme Suporte <suporte@example.com> escreveu:\n"
        "> Reinicie a impressora.\n"
    )
    raw = mail(f"RES: [#{ticket.number}] Impressora não imprime", body, message_id="<r2@ex.br>")
    from maild.pipeline import ingest

    assert ingest(app, raw).outcome == "appended"

    html = client.get(link_path(ticket)).text

    assert "Ainda não funciona." in html
    details = html[html.index("<details>") :]
    assert "&gt; Reinicie a impressora." in details
    assert html.count("<details>") == 1  # the opening message has nothing hidden


def test_mail_content_is_escaped(app: App, client: Any, mail: Any, opened: Any) -> None:
    ticket = opened(app, mail("<script>alert(1)</script>", "<img src=x onerror=alert(2)>"))

    html = client.get(link_path(ticket)).text

    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html


def test_rate_link_preselects_stars_and_changes_nothing(
    app: App, client: Any, ticket: Ticket
) -> None:
    with app.db.atomic():
        store.set_status(ticket, "resolved", "ana@example.com", app.clock.now())
        ticket.save()
    events_before = Event.select().count()

    html = client.get(link_path(ticket) + "?rate=4").text

    assert 'value="4" required checked' in html
    assert html.count(" checked") == 1
    fresh = reload(ticket)
    assert fresh.rating is None and fresh.status == "resolved"
    assert Event.select().count() == events_before
    assert 'action="' + link_path(ticket) + '/rate"' in html
    assert "/close" not in html


def test_unknown_flash_code_is_ignored(client: Any, ticket: Ticket) -> None:
    html = client.get(link_path(ticket) + "?m=<b>hi</b>").text
    assert 'class="flash' not in html and "<b>hi" not in html


# ---------------------------------------------------------------------------
# 404: wrong key, wrong number, anything else
# ---------------------------------------------------------------------------


def test_every_miss_is_the_same_404(client: Any, ticket: Ticket) -> None:
    key = ticket.access_key
    other = 100000 if ticket.number != 100000 else 100001
    misses = [
        f"/t/{ticket.number}/{key[:-1]}{'A' if key[-1] != 'A' else 'B'}",  # wrong key
        f"/t/{ticket.number}/{key[:-1]}",  # truncated key
        f"/t/{other}/{key}",  # wrong number, right key
        f"/t/abc/{key}",  # non-numeric
        f"/t/{ticket.number}0/{key}",
        f"/t/١٢٣/{key}",  # non-ASCII digits
        f"/t/{ticket.number}/ção",  # non-ASCII key
        f"/t/{ticket.number}/{key}/a/1/x.png",  # no such attachment
        "/t/1",
        "/nothing-here",
    ]
    replies = [client.get(path) for path in misses]

    first = replies[0]
    assert first.status == 404
    assert_security_headers(first)
    assert "Página não encontrada" in first.text
    assert str(ticket.number) not in first.text
    for path, reply in zip(misses, replies, strict=True):
        assert reply.status == 404, path
        assert reply.body == first.body, path
        assert sorted(k for k in reply.headers if k != "Date") == sorted(
            k for k in first.headers if k != "Date"
        ), path
        assert {k: v for k, v in reply.headers.items() if k != "Date"} == {
            k: v for k, v in first.headers.items() if k != "Date"
        }, path


@pytest.mark.parametrize("action", ["reply", "close", "rate"])
def test_post_from_a_page_whose_link_was_rotated_is_404(
    app: App, client: Any, ticket: Ticket, action: str
) -> None:
    old = link_path(ticket)
    token = client.get(old).form_token()
    with app.db.atomic():
        store.rotate_access_key(ticket, "cli", app.clock.now())
    before = (Inbound.select().count(), Event.select().count(), Outbox.select().count())

    reply = client.post(f"{old}/{action}", {"token": token, "text": "Oi", "stars": "5"})

    assert reply.status == 404
    assert reply.body == client.get("/nope").body
    after = (Inbound.select().count(), Event.select().count(), Outbox.select().count())
    assert after == before


def test_old_link_is_404_after_rotate_link(
    app: App, client: Any, ticket: Ticket, tmp_path: Path
) -> None:
    old = link_path(ticket)
    assert client.get(old).status == 200
    config = tmp_path / "settings.toml"
    config.write_text(
        f"""
[daemon]
base_url = "http://127.0.0.1:8080"
data_dir = "{app.settings.daemon.data_dir}"
[database]
url = "sqlite:///{app.db.database}"
[[departments]]
key = "suporte"
name = "Suporte"
addresses = ["suporte@example.com"]
default = true
""",
        encoding="utf-8",
    )

    number = str(ticket.number)
    done = subprocess.run(
        [sys.executable, "-m", "maild", "--config", str(config), "tickets", "rotate-link", number],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        check=False,
    )

    assert done.returncode == 0, done.stderr
    new_link = done.stdout.strip()
    fresh = reload(ticket)
    assert new_link.endswith(link_path(fresh))
    assert fresh.access_key != ticket.access_key
    missing = client.get(old)
    assert missing.status == 404
    assert missing.body == client.get("/t/1/x").body
    assert client.get(link_path(fresh)).status == 200


# ---------------------------------------------------------------------------
# attachments
# ---------------------------------------------------------------------------


def test_download_headers_and_content(app: App, client: Any, mail: Any, opened: Any) -> None:
    png = tiny_png()
    ticket = opened(app, mail(attachments=(("relatório final.png", "image/png", png),)))
    html = client.get(link_path(ticket)).text
    match = re.search(r'href="(' + re.escape(link_path(ticket)) + r'/a/[^"]+)"', html)
    assert match, html
    attachment_url = match.group(1)
    assert "relatório final.png" in html

    reply = client.get(attachment_url)

    assert reply.status == 200
    assert reply.body == png
    assert reply.headers["Content-Type"] == "image/png"
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert reply.headers["Content-Disposition"] == (
        "attachment; filename=\"relatorio final.png\"; filename*=UTF-8''relat%C3%B3rio%20final.png"
    )
    assert reply.headers["Content-Security-Policy"].endswith("; sandbox")
    assert reply.headers["Cache-Control"] == "no-store"


def test_attachments_of_notes_and_other_tickets_are_404(
    app: App, client: Any, ticket: Ticket, mail: Any, opened: Any
) -> None:
    png = tiny_png()
    digest = app.attachment_store.put(png)
    with app.db.atomic():
        note = store.add_entry(ticket, kind="note", now=app.clock.now(), text="interno")
        hidden = store.add_attachment(
            note, filename="interno.png", content_type="image/png", size=len(png), sha256=digest
        )
    other = opened(
        app,
        mail(
            "Outro assunto",
            sender="outra@example.org",
            message_id="<outro@example.org>",
            attachments=(("foto.png", "image/png", png),),
        ),
    )
    foreign = (
        ThreadEntry.select().where(ThreadEntry.ticket == other).get().attachments.get()  # type: ignore[attr-defined]
    )
    not_found = client.get("/nope").body

    for attachment_id in (hidden.id, foreign.id):
        reply = client.get(f"{link_path(ticket)}/a/{attachment_id}/x.png")
        assert reply.status == 404
        assert reply.body == not_found
    assert client.get(f"{link_path(other)}/a/{foreign.id}/foto.png").status == 200
    assert "interno.png" not in client.get(link_path(ticket)).text


def test_content_disposition_never_carries_control_or_quote_characters() -> None:
    header = content_disposition('a"b\\c\r\nd.pdf')
    assert "\r" not in header and "\n" not in header
    assert header.startswith('attachment; filename="a_b_cd.pdf"; ')
    assert content_disposition("файл.pdf").startswith('attachment; filename=".pdf"')


# ---------------------------------------------------------------------------
# POST /reply
# ---------------------------------------------------------------------------


def test_reply_goes_through_the_pipeline(app: App, client: Any, ticket: Ticket) -> None:
    with app.db.atomic():
        store.set_status(ticket, "waiting_customer", "ana@example.com", app.clock.now())
        ticket.save()
    token = client.get(link_path(ticket)).form_token()

    reply = client.post(
        link_path(ticket) + "/reply", {"token": token, "text": "Funcionou, obrigado!"}
    )

    assert reply.status == 303
    assert reply.headers["Location"] == link_path(ticket) + "?m=appended"
    entry = ThreadEntry.select().where(ThreadEntry.ticket == ticket).order_by(-ThreadEntry.id).get()
    assert (entry.kind, entry.author, entry.text) == (
        "customer",
        "cliente@example.com.br",
        "Funcionou, obrigado!",
    )
    inbound = Inbound.get_by_id(entry.inbound_id)
    assert (inbound.source, inbound.outcome) == ("web", "appended")
    raw = app.raw_store.get(inbound.raw.sha256)
    assert b"X-Maild-Source: web" in raw
    assert f"[#{ticket.number}]".encode() in raw
    assert reload(ticket).status == "open"
    assert any("Funcionou, obrigado!" in t for t in outbox_texts("agent_notification"))
    page = client.get(reply.headers["Location"]).text
    assert "Sua resposta foi adicionada ao chamado." in page
    assert "Funcionou, obrigado!" in page


def test_reply_on_resolved_ticket_with_reject_policy(app: App, client: Any, ticket: Ticket) -> None:
    with app.db.atomic():
        store.set_status(ticket, "resolved", "ana@example.com", app.clock.now())
        ticket.save()
    page = client.get(link_path(ticket))
    assert "/reply" not in page.text
    assert 'href="mailto:suporte@example.com"' in page.text
    entries = ThreadEntry.select().count()

    reply = client.post(link_path(ticket) + "/reply", {"token": page.form_token(), "text": "Oi"})

    assert reply.headers["Location"] == link_path(ticket) + "?m=followup_rejected"
    assert ThreadEntry.select().count() == entries
    flash = client.get(reply.headers["Location"]).text
    assert "abra um novo chamado escrevendo para suporte@example.com" in flash


def test_reply_on_resolved_ticket_with_reopen_policy(
    app: App, client: Any, mail: Any, opened: Any
) -> None:
    ticket = opened(app, mail(to="comercial@example.com"))
    with app.db.atomic():
        store.set_status(ticket, "resolved", "ana@example.com", app.clock.now())
        ticket.save()
    page = client.get(link_path(ticket))
    assert "ele será reaberto" in page.text

    reply = client.post(
        link_path(ticket) + "/reply", {"token": page.form_token(), "text": "Voltou a falhar."}
    )

    assert reply.headers["Location"] == link_path(ticket) + "?m=reopened"
    assert reload(ticket).status == "open"


def test_reply_on_resolved_ticket_with_new_ticket_policy(
    app: App, client: Any, mail: Any, opened: Any
) -> None:
    ticket = opened(app, mail("Boleto", to="financeiro@example.com"))
    with app.db.atomic():
        store.set_status(ticket, "resolved", "bruno@example.com", app.clock.now())
        ticket.save()
    token = client.get(link_path(ticket)).form_token()

    reply = client.post(link_path(ticket) + "/reply", {"token": token, "text": "Outro boleto"})

    new = Ticket.select().where(Ticket.id != ticket.id).get()
    assert reply.headers["Location"] == link_path(new) + "?m=created"
    assert new.requester == ticket.requester
    assert "Sua mensagem abriu este novo chamado" in client.get(reply.headers["Location"]).text


@pytest.mark.parametrize(
    ("text", "code"), [("   \n ", "reply_empty"), ("x" * 20_001, "reply_too_long")]
)
def test_reply_refused_by_the_form_never_reaches_the_pipeline(
    client: Any, ticket: Ticket, text: str, code: str
) -> None:
    inbound = Inbound.select().count()
    token = client.get(link_path(ticket)).form_token()

    reply = client.post(link_path(ticket) + "/reply", {"token": token, "text": text})

    assert reply.headers["Location"] == f"{link_path(ticket)}?m={code}"
    assert Inbound.select().count() == inbound
    assert 'class="flash flash-error"' in client.get(reply.headers["Location"]).text


# ---------------------------------------------------------------------------
# form tokens and cross-site posts
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["reply", "close", "rate"])
def test_posts_without_the_page_token_are_refused(
    app: App, client: Any, ticket: Ticket, mail: Any, opened: Any, action: str
) -> None:
    other = opened(app, mail("Outro", sender="b@example.org", message_id="<b@example.org>"))
    other_token = client.get(link_path(other)).form_token()
    good = client.get(link_path(ticket)).form_token()
    form = {"text": "Oi", "stars": "5"}
    before = (Inbound.select().count(), Event.select().count(), Outbox.select().count())
    url = f"{link_path(ticket)}/{action}"

    refused = [
        client.post(url, form),
        client.post(url, form | {"token": ""}),
        client.post(url, form | {"token": "0" * 64}),
        client.post(url, form | {"token": other_token}),
        client.post(url, form | {"token": good}, headers={"Sec-Fetch-Site": "cross-site"}),
        client.post(url, form | {"token": good}, headers={"Origin": "https://evil.example"}),
    ]

    for reply in refused:
        assert reply.status == 403
        assert_security_headers(reply)
        assert "formulário" in reply.text
    after = (Inbound.select().count(), Event.select().count(), Outbox.select().count())
    assert after == before
    assert reload(ticket).status == "open"


def test_same_origin_posts_with_origin_null_are_accepted(client: Any, ticket: Ticket) -> None:
    # With Referrer-Policy: no-referrer, browsers send "Origin: null" on their own form posts.
    token = client.get(link_path(ticket)).form_token()
    headers = {"Origin": "null", "Sec-Fetch-Site": "same-origin"}
    reply = client.post(link_path(ticket) + "/close", {"token": token}, headers=headers)
    assert reply.status == 303


def test_cross_site_rules() -> None:
    base = "https://suporte.example.com"
    assert not cross_site({}, "127.0.0.1:8080", base)
    assert not cross_site({"Origin": "https://suporte.example.com"}, "127.0.0.1:8080", base)
    assert not cross_site({"Origin": "http://127.0.0.1:8080"}, "127.0.0.1:8080", base)
    assert cross_site({"Sec-Fetch-Site": "same-site"}, "127.0.0.1:8080", base)
    assert cross_site({"Origin": "https://evil.example"}, "127.0.0.1:8080", base)


def test_key_comparison() -> None:
    assert key_matches("abc", "abc")
    assert not key_matches("abd", "abc")
    assert not key_matches("abc", None)
    assert not key_matches("ção", "abc")


# ---------------------------------------------------------------------------
# POST /close
# ---------------------------------------------------------------------------


def test_customer_closes_the_ticket(app: App, client: Any, ticket: Ticket) -> None:
    token = client.get(link_path(ticket)).form_token()

    reply = client.post(link_path(ticket) + "/close", {"token": token})

    assert reply.status == 303
    assert reply.headers["Location"] == link_path(ticket) + "?m=closed"
    fresh = reload(ticket)
    assert fresh.status == "resolved" and fresh.resolved_at is not None
    events = {
        (e.kind, e.actor)
        for e in Event.select().where(Event.ticket == ticket)
        if e.kind in ("status_changed", "closed_by_customer")
    }
    assert events == {
        ("status_changed", "cliente@example.com.br"),
        ("closed_by_customer", "cliente@example.com.br"),
    }
    notices = [
        row
        for row in Outbox.select().where(Outbox.template == "agent_notification")
        if row.idem_key.startswith("web-closed:")
    ]
    assert [row.recipients for row in notices] == [["ana@example.com"]]
    assert "O cliente encerrou o chamado" in outbox_texts("agent_notification")[-1]
    resolved = Outbox.get(Outbox.template == "resolved")
    assert resolved.recipients == ["cliente@example.com.br"]
    assert f"{link_path(ticket)}?rate=4" in outbox_texts("resolved")[0]
    page = client.get(reply.headers["Location"]).text
    assert "Chamado encerrado" in page
    assert "/close" not in page and "/rate" in page and "/reply" not in page

    again = client.post(link_path(ticket) + "/close", {"token": token})
    assert again.headers["Location"] == link_path(ticket) + "?m=already_closed"
    assert len([r for r in Outbox.select() if r.idem_key.startswith("web-closed:")]) == 1
    assert Outbox.select().where(Outbox.template == "resolved").count() == 1


# ---------------------------------------------------------------------------
# POST /rate
# ---------------------------------------------------------------------------


def test_rating_a_resolved_ticket(app: App, client: Any, ticket: Ticket) -> None:
    token = client.get(link_path(ticket)).form_token()
    client.post(link_path(ticket) + "/close", {"token": token})

    reply = client.post(
        link_path(ticket) + "/rate",
        {"token": token, "stars": "4", "comment": "  Rápido <b>e</b> gentil  "},
    )

    assert reply.headers["Location"] == link_path(ticket) + "?m=rated"
    fresh = reload(ticket)
    assert (fresh.rating, fresh.rating_comment) == (4, "Rápido <b>e</b> gentil")
    rated = Event.get((Event.ticket == ticket) & (Event.kind == "rated"))
    assert rated.actor == "cliente@example.com.br"
    assert rated.data == {"rating": 4, "comment": "Rápido <b>e</b> gentil", "via": "web"}
    text = outbox_texts("agent_notification")[-1]
    assert "avaliou o atendimento: 4 de 5" in text and "Rápido <b>e</b> gentil" in text
    page = client.get(reply.headers["Location"]).text
    assert "Obrigado pela sua avaliação!" in page
    assert "Sua avaliação: 4 de 5 estrelas" in page
    assert 'value="4" required checked' in page
    assert "Rápido &lt;b&gt;e&lt;/b&gt; gentil" in page


@pytest.mark.parametrize(
    ("status", "stars", "code"),
    [
        ("open", "5", "rate_not_allowed"),
        ("resolved", "6", "rate_invalid"),
        ("closed", "", "rate_invalid"),
    ],
)
def test_rating_refused(
    app: App, client: Any, ticket: Ticket, status: str, stars: str, code: str
) -> None:
    with app.db.atomic():
        store.set_status(ticket, status, "ana@example.com", app.clock.now())
        ticket.save()
    token = client.get(link_path(ticket)).form_token()

    reply = client.post(link_path(ticket) + "/rate", {"token": token, "stars": stars})

    assert reply.headers["Location"] == f"{link_path(ticket)}?m={code}"
    assert reload(ticket).rating is None
    assert not Event.select().where(Event.kind == "rated").exists()


def test_rating_links_for_the_resolved_mail(ticket: Ticket) -> None:
    links = rating_links("https://suporte.example.com/", ticket)
    assert links == [
        {
            "stars": n,
            "url": f"https://suporte.example.com/t/{ticket.number}/{ticket.access_key}?rate={n}",
        }
        for n in range(1, 6)
    ]


# ---------------------------------------------------------------------------
# /healthz, the stylesheet, start_web
# ---------------------------------------------------------------------------


def test_healthz_ok(client: Any) -> None:
    reply = client.get("/healthz")
    assert reply.status == 200
    assert json.loads(reply.body) == {"status": "ok", "database": "ok", "sources": {}}
    assert reply.headers["Cache-Control"] == "no-store"


def test_healthz_shows_each_source_and_degrades_on_a_failing_one(app: App, client: Any) -> None:
    app.metrics.set_source_state("suporte", "connected")
    app.metrics.set_source_state("vendas", "needs_authorization", "invalid_grant")

    reply = client.get("/healthz")

    assert reply.status == 200  # a restart would not cure it: say so, stay up
    assert json.loads(reply.body) == {
        "status": "degraded",
        "database": "ok",
        "sources": {
            "suporte": {"state": "connected"},
            "vendas": {"state": "needs_authorization", "detail": "invalid_grant"},
        },
    }


def test_metrics_exposes_outcomes_outbox_and_sources(app: App, client: Any, ticket: Ticket) -> None:
    app.metrics.set_source_state("suporte", "connected")

    reply = client.get("/metrics")

    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = reply.body.decode()
    assert 'maild_messages_total{outcome="created",source="ingest"} 1.0' in text
    assert 'maild_outbox_messages{status="pending"} 2.0' in text
    assert 'maild_imap_source_state{source="suporte",state="connected"} 1.0' in text
    assert 'maild_imap_source_state{source="suporte",state="failing"} 0.0' in text
    assert "maild_message_processing_seconds_bucket" in text
    assert "maild_sla_breaches_total 0.0" in text
    assert 'maild_quarantine_messages{state="quarantined"} 0.0' in text


def test_healthz_503_when_the_database_is_unreachable(
    app: App, web_client_for: Any, tmp_path: Path
) -> None:
    broken = peewee.SqliteDatabase(str(tmp_path / "missing" / "dir" / "db.sqlite3"))
    sick = App(settings=app.settings, db=broken, clock=app.clock)

    reply = web_client_for(sick).get("/healthz")

    assert reply.status == 503
    body = json.loads(reply.body)
    assert (reply.status, body["status"], body["database"]) == (
        503,
        "unavailable",
        "OperationalError",
    )
    assert (body["reason"], body["target"]) == ("database_unavailable", "database")
    assert "OperationalError" in body["error"]


def test_healthz_503_with_the_reason_while_storing_meets_a_resource_fault(
    app: App, client: Any
) -> None:
    from maild.faults import DISK_FULL, ResourceFault

    fault = ResourceFault(DISK_FULL, "/var/lib/maild/raw", "No space left on device")
    app.metrics.storage.record(fault, app.clock.now())

    reply = client.get("/healthz")

    assert reply.status == 503
    assert json.loads(reply.body) == {
        "status": "unavailable",
        "database": "ok",
        "sources": {},
        "reason": "disk_full",
        "target": "/var/lib/maild/raw",
        "error": "No space left on device",
        "since": app.clock.now().isoformat(),
    }
    assert 'maild_storage_fault{reason="disk_full"} 1.0' in client.get("/metrics").body.decode()
    app.metrics.storage.clear()  # the next message got through
    assert client.get("/healthz").status == 200
    assert 'maild_storage_fault{reason=""} 0.0' in client.get("/metrics").body.decode()


def test_stylesheet_is_served_with_the_same_headers(client: Any) -> None:
    reply = client.get("/static/maild.css")
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "text/css; charset=utf-8"
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert reply.headers["Content-Security-Policy"] == CSP
    assert b"max-width" in reply.body


def test_start_web_binds_the_configured_port(make_app: Any) -> None:
    import asyncio

    import aiohttp

    from maild.web import start_web

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = make_app(web={"enabled": True, "host": "127.0.0.1", "port": port})

    async def scenario() -> tuple[int, Any]:
        runner = await start_web(app)
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{port}/healthz") as resp,
            ):
                return resp.status, await resp.json()
        finally:
            await runner.cleanup()

    assert asyncio.run(scenario()) == (200, {"status": "ok", "database": "ok", "sources": {}})


def test_reply_close_and_rate_on_both_databases(
    app_any_db: App, web_client_for: Any, opened: Any
) -> None:
    ticket = opened(app_any_db)
    client = web_client_for(app_any_db)
    token = client.get(link_path(ticket)).form_token()

    steps = [
        client.post(link_path(ticket) + "/reply", {"token": token, "text": "Mais detalhes."}),
        client.post(link_path(ticket) + "/close", {"token": token}),
        client.post(link_path(ticket) + "/rate", {"token": token, "stars": "5"}),
    ]

    codes = [reply.headers["Location"].rsplit("=", 1)[1] for reply in steps]
    assert codes == ["appended", "closed", "rated"]
    fresh = reload(ticket)
    assert (fresh.status, fresh.rating) == ("resolved", 5)
    assert json.loads(client.get("/healthz").body)["status"] == "ok"


def test_no_web_reply_when_the_requester_is_an_agent(
    app: App, client: Any, mail: Any, opened: Any
) -> None:
    ticket = opened(app, mail("Pedido interno", sender="Ana <ana@example.com>"))
    assert ticket.requester == "ana@example.com"
    page = client.get(link_path(ticket))
    assert "/reply" not in page.text and "responda pelo e-mail" in page.text
    inbound = Inbound.select().count()

    reply = client.post(
        link_path(ticket) + "/reply", {"token": page.form_token(), "text": "#status closed"}
    )

    assert reply.headers["Location"] == link_path(ticket) + "?m=unauthorized"
    assert Inbound.select().count() == inbound
    assert reload(ticket).status == "open"


def test_web_actions_wake_the_outbox_sender(app: App, client: Any, ticket: Ticket) -> None:
    woken: list[bool] = []
    app.outbox_listeners.append(lambda: woken.append(True))
    token = client.get(link_path(ticket)).form_token()

    client.post(link_path(ticket) + "/reply", {"token": token, "text": "Ainda não."})

    assert woken  # the reply's notification goes out now, not at the next poll
