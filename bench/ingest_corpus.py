"""The benchmark's mail: realistic customer messages, generated from a seed.

A mix of plain UTF-8 openings, threaded replies, ISO-8859-1 mail, HTML-only mail and
PNG attachments; 10 MB attachments and one large LMTP message for the memory figures.
"""

from __future__ import annotations

import base64
import email.utils
import os
import random
from email.utils import format_datetime, make_msgid

PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
SUBJECTS = [
    "Não consigo emitir NF-e",
    "Erro ao acessar o portal",
    "Boleto vencido",
    "Pedido atrasado",
    "Invoice question",
    "Cannot log in",
    "Relatório mensal",
    "Troca de senha",
]


def make_message(i: int, rng: random.Random, big: bool = False) -> tuple[bytes, str]:
    """One realistic customer message; returns (raw, message_id)."""
    mid = make_msgid(idstring=f"b{i}", domain="cliente.example.com.br")
    sender = f"cliente{i % 997}@empresa{i % 89}.example.com.br"
    subject = f"{rng.choice(SUBJECTS)} #{i}"
    date = format_datetime(email.utils.localtime())
    kind = rng.random()
    head = (
        f"From: Cliente {i} <{sender}>\r\nTo: suporte@example.com\r\n"
        f"Date: {date}\r\nMessage-ID: {mid}\r\nMIME-Version: 1.0\r\n"
    )
    body_pt = (
        "Olá, equipe de suporte.\r\n\r\nNão consigo emitir a nota fiscal desde ontem; "
        "aparece a mensagem de erro 503 ao confirmar.\r\n\r\nObrigado,\r\nCliente\r\n"
    )
    if big or kind < 0.10:  # attachments
        payload = os.urandom(10 * 1024 * 1024) if big else PNG_1PX * 1
        name = "anexo.png"
        data = PNG_1PX + payload[len(PNG_1PX) :] if big else PNG_1PX
        enc = base64.encodebytes(data).decode().replace("\n", "\r\n")
        raw = (
            head + f"Subject: {subject}\r\n"
            'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
            "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n" + body_pt + "--b1\r\n"
            f'Content-Type: image/png; name="{name}"\r\n'
            f'Content-Disposition: attachment; filename="{name}"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n" + enc + "--b1--\r\n"
        ).encode()
    elif kind < 0.25:  # ISO-8859-1
        raw = (
            head + "Subject: =?ISO-8859-1?Q?Solicita=E7=E3o_de_cota=E7=E3o?= " + str(i) + "\r\n"
            "Content-Type: text/plain; charset=ISO-8859-1\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n"
        ).encode() + body_pt.encode("latin-1")
    elif kind < 0.40:  # HTML only
        raw = (
            head + f"Subject: {subject}\r\n"
            "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
            "<html><body><p>Olá,</p><p>O sistema está <b>fora do ar</b> desde as 9h.</p>"
            "<p>Att,<br>Cliente</p></body></html>\r\n"
        ).encode()
    else:  # plain UTF-8, some of them replies to an earlier message (threading)
        extra = ""
        if kind > 0.75 and i > 10:
            parent = make_msgid(idstring=f"b{i - 7}", domain="cliente.example.com.br")
            extra = f"In-Reply-To: {parent}\r\nReferences: {parent}\r\n"
            subject = "Re: " + subject
        raw = (
            head + extra + f"Subject: {subject}\r\n"
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
            + body_pt
        ).encode()
    return raw, mid.strip("<>")


def big_lmtp_message(size: int) -> bytes:
    """A customer mail of about ``size`` bytes: one base64 PDF attachment."""
    body = base64.encodebytes(os.urandom(size * 3 // 4)).replace(b"\n", b"\r\n")
    head = (
        b"From: Cliente <cliente@example.com.br>\r\nTo: suporte@example.com\r\n"
        b"Subject: Arquivo grande\r\nMessage-ID: <bench-huge@cliente.example>\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain\r\n\r\nSegue o arquivo.\r\n--b\r\n"
        b"Content-Type: application/pdf; name=a.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    )
    return head + body + b"\r\n--b--\r\n"
