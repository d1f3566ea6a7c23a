"""The header lines mail clients write above a quoted or forwarded message
("De: … Enviado: … Para: … Assunto:", "From: … Sent: …"), by language.

Shared by quote stripping and forward detection so both read the same block.
"""

from __future__ import annotations

# Field name as written (lowercase) -> what it is.
QUOTED_HEADER_FIELDS: dict[str, str] = {
    "from": "from",
    "de": "from",
    "von": "from",
    "da": "from",
    "sent": "date",
    "enviado": "date",
    "enviada": "date",
    "enviado em": "date",
    "enviada em": "date",
    "date": "date",
    "data": "date",
    "fecha": "date",
    "datum": "date",
    "gesendet": "date",
    "to": "to",
    "para": "to",
    "an": "to",
    "a": "to",
    "cc": "cc",
    "reply-to": "reply-to",
    "responder a": "reply-to",
    "subject": "subject",
    "assunto": "subject",
    "asunto": "subject",
    "betreff": "subject",
    "objet": "subject",
}
