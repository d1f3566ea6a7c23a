"""A large attachment is held about once while parsing, not several times over:
the daemon's memory with 10 MB attachments depends on it (bench/README.md (e))."""

from __future__ import annotations

import base64
import tracemalloc

from maild.parsers.message import parse_message

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * (8 * 1024 * 4)  # 8 MiB, every byte value


def _mail() -> bytes:
    body = base64.encodebytes(PNG).replace(b"\n", b"\r\n")
    return (
        b"From: Cliente <cliente@padaria.example.com.br>\r\nTo: suporte@example.com\r\n"
        b"Subject: Foto\r\nMessage-ID: <big@padaria.example.com.br>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        b"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSegue a foto.\r\n--b1\r\n"
        b'Content-Type: image/png; name="foto.png"\r\n'
        b'Content-Disposition: attachment; filename="foto.png"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n" + body + b"--b1--\r\n"
    )


def test_a_large_attachment_is_decoded_once_and_held_as_bytes() -> None:
    raw = _mail()
    tracemalloc.start()
    try:
        parsed = parse_message(raw)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    (attachment,) = parsed.attachments
    assert attachment.payload == PNG
    # The decoded file once, plus the parser's small change; a str copy of the
    # payload (compat32's set_payload) would add two to four times its size.
    assert peak < 1.5 * len(PNG), peak / len(PNG)
