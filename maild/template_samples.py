"""Sample contexts of every mail template: the contract of templates/README.md, as data.

Each template gets a "full" variant (every optional part present) and a "bare"
one (optional parts empty), so that ``Renderer.check()`` walks both sides of
every ``{% if %}``; some templates get a variant per case they distinguish. The
keys every template receives come from ``_common``; the keys of one template
come from its builder in ``_BUILDERS``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from maild.template_catalog import (
    PRIORITY_LABELS,
    SEPARATOR,
    STATUS_LABELS,
    TEMPLATE_NAMES,
    TICKET_OPTIONAL,
    check_language,
)

_TICKET_LINK = "https://suporte.example.com/t/592110/q8Zr3kVhT1mNcA7yLpW0sE"
_ATTACHMENTS = [
    {"filename": "erro-impressora.png", "size": 48213},
    {"filename": "nota-fiscal.pdf", "size": 1572864},
]
_LIST_LINK = "https://suporte.example.com/c/Vd3kq9Zr0mT1bN7yLpW2sEaH"
_REFUSAL_REASON = {"pt_BR": "tipo de arquivo não permitido", "en": "file type not allowed"}
# Templates that reveal or have no ticket: the unauthorized notice must reveal
# nothing of it; the unknown-sender notice and the list have none.
_WITHOUT_TICKET = ("notice_unauthorized", "notice_unknown_sender", "ticket_list")
# The ticket's status when a template is sent, where it is not "open".
_STATUS = {
    "status_changed": "in_progress",
    "resolved": "resolved",
    "autoresolved": "resolved",
    "rating_reminder": "resolved",
    "customer_reminder": "waiting_customer",
}


def sample_contexts(name: str, language: str) -> list[dict[str, Any]]:
    """Every sample context of a template: full, bare, and one per variant it has."""
    check_language(language)
    with_ticket = name not in _WITHOUT_TICKET
    full = _common(language, with_ticket=with_ticket) | _specific(name, language, True)
    bare = _bare_common(language, with_ticket=with_ticket) | _specific(name, language, False)
    status = _STATUS.get(name)
    if status is not None:
        for context in (full, bare):
            context["ticket"] = context["ticket"] | {
                "status": status,
                "status_label": STATUS_LABELS[language][status],
            }
    variants = [full, bare]
    if name in TICKET_OPTIONAL and with_ticket:
        variants.append(bare | {"ticket": None})
    if name in ("sla_warning", "sla_escalation"):
        variants.append(full | {"sla": "resolution"})
    if name == "agent_notification":
        for event in ("appended", "reopened", "bounce"):
            variants.append(full | {"event": event})
        variants.append(full | {"event": "rating", "rating": 4, "rating_comment": "Rápido!"})
        variants.append(bare | {"event": "rating", "rating": 2})
    return variants


def sample_context(name: str, language: str) -> dict[str, Any]:
    """A complete context for ``name`` with every optional part filled in."""
    return sample_contexts(name, language)[0]


def _common(language: str, *, with_ticket: bool = True) -> dict[str, Any]:
    ticket = None
    if with_ticket:
        ticket = {
            "number": 592110,
            "token": "[#592110]",
            "subject": _subject(language),
            "status": "open",
            "status_label": STATUS_LABELS[language]["open"],
            "priority": "normal",
            "priority_label": PRIORITY_LABELS[language]["normal"],
            "department": "Suporte" if language == "pt_BR" else "Support",
            "link": _TICKET_LINK,
            "created_at": "16/11/2026 09:12" if language == "pt_BR" else "16 Nov 2026 09:12",
            "first_response_due": "16/11/2026 13:12"
            if language == "pt_BR"
            else "16 Nov 2026 13:12",
            "resolution_due": "24/11/2026 09:12" if language == "pt_BR" else "24 Nov 2026 09:12",
        }
    return {
        "instance": "Acme Suporte",
        "language": language,
        "separator": SEPARATOR[language],
        "footer_ref": "Ref: MAILD-592110",
        "recipient_name": "Maria Souza",
        "ticket": ticket,
        "link_entitled": with_ticket,
    }


def _bare_common(language: str, *, with_ticket: bool = True) -> dict[str, Any]:
    common = _common(language, with_ticket=with_ticket)
    common.update(footer_ref="", recipient_name="", link_entitled=False)
    return common


def _specific(name: str, language: str, full: bool) -> dict[str, Any]:
    """The keys of one template, beyond the common ones."""
    builder = _BUILDERS.get(name)
    if builder is None:
        raise ValueError(f"unknown template {name!r}, expected one of {TEMPLATE_NAMES}")
    return builder(language, full)


# --- shared sample values --------------------------------------------------------------------


def _subject(language: str) -> str:
    return "Impressora não imprime" if language == "pt_BR" else "Printer won't print"


def _message_text(language: str) -> str:
    return (
        "Bom dia,\n\nA impressora do 2º andar não imprime desde ontem."
        if language == "pt_BR"
        else "Good morning,\n\nThe second-floor printer has not printed since yesterday."
    )


def _attachments(full: bool) -> list[dict[str, Any]]:
    return list(_ATTACHMENTS) if full else []


def _refused_one(language: str) -> list[dict[str, str]]:
    return [{"filename": "fatura.pdf.exe", "reason": _REFUSAL_REASON[language]}]


def _monday_due(language: str) -> str:
    return (
        "segunda-feira, 16/11/2026 às 13:12"
        if language == "pt_BR"
        else "Monday, 16 Nov 2026 at 13:12"
    )


# --- one builder per template ----------------------------------------------------------------


def _confirmation(language: str, full: bool) -> dict[str, Any]:
    return {
        "list_link": _LIST_LINK if full else "",
        "due": "segunda-feira, 16/11/2026 às 13:12" if full else "",
        "outside_hours": full,
        "next_opening": "segunda-feira, 16/11/2026 às 08:30" if full else "",
        "refused_attachments": _refused_one(language) if full else [],
        "attachments": _attachments(full),
    }


def _agent_reply(language: str, full: bool) -> dict[str, Any]:
    return {
        "list_link": _LIST_LINK if full else "",
        "message_text": _message_text(language),
        "agent_name": "Ana" if full else "",
        "attachments": _attachments(full),
    }


def _no_keys(language: str, full: bool) -> dict[str, Any]:
    return {}


def _refused_attachments(language: str, full: bool) -> dict[str, Any]:
    return {"refused_attachments": _refused_one(language)}


def _ccs_left_out(language: str, full: bool) -> dict[str, Any]:
    return {
        "limit": 10,
        "left_out": ["joao@cliente.example", "financeiro@cliente.example"],
        "more": 1988 if full else 0,
    }


def _followup_rejected(language: str, full: bool) -> dict[str, Any]:
    return {"policy": "closed" if full else "reject", "new_ticket_address": "suporte@example.com"}


def _original_subject(language: str, full: bool) -> dict[str, Any]:
    return {"original_subject": _subject(language) if full else ""}


def _ticket_list(language: str, full: bool) -> dict[str, Any]:
    return {"list_link": _LIST_LINK, "ticket_count": 5 if full else 0}


def _rate_limited(language: str, full: bool) -> dict[str, Any]:
    return {"limit": 20}


def _too_large(language: str, full: bool) -> dict[str, Any]:
    return {
        "limit_bytes": 26214400,
        "size_bytes": 31457280,
        "original_subject": _subject(language),
    }


def _agent_error(language: str, full: bool) -> dict[str, Any]:
    return {
        "error_kind": "command",
        "error_line": "#status pronto",
        "error_message": "unknown status 'pronto'",
        "valid_forms": [
            "#status open|in_progress|waiting|resolved|closed",
            "#priority low|normal|high|urgent",
            "#assign <email>|me",
            "#department <key>",
            "#note",
            "#close",
        ],
        "original_subject": _subject(language) if full else "",
    }


def _agent_notification(language: str, full: bool) -> dict[str, Any]:
    return {
        "event": "created",
        "customer_name": "Maria Souza" if full else "",
        "customer_email": "maria@cliente.example",
        "message_text": _message_text(language),
        "attachments": _attachments(full),
        "refused_attachments": _refused_one(language) if full else [],
        "commands_help": full,
        "rating": None,
        "rating_comment": "",
    }


def _status_changed(language: str, full: bool) -> dict[str, Any]:
    return {
        "old_status_label": STATUS_LABELS[language]["open"],
        "new_status_label": STATUS_LABELS[language]["in_progress"],
    }


def _rating_links(language: str, full: bool) -> dict[str, Any]:
    links = [{"stars": n, "url": f"{_TICKET_LINK}?rate={n}"} for n in range(1, 6)]
    return {"rating_links": links if full else []}


def _sla(language: str, full: bool) -> dict[str, Any]:
    return {"sla": "first_response", "due": _monday_due(language)}


def _customer_reminder(language: str, full: bool) -> dict[str, Any]:
    when = (
        "sexta-feira, 20/11/2026 às 13:12"
        if language == "pt_BR"
        else "Friday, 20 Nov 2026 at 13:12"
    )
    return {"autoresolve_on": when if full else ""}


def _agent_digest(language: str, full: bool) -> dict[str, Any]:
    due = _monday_due(language)
    item = {
        "number": 592111,
        "token": "[#592111]",
        "subject": _subject(language),
        "status_label": STATUS_LABELS[language]["open"],
        "priority_label": PRIORITY_LABELS[language]["high"],
        "department": "Suporte" if language == "pt_BR" else "Support",
        "created_at": due,
        "due": due,
        "breached": True,
        "link": "https://suporte.example.com/t/592111/Hk2vP9aQ0wLr5TnXc8YbEg",
    }
    later = item | {"number": 592118, "token": "[#592118]", "breached": False, "due": ""}
    return {
        "agent_name": "Ana" if full else "",
        "date": due,
        "tickets": [item, later] if full else [later],
        "breached_count": 1 if full else 0,
    }


_BUILDERS: dict[str, Callable[[str, bool], dict[str, Any]]] = {
    "confirmation": _confirmation,
    "agent_reply": _agent_reply,
    "notice_duplicate_subject": _no_keys,
    "notice_followup_rejected": _followup_rejected,
    "notice_empty": _original_subject,
    "notice_unauthorized": _original_subject,
    "notice_rate_limited": _rate_limited,
    "notice_too_large": _too_large,
    "notice_refused_attachments": _refused_attachments,
    "notice_ccs_left_out": _ccs_left_out,
    "notice_agent_error": _agent_error,
    "agent_notification": _agent_notification,
    "status_changed": _status_changed,
    "resolved": _rating_links,
    "notice_unknown_sender": _original_subject,
    "ticket_list": _ticket_list,
    "sla_warning": _sla,
    "sla_escalation": _sla,
    "customer_reminder": _customer_reminder,
    "autoresolved": _rating_links,
    "rating_reminder": _rating_links,
    "agent_digest": _agent_digest,
}
