"""The customer's ticket list and the reply with a file, in headless Chromium (issue 12).

Sole purpose: a customer with five tickets over three months follows the list link
of a real confirmation, finds their tickets under the right tabs and months, opens
one and replies with a PDF; the list is checked on a phone, at 200% zoom, with the
keyboard and in English. Screenshots go to ``test-artifacts/web-list-*.png``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import SMTP
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from maild.storage.models import Attachment, Outbox, ThreadEntry, Ticket

from maild.app import App
from maild.pipeline import ingest
from tests.integration.test_web_browser import (
    ARTIFACTS,
    CHROMIUM_ARGS,
    STEP_TIMEOUT_MS,
    WebThread,
    chromium_path,
    free_port,
)

pytestmark = pytest.mark.browser
__all__ = ["chromium_path"]  # the fixture, shared with the ticket-page test

LIST_RE = re.compile(r"http://127\.0\.0\.1:\d+/c/[A-Za-z0-9_-]+")
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n"
CUSTOMER = "cliente@example.com.br"


@pytest.fixture
def served_app(make_app: Any) -> Iterator[App]:
    port = free_port()
    app = make_app(
        daemon={"base_url": f"http://127.0.0.1:{port}"},
        web={"enabled": True, "host": "127.0.0.1", "port": port},
    )
    server = WebThread(app)
    server.start()
    try:
        yield app
    finally:
        server.stop()


def customer_mail(n: int, subject: str, body: str, language: str = "") -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = f"Cliente Exemplo <{CUSTOMER}>"
    msg["To"] = "suporte@example.com"
    msg["Subject"] = subject
    msg["Date"] = "Tue, 24 Nov 2026 09:55:00 -0300"
    msg["Message-ID"] = f"<lista-{n}@example.com.br>"
    msg.set_content(body)
    raw = msg.as_bytes()
    return f"Content-Language: {language}\r\n".encode() + raw if language else raw


def five_tickets(app: App) -> list[Ticket]:
    when = [(9, 10), (10, 2), (10, 20), (11, 3), (11, 20)]
    subjects = ["Impressora", "Nota fiscal", "Boleto", "Acesso ao sistema", "Certificado"]
    tickets = []
    for n, ((month, day), subject) in enumerate(zip(when, subjects, strict=True)):
        app.clock.set(datetime(2026, month, day, 13, 0, tzinfo=UTC))  # type: ignore[attr-defined]
        result = ingest(app, customer_mail(n, subject, "Bom dia, preciso de ajuda com isso."))
        assert result.outcome == "created", result
        tickets.append(Ticket.get(Ticket.number == result.ticket))
    for ticket, status in zip(
        tickets,
        ["resolved", "waiting_customer", "in_progress", "open", "waiting_customer"],
        strict=True,
    ):
        Ticket.update(status=status).where(Ticket.id == ticket.id).execute()
    app.clock.set(datetime(2026, 11, 24, 13, 0, tzinfo=UTC))  # type: ignore[attr-defined]
    return tickets


def list_link_in(row: Outbox) -> str:
    text = message_from_bytes(bytes(row.raw), policy=default_policy).get_body(("plain",))
    match = LIST_RE.search(text.get_content())
    assert match, text.get_content()
    return match.group(0)


def no_sideways_scroll(page: Any, width: int) -> None:
    scroll = page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"page scrolls sideways ({scroll}px > {width}px)"


def test_five_tickets_three_months_then_a_reply_with_a_pdf(
    served_app: App, chromium_path: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    app = served_app
    tickets = five_tickets(app)
    link = list_link_in(Outbox.select().where(Outbox.template == "confirmation").get())
    pdf = tmp_path / "comprovante.pdf"
    pdf.write_bytes(PDF)
    ARTIFACTS.mkdir(exist_ok=True)
    problems: list[str] = []

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(STEP_TIMEOUT_MS)
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: problems.append(str(exc)))

            page.goto(link)
            expect(page.get_by_role("heading", level=1)).to_have_text("Meus chamados")
            rows = page.locator("table.tickets tbody tr")
            expect(rows).to_have_count(5)
            expect(page.get_by_role("link", name="Pendentes (2)")).to_be_visible()
            expect(page.get_by_role("columnheader", name="Última atividade")).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "web-list-all.png"), full_page=True)

            # Keyboard: focus the "Respondidos" tab and follow it with Enter.
            page.get_by_role("link", name="Respondidos (2)").focus()
            page.keyboard.press("Enter")
            page.wait_for_url(re.compile(r"tab=answered"))
            expect(rows).to_have_count(2)
            expect(page.locator('[aria-current="page"]')).to_contain_text("Respondidos")

            page.get_by_label("Mês de abertura").select_option("2026-10")
            page.get_by_role("button", name="Filtrar").click()
            page.wait_for_url(re.compile(r"month=2026-10"))
            expect(rows).to_have_count(1)
            expect(rows.first).to_contain_text("Nota fiscal")
            expect(page.get_by_role("link", name="Todos (2)")).to_be_visible()

            page.get_by_role("link", name=f"[#{tickets[1].number}]").click()
            expect(page.get_by_role("heading", level=1)).to_contain_text("Nota fiscal")
            page.get_by_label("Sua mensagem").fill("Segue o comprovante.")
            page.get_by_label("Anexos (opcional)").set_input_files(str(pdf))
            page.get_by_role("button", name="Enviar resposta").click()
            page.wait_for_url(re.compile(r"\?m=appended$"))
            expect(page.get_by_role("link", name="comprovante.pdf")).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "web-list-reply-pdf.png"), full_page=True)
            expect(page.locator("dl.summary")).to_contain_text("Primeira resposta até")
            rows_of_summary = page.evaluate(
                "new Set([...document.querySelectorAll('dl.summary > div')]"
                ".map(d => Math.round(d.getBoundingClientRect().top))).size"
            )
            assert rows_of_summary == 1, "status and dates wrap at 1280 px"

            phone = browser.new_page(viewport={"width": 390, "height": 844})
            phone.goto(link)
            expect(phone.locator("table.tickets tbody tr")).to_have_count(5)
            no_sideways_scroll(phone, 390)
            phone.screenshot(path=str(ARTIFACTS / "web-list-phone.png"), full_page=True)

            # 200% zoom of a 1280 px window: 640 CSS pixels, device scale 2.
            zoomed = browser.new_page(viewport={"width": 640, "height": 450}, device_scale_factor=2)
            zoomed.goto(link)
            no_sideways_scroll(zoomed, 640)
            zoomed.screenshot(path=str(ARTIFACTS / "web-list-zoom200.png"), full_page=True)

            gone = browser.new_page()
            response = gone.goto(link[:-2] + ("xx" if not link.endswith("xx") else "yy"))
            assert response is not None and response.status == 404
        finally:
            browser.close()

    assert problems == []
    entry = (
        ThreadEntry.select()
        .where(ThreadEntry.ticket == tickets[1])
        .order_by(ThreadEntry.id.desc())
        .first()
    )
    assert entry.text == "Segue o comprovante."
    (saved,) = Attachment.select().where(Attachment.entry == entry)
    assert saved.filename == "comprovante.pdf" and saved.size == len(PDF)


def test_english_customer_sees_the_list_in_english_on_a_phone(
    served_app: App, chromium_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    app = served_app
    result = ingest(app, customer_mail(9, "Printer", "It does not print.", language="en-US"))
    link = list_link_in(Outbox.select().where(Outbox.template == "confirmation").get())
    assert Ticket.get(Ticket.number == result.ticket).language == "en"

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        try:
            phone = browser.new_page(viewport={"width": 390, "height": 844})
            phone.set_default_timeout(STEP_TIMEOUT_MS)
            phone.goto(link)
            expect(phone.get_by_role("heading", level=1)).to_have_text("My tickets")
            expect(phone.get_by_role("link", name="Pending (1)")).to_be_visible()
            no_sideways_scroll(phone, 390)
            phone.screenshot(path=str(ARTIFACTS / "web-list-en-phone.png"), full_page=True)
            phone.get_by_role("link", name=f"[#{result.ticket}]").click()
            expect(phone.get_by_role("button", name="Send reply")).to_be_visible()
            expect(phone.get_by_label("Attachments (optional)")).to_be_visible()
        finally:
            browser.close()
