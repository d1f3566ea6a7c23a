"""End-to-end test of the quick-access web view in headless Chromium.

Sole purpose: a customer who clicks the link in a real confirmation sees the
ticket, replies, closes and rates it, in Debian's ``chromium`` driven by
Playwright (never ``playwright install``). The web app runs with ``start_web``
on a free 127.0.0.1 port in a thread with its own event loop, as in the daemon.
Screenshots go to ``test-artifacts/web-*.png``. Under ``CI=true`` a missing
Chromium fails the run; elsewhere the test is skipped.
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
from collections.abc import Iterator
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import SMTP
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from maild.storage.models import Event, Outbox, ThreadEntry, Ticket

from maild.app import App
from maild.pipeline import ingest
from maild.web import start_web
from tests.conftest import IN_CI

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
LINK_RE = re.compile(r"http://127\.0\.0\.1:\d+/t/\d+/[A-Za-z0-9_-]+")
STEP_TIMEOUT_MS = 10_000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class WebThread:
    """``start_web`` in a thread of its own, stopped with ``runner.cleanup()``."""

    def __init__(self, app: App) -> None:
        self._app = app
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="web", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            runner = self._loop.run_until_complete(start_web(self._app))
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.run_until_complete(runner.cleanup())
            self._loop.close()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} not installed (Debian package chromium)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


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


def customer_mail() -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = "Cliente Exemplo <cliente@example.com.br>"
    msg["To"] = "suporte@example.com"
    msg["Subject"] = "Impressora não imprime <b>urgente</b>"
    msg["Date"] = "Tue, 24 Nov 2026 09:55:00 -0300"
    msg["Message-ID"] = "<browser-1@example.com.br>"
    msg.set_content(
        "Olá,\n\nA impressora do financeiro parou de imprimir desde ontem.\n"
        "Já desliguei e liguei de novo.\n\nObrigado,\nCliente\n"
    )
    return msg.as_bytes()


def confirmation_link(ticket: Ticket) -> str:
    """The quick-access link as the customer reads it in the confirmation's text part."""
    row = Outbox.get((Outbox.ticket == ticket) & (Outbox.template == "confirmation"))
    msg = message_from_bytes(bytes(row.raw), policy=default_policy)
    text = msg.get_body(("plain",)).get_content()
    match = LINK_RE.search(text)
    assert match, text
    return match.group(0)


def test_customer_follows_the_confirmation_link_replies_closes_and_rates(
    served_app: App, chromium_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    app = served_app
    result = ingest(app, customer_mail())
    assert result.outcome == "created"
    ticket = Ticket.get(Ticket.number == result.ticket)
    link = confirmation_link(ticket)
    ARTIFACTS.mkdir(exist_ok=True)
    problems: list[str] = []

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1024, "height": 900})
            page.set_default_timeout(STEP_TIMEOUT_MS)
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: problems.append(str(exc)))

            page.goto(link)
            heading = page.get_by_role("heading", level=1)
            expect(heading).to_contain_text("Impressora não imprime <b>urgente</b>")
            expect(heading).to_contain_text(f"[#{ticket.number}]")
            expect(page.locator("dl.summary")).to_contain_text("Aberto")
            expect(page.locator("article.entry")).to_contain_text("parou de imprimir")

            page.get_by_label("Sua mensagem").fill("Troquei o cabo e continua sem imprimir.")
            page.get_by_role("button", name="Enviar resposta").click()
            page.wait_for_url(re.compile(r"\?m=appended$"))
            expect(page.get_by_role("status")).to_have_text(
                "Sua resposta foi adicionada ao chamado."
            )
            expect(page.locator("article.entry")).to_have_count(2)
            expect(page.locator("article.entry").nth(1)).to_contain_text("Troquei o cabo")
            page.screenshot(path=str(ARTIFACTS / "web-ticket-open.png"), full_page=True)

            page.get_by_role("button", name="Encerrar chamado").click()
            page.wait_for_url(re.compile(r"\?m=closed$"))
            expect(page.locator("dl.summary")).to_contain_text("Resolvido")
            expect(page.get_by_role("button", name="Encerrar chamado")).to_have_count(0)

            page.get_by_label("4 de 5").check()
            page.get_by_label("Comentário (opcional)").fill("Atendimento rápido.")
            page.get_by_role("button", name="Enviar avaliação").click()
            page.wait_for_url(re.compile(r"\?m=rated$"))
            expect(page.get_by_role("status")).to_have_text("Obrigado pela sua avaliação!")
            expect(page.get_by_label("4 de 5")).to_be_checked()
            page.screenshot(path=str(ARTIFACTS / "web-ticket-rated.png"), full_page=True)

            phone = browser.new_page(viewport={"width": 390, "height": 844})
            phone.goto(link + "?rate=5")
            expect(phone.get_by_label("5 de 5")).to_be_checked()
            width = phone.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"page scrolls sideways on a phone ({width}px)"
            phone.screenshot(path=str(ARTIFACTS / "web-ticket-phone.png"), full_page=True)

            tampered = browser.new_page()
            response = tampered.goto(link[:-2] + ("xx" if not link.endswith("xx") else "yy"))
            assert response is not None and response.status == 404
            expect(tampered.get_by_role("heading", level=1)).to_have_text("Página não encontrada")
        finally:
            browser.close()

    assert problems == []  # no CSP violations, no script errors
    fresh = Ticket.get_by_id(ticket.id)
    assert (fresh.status, fresh.rating, fresh.rating_comment) == (
        "resolved",
        4,
        "Atendimento rápido.",
    )
    replies = ThreadEntry.select().where(
        (ThreadEntry.ticket == ticket) & (ThreadEntry.kind == "customer")
    )
    assert [e.text for e in replies.order_by(ThreadEntry.id)][-1] == (
        "Troquei o cabo e continua sem imprimir."
    )
    kinds = [e.kind for e in Event.select().where(Event.ticket == ticket)]
    assert "closed_by_customer" in kinds and "rated" in kinds
    assert list((ARTIFACTS).glob("web-ticket-*.png"))
