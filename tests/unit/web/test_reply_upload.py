"""Files sent with the web reply form: the same attachment policy as mail (SPEC §3),
refused files listed on the page, and a clear page when the upload is too large."""

from __future__ import annotations

from typing import Any

from aiohttp import FormData
from maild.storage.models import Attachment, Inbound, RefusedAttachment, ThreadEntry, Ticket

from maild.app import App

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n"
EXE = b"MZ\x90\x00" + b"\x00" * 60


def link(ticket: Ticket) -> str:
    return f"/t/{ticket.number}/{ticket.access_key}"


def form(token: str, text: str, *files: tuple[str, bytes]) -> FormData:
    data = FormData()
    data.add_field("token", token)
    data.add_field("text", text)
    for name, payload in files:
        data.add_field("files", payload, filename=name, content_type="application/octet-stream")
    return data


def test_reply_with_a_pdf_and_a_refused_file(app: App, client: Any, ticket: Ticket) -> None:
    page = client.get(link(ticket))
    assert 'enctype="multipart/form-data"' in page.text
    assert 'accept=".jpg,.jpeg,.gif,.png,.pdf"' in page.text
    reply = client.post(
        f"{link(ticket)}/reply",
        data=form(
            page.form_token(),
            "Segue a nota.",
            ("nota-fiscal.pdf", PDF),
            ("fatura.pdf.exe", EXE),
            ("foto.png", PDF),  # a PDF named .png: refused by its magic bytes
        ),
    )
    assert reply.status == 303, reply.text
    assert reply.headers["Location"].endswith("?m=files_refused")
    entry = ThreadEntry.select().order_by(ThreadEntry.id.desc()).first()
    assert entry.text == "Segue a nota."
    (saved,) = Attachment.select().where(Attachment.entry == entry)
    assert saved.filename == "nota-fiscal.pdf" and app.attachment_store.get(saved.sha256) == PDF
    refused = {
        r.filename for r in RefusedAttachment.select().where(RefusedAttachment.entry == entry)
    }
    assert refused == {"fatura.pdf.exe", "foto.png"}
    assert Inbound.select().order_by(Inbound.id.desc()).first().source == "web"

    html = client.get(reply.headers["Location"]).text
    assert "alguns arquivos foram recusados" in html
    assert "nota-fiscal.pdf" in html and "Anexos recusados" in html
    assert "fatura.pdf.exe" in html and "foto.png" in html
    download = client.get(f"{link(ticket)}/a/{saved.id}/nota-fiscal.pdf")
    assert download.status == 200 and download.body == PDF
    assert download.headers["Content-Disposition"].startswith("attachment")


def test_a_reply_of_files_only(app: App, client: Any, ticket: Ticket) -> None:
    token = client.get(link(ticket)).form_token()
    reply = client.post(f"{link(ticket)}/reply", data=form(token, "", ("nota.pdf", PDF)))
    assert reply.headers["Location"].endswith("?m=appended")
    assert Attachment.select().count() == 1


def test_only_refused_files_and_no_text(app: App, client: Any, ticket: Ticket) -> None:
    token = client.get(link(ticket)).form_token()
    entries = ThreadEntry.select().count()
    reply = client.post(f"{link(ticket)}/reply", data=form(token, "", ("virus.exe", EXE)))
    assert reply.headers["Location"].endswith("?m=files_refused_empty")
    html = client.get(reply.headers["Location"]).text
    assert "nada foi adicionado" in html and "jpg, jpeg, gif, png, pdf" in html
    assert ThreadEntry.select().count() == entries


def test_too_large_an_upload_gets_a_clear_page(
    make_app: Any, web_client_for: Any, opened: Any
) -> None:
    app = make_app(attachments={"max_message_bytes": 1024 * 1024, "max_bytes": 1024 * 1024})
    ticket = opened(app)
    client = web_client_for(app)
    token = client.get(link(ticket)).form_token()
    before = ThreadEntry.select().count()

    reply = client.post(
        f"{link(ticket)}/reply", data=form(token, "Grande", ("grande.pdf", PDF + b"0" * 900_000))
    )

    assert reply.status == 413
    assert reply.headers["Content-Type"].startswith("text/html")
    assert "Arquivos grandes demais" in reply.text and f'href="{link(ticket)}"' in reply.text
    assert "Content-Security-Policy" in reply.headers
    assert ThreadEntry.select().count() == before
    # With a wrong key, the very same 404 as always: nothing about the ticket.
    wrong = client.post(
        f"/t/{ticket.number}/{'x' * 32}/reply", data=form(token, "", ("g.pdf", b"0" * 900_000))
    )
    assert wrong.status == 404


def test_close_and_rate_forms_take_no_large_bodies(app: App, client: Any, ticket: Ticket) -> None:
    token = client.get(link(ticket)).form_token()
    reply = client.post(
        f"{link(ticket)}/close", data={"token": token, "padding": "x" * (300 * 1024)}
    )
    assert reply.status == 413
    assert Ticket.get_by_id(ticket.id).status == "open"
