"""Fixtures for the web view's handler tests: a ticket opened by real mail, and a client.

The client is aiohttp's ``TestServer``/``TestClient`` driven from a synchronous
test through one ``asyncio.Runner``, so tests read top to bottom and the
pipeline, the database and the handlers are the real ones.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from maild.storage.models import Ticket
from multidict import CIMultiDictProxy

from maild.app import App
from maild.pipeline import ingest
from maild.web.app import create_web_app

TOKEN_RE = re.compile(r'name="token" value="([0-9a-f]+)"')


def customer_mail(
    subject: str = "Impressora não imprime",
    body: str = "Olá, a impressora do financeiro parou de imprimir.",
    *,
    sender: str = "Cliente Exemplo <cliente@example.com.br>",
    to: str = "suporte@example.com",
    message_id: str = "<abertura-1@example.com.br>",
    attachments: tuple[tuple[str, str, bytes], ...] = (),
) -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = "Tue, 24 Nov 2026 09:55:00 -0300"
    msg["Message-ID"] = message_id
    msg.set_content(body)
    for filename, content_type, payload in attachments:
        maintype, subtype = content_type.split("/")
        msg.add_attachment(payload, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes()


def open_ticket(app: App, raw: bytes | None = None) -> Ticket:
    """A ticket created by the real pipeline from a customer mail."""
    result = ingest(app, raw or customer_mail())
    assert result.outcome == "created", result
    return Ticket.get(Ticket.number == result.ticket)


@pytest.fixture
def mail() -> Any:
    """``mail(subject=..., body=..., ...)`` -> raw bytes of a customer mail."""
    return customer_mail


@pytest.fixture
def opened() -> Any:
    """``opened(app, raw=None)`` -> a ticket created through the pipeline."""
    return open_ticket


@pytest.fixture
def ticket(app: App) -> Ticket:
    return open_ticket(app)


@dataclass(frozen=True)
class Reply:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def form_token(self) -> str:
        match = TOKEN_RE.search(self.text)
        assert match, "page has no form token"
        return match.group(1)


class WebClient:
    """Synchronous facade over aiohttp's TestClient; redirects are not followed."""

    def __init__(self, runner: asyncio.Runner, client: TestClient[Any, Any]) -> None:
        self._runner = runner
        self._client = client

    async def _request(self, method: str, path: str, **kwargs: Any) -> Reply:
        async with self._client.request(method, path, allow_redirects=False, **kwargs) as resp:
            return Reply(resp.status, resp.headers, await resp.read())

    def get(self, path: str, **kwargs: Any) -> Reply:
        return self._runner.run(self._request("GET", path, **kwargs))

    def post(self, path: str, data: dict[str, str] | None = None, **kwargs: Any) -> Reply:
        return self._runner.run(self._request("POST", path, data=data or {}, **kwargs))


@pytest.fixture
def web_client_for() -> Iterator[Any]:
    """Factory: a client for the web app of a given App."""
    runner = asyncio.Runner()
    clients: list[TestClient[Any, Any]] = []

    def make(app: App) -> WebClient:
        async def start() -> TestClient[Any, Any]:
            client = TestClient(TestServer(create_web_app(app)))
            await client.start_server()
            return client

        client = runner.run(start())
        clients.append(client)
        return WebClient(runner, client)

    try:
        yield make
    finally:
        for client in clients:
            runner.run(client.close())
        runner.close()


@pytest.fixture
def client(app: App, web_client_for: Any) -> WebClient:
    return web_client_for(app)
