"""Tests for parsers.attachments: filename sanitizing, magic-byte sniffing, the policy check."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable

import pytest
from maild.parsers.attachments import check_attachment, sanitize_filename, sniff_type
from maild.parsers.message import parse_message

FixtureBytes = Callable[[str], bytes]
ALLOWED = ("jpg", "jpeg", "gif", "png", "pdf")
LIMIT = 10 * 1024 * 1024


def _png() -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    header = struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00\xff")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


PNG = _png()
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x01\x00H\x00H\x00\x00" + b"\x00" * 32
GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00" + b"\x00" * 32
PDF = b"%PDF-1.4\n1 0 obj\n<< >>\nendobj\ntrailer\n<< >>\n%%EOF\n"
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 64
ZIP = b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + b"\x00" * 40
HTML = b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\ana\\Desktop\\nota.pdf", "nota.pdf"),
        ("/tmp/x/../foto.png", "foto.png"),
        (".htaccess", "htaccess"),
        ("...hidden.pdf", "hidden.pdf"),
        ("fatura.exe. . ", "fatura.exe"),
        ("  relatório   final\t2025.pdf ", "relatório final 2025.pdf"),
        ("nota\x00\x07\x1b.pdf", "nota.pdf"),
        ("fatura\u202efdp.exe", "faturafdp.exe"),  # right-to-left override removed
        ("relato\u0301rio.pdf", "relatório.pdf"),  # NFD from macOS -> NFC
        ("", ""),
        ("../", ""),
        ("\x00\x01", ""),
        ("a" * 300 + ".pdf", "a" * 116 + ".pdf"),
        ("b" * 300, "b" * 120),
    ],
)
def test_sanitize_filename(raw: str, expected: str) -> None:
    assert sanitize_filename(raw) == expected


def test_sanitize_filename_custom_length_keeps_extension() -> None:
    assert sanitize_filename("orçamento-detalhado-2025.pdf", max_len=12) == "orçament.pdf"


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (PNG, ("png", "image/png")),
        (JPEG, ("jpg", "image/jpeg")),
        (GIF, ("gif", "image/gif")),
        (PDF, ("pdf", "application/pdf")),
        (b"\r\n  %PDF-1.7\n", ("pdf", "application/pdf")),  # junk before the header
        (EXE, ("exe", "application/x-msdownload")),
        (ZIP, ("zip", "application/zip")),
        (HTML, None),
        (b"just some text", None),
        (b"", None),
    ],
)
def test_sniff_type(payload: bytes, expected: tuple[str, str] | None) -> None:
    assert sniff_type(payload) == expected


@pytest.mark.parametrize(
    ("filename", "payload", "accepted", "stored_as", "content_type", "code"),
    [
        ("tela.png", PNG, True, "tela.png", "image/png", None),
        ("FOTO.JPG", JPEG, True, "FOTO.JPG", "image/jpeg", None),
        ("foto.jpeg", JPEG, True, "foto.jpeg", "image/jpeg", None),
        ("anim.gif", GIF, True, "anim.gif", "image/gif", None),
        ("boleto.pdf", PDF, True, "boleto.pdf", "application/pdf", None),
        ("../../boleto.pdf", PDF, True, "boleto.pdf", "application/pdf", None),
        (
            "comprovante.png",
            EXE,
            False,
            "comprovante.png",
            "application/x-msdownload",
            "content_mismatch",
        ),
        ("comprovante.png", ZIP, False, "comprovante.png", "application/zip", "content_mismatch"),
        ("comprovante.png", HTML, False, "comprovante.png", "image/png", "content_mismatch"),
        ("foto.jpg", PNG, False, "foto.jpg", "image/png", "content_mismatch"),
        (
            "fatura.pdf.exe",
            EXE,
            False,
            "fatura.pdf.exe",
            "application/x-msdownload",
            "bad_filename",
        ),
        (
            "fatura.pdf.scr",
            EXE,
            False,
            "fatura.pdf.scr",
            "application/octet-stream",
            "bad_filename",
        ),
        ("setup.exe", EXE, False, "setup.exe", "application/x-msdownload", "extension_not_allowed"),
        ("planilha.xlsx", ZIP, False, "planilha.xlsx", None, "extension_not_allowed"),
        (
            "passwd",
            b"root:x:0:0",
            False,
            "passwd",
            "application/octet-stream",
            "extension_not_allowed",
        ),
        ("", b"no idea", False, "", "application/octet-stream", "bad_filename"),
        ("../", b"no idea", False, "", "application/octet-stream", "bad_filename"),
        ("", PNG, True, "image.png", "image/png", None),  # inline image without a name
        ("", JPEG, True, "image.jpg", "image/jpeg", None),
        ("Scan_0001", PDF, True, "Scan_0001.pdf", "application/pdf", None),  # scanner output
        ("vazio.png", b"", False, "vazio.png", "application/octet-stream", "empty"),
    ],
)
def test_check_attachment(
    filename: str,
    payload: bytes,
    accepted: bool,
    stored_as: str,
    content_type: str | None,
    code: str | None,
) -> None:
    check = check_attachment(filename, payload, ALLOWED, LIMIT)
    assert check.accepted is accepted
    assert check.filename == stored_as
    assert check.reason_code == code
    if content_type is not None:
        assert check.content_type == content_type
    assert (check.reason is None) is accepted
    if check.reason is not None:
        assert check.reason.isascii() and len(check.reason) < 120


def test_too_large_names_the_limit() -> None:
    check = check_attachment("foto.png", PNG + b"\x00" * 2048, ALLOWED, 1024)
    assert (check.accepted, check.reason_code) == (False, "too_large")
    assert "1 KiB" in (check.reason or "")
    assert check_attachment("foto.png", PNG, ALLOWED, len(PNG)).accepted


@pytest.mark.parametrize(
    ("allowed", "filename", "payload", "accepted"),
    [
        (["jpg"], "foto.jpeg", JPEG, True),  # jpg and jpeg are the same format
        (["JPEG"], "foto.jpg", JPEG, True),
        ([".PDF"], "doc.pdf", PDF, True),
        (["pdf"], "foto.png", PNG, False),
        (["txt"], "log.txt", b"linha 1\nlinha 2\n", True),  # no magic bytes to check
        (["txt"], "log.txt", EXE, False),
        (["docx"], "contrato.docx", ZIP, True),  # office files are ZIP containers
        ([], "foto.png", PNG, False),
    ],
)
def test_allow_list_is_normalized(
    allowed: list[str], filename: str, payload: bytes, accepted: bool
) -> None:
    assert check_attachment(filename, payload, allowed, LIMIT).accepted is accepted


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        (
            "attachments-png-jpeg-gif-pdf.eml",
            [
                ("tela1.png", None),
                ("foto.JPEG", None),
                ("animacao.gif", None),
                ("boleto.pdf", None),
            ],
        ),
        ("attachment-png-that-is-exe.eml", [("comprovante.png", "content_mismatch")]),
        ("attachment-double-extension-exe.eml", [("fatura.pdf.exe", "bad_filename")]),
        (
            "attachment-path-traversal-filename.eml",
            [("passwd", "extension_not_allowed"), ("nota.pdf", None)],
        ),
        ("attachment-no-extension-scanner.eml", [("Scan_0001.pdf", None)]),
        ("inline-cid-image-no-filename.eml", [("image.jpg", None)]),
        ("inline-cid-image-outlook.eml", [("image001.png", None)]),
        ("apple-mail-nfd-filename-rfc2231.eml", [("relatório mensal.pdf", None)]),
        ("rfc2047-filename-outlook.eml", [("comprovante-março.pdf", None)]),
        ("winmail-dat-tnef.eml", [("pedido-7781.pdf", None), ("assinatura.png", None)]),
    ],
)
def test_fixture_attachments_through_the_policy(
    fixture_bytes: FixtureBytes, fixture: str, expected: list[tuple[str, str | None]]
) -> None:
    parsed = parse_message(fixture_bytes(fixture))
    checks = [check_attachment(a.filename, a.payload, ALLOWED, LIMIT) for a in parsed.attachments]
    assert [(c.filename, c.reason_code) for c in checks] == expected
