"""The mails maild sends and the words they share: template names, languages, labels.

Plain data, read by the renderer (``maild.render``), the sample contexts
(``maild.template_samples``) and whoever builds a template's context.
"""

from __future__ import annotations

LANGUAGES: tuple[str, ...] = ("pt_BR", "en")

TEMPLATE_NAMES: tuple[str, ...] = (
    "confirmation",
    "agent_reply",
    "notice_duplicate_subject",
    "notice_followup_rejected",
    "notice_empty",
    "notice_unauthorized",
    "notice_rate_limited",
    "notice_too_large",
    "notice_refused_attachments",
    "notice_ccs_left_out",
    "notice_agent_error",
    "agent_notification",
    "status_changed",
    "resolved",
    "notice_unknown_sender",
    "ticket_list",
    # the scheduler (SPEC §11)
    "sla_warning",
    "sla_escalation",
    "customer_reminder",
    "autoresolved",
    "rating_reminder",
    "agent_digest",
)
AGENT_TEMPLATES: tuple[str, ...] = (
    "agent_notification",
    "notice_agent_error",
    "sla_warning",
    "sla_escalation",
    "agent_digest",
)
CUSTOMER_TEMPLATES: tuple[str, ...] = tuple(n for n in TEMPLATE_NAMES if n not in AGENT_TEMPLATES)

# Templates whose ``ticket`` may be None (an opening that was refused, or a
# message that could not be read far enough to find its ticket). The unauthorized
# notice always gets None: it must reveal nothing of the ticket.
TICKET_OPTIONAL: tuple[str, ...] = (
    "notice_empty",
    "notice_unauthorized",
    "notice_rate_limited",
    "notice_too_large",
    "notice_agent_error",
    "notice_unknown_sender",
    "ticket_list",
    "agent_digest",  # one mail about many tickets
)
STATUS_LABELS: dict[str, dict[str, str]] = {
    "pt_BR": {
        "open": "Aberto",
        "in_progress": "Em andamento",
        "waiting_customer": "Aguardando resposta",
        "resolved": "Resolvido",
        "closed": "Fechado",
    },
    "en": {
        "open": "Open",
        "in_progress": "In progress",
        "waiting_customer": "Waiting for your reply",
        "resolved": "Resolved",
        "closed": "Closed",
    },
}
PRIORITY_LABELS: dict[str, dict[str, str]] = {
    "pt_BR": {"low": "Baixa", "normal": "Média", "high": "Alta", "urgent": "Urgente"},
    "en": {"low": "Low", "normal": "Normal", "high": "High", "urgent": "Urgent"},
}

# Why a file was refused, in the mail's language (the web page shows them too).
REFUSAL_REASONS = {
    "pt_BR": {
        "extension_not_allowed": "tipo de arquivo não aceito",
        "content_mismatch": "o conteúdo não corresponde à extensão do arquivo",
        "too_large": "arquivo maior que o limite",
        "empty": "arquivo vazio",
        "bad_filename": "nome de arquivo inválido",
    },
    "en": {
        "extension_not_allowed": "file type not accepted",
        "content_mismatch": "the content does not match the file extension",
        "too_large": "file larger than the limit",
        "empty": "empty file",
        "bad_filename": "invalid file name",
    },
}


def refusal_reason(code: str | None, fallback: str | None, language: str) -> str:
    """The reason a file was refused, in the mail's language."""
    return REFUSAL_REASONS.get(language, {}).get(code or "", fallback or "refused")


# The person replies above this line; quote stripping cuts everything below it.
SEPARATOR: dict[str, str] = {
    "pt_BR": "##- Responda acima desta linha -##",
    "en": "##- Please type your reply above this line -##",
}


def check_language(language: str) -> None:
    """Raise ValueError unless maild has templates in ``language``."""
    if language not in LANGUAGES:
        raise ValueError(f"unsupported language {language!r}, expected one of {LANGUAGES}")
