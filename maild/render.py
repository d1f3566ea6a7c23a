"""Render outbound mail bodies (plain text + HTML) from the Jinja2 templates.

Pure: a template name and a context mapping in, a ``Rendered`` pair out. The
admin's ``daemon.templates_dir`` is searched before the shipped ``templates/``;
``Renderer.check()`` renders every template with sample contexts so that a broken
override is reported by ``maild check-config`` rather than at send time. The
context each template receives is documented in ``templates/README.md``.
"""

from __future__ import annotations

import importlib.resources
import re
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

__all__ = [
    "AGENT_TEMPLATES",
    "CUSTOMER_TEMPLATES",
    "LANGUAGES",
    "PRIORITY_LABELS",
    "SEPARATOR",
    "SHIPPED_TEMPLATES_DIR",
    "STATUS_LABELS",
    "TEMPLATE_NAMES",
    "TICKET_OPTIONAL",
    "Rendered",
    "Renderer",
    "format_filesize",
    "sample_context",
    "sample_contexts",
]

# templates/ in the source tree, maild/templates/ once installed (pyproject package-dir).
SHIPPED_TEMPLATES_DIR = Path(str(importlib.resources.files("maild.templates")))

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

TEXT_SUFFIX = ".txt.j2"
HTML_SUFFIX = ".html.j2"

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

_BLANK_RUNS = re.compile(r"\n{3,}")
_TRAILING_SPACE = re.compile(r"[ \t]+\n")


@dataclass(frozen=True)
class Rendered:
    """One mail body in both alternatives of a multipart/alternative message."""

    text: str
    html: str


def format_filesize(size: int, language: str) -> str:
    """Human-readable size in binary units: ``"512 bytes"``, ``"1,5 MB"`` / ``"1.5 MB"``."""
    if size < 1024:
        return f"{size} byte" if size == 1 else f"{size} bytes"
    value = float(size)
    unit = "B"
    for unit in ("KB", "MB", "GB", "TB"):  # noqa: B007 - the last unit is kept on purpose
        value /= 1024
        if value < 1024:
            break
    number = f"{value:.1f}".removesuffix(".0")
    if language == "pt_BR":
        number = number.replace(".", ",")
    return f"{number} {unit}"


def _check_language(language: str) -> None:
    if language not in LANGUAGES:
        raise ValueError(f"unsupported language {language!r}, expected one of {LANGUAGES}")


def _environments(
    shipped_dir: Path, override_dir: Path | None, language: str
) -> tuple[jinja2.Environment, jinja2.Environment]:
    """(text environment without autoescape, HTML environment with autoescape)."""
    search = [shipped_dir / language]
    if override_dir is not None:
        search.insert(0, override_dir / language)
    loader = jinja2.ChoiceLoader([jinja2.FileSystemLoader(path) for path in search])
    envs = []
    for autoescape in (False, True):
        env = jinja2.Environment(
            loader=loader,
            autoescape=autoescape,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        env.filters["filesize"] = _filesize_filter(language)
        envs.append(env)
    return envs[0], envs[1]


def _filesize_filter(language: str) -> Callable[[int], str]:
    def filesize(size: int) -> str:
        return format_filesize(size, language)

    return filesize


def _tidy_text(text: str) -> str:
    # Conditional blocks leave blank-line runs behind; a mail reads better without.
    text = _TRAILING_SPACE.sub("\n", text)
    return _BLANK_RUNS.sub("\n\n", text).strip("\n") + "\n"


class Renderer:
    """Renders the mail templates of one language, admin overrides first."""

    def __init__(self, shipped_dir: Path, override_dir: Path | None, language: str) -> None:
        _check_language(language)
        self.shipped_dir = shipped_dir
        self.override_dir = override_dir
        self.language = language
        self._text_env, self._html_env = _environments(shipped_dir, override_dir, language)
        self._siblings: dict[str, Renderer] = {language: self}

    def for_language(self, language: str) -> Renderer:
        """The renderer of the same templates in ``language`` (each built once)."""
        sibling = self._siblings.get(language)
        if sibling is None:
            sibling = Renderer(self.shipped_dir, self.override_dir, language)
            self._siblings[language] = sibling
        return sibling

    def render(self, name: str, context: Mapping[str, Any]) -> Rendered:
        """Render ``<name>.txt.j2`` and ``<name>.html.j2`` with ``context``.

        Raises ``jinja2.UndefinedError`` when the context lacks a key a template uses.
        """
        if name not in TEMPLATE_NAMES:
            raise ValueError(f"unknown template {name!r}, expected one of {TEMPLATE_NAMES}")
        values = dict(context)
        text = self._text_env.get_template(name + TEXT_SUFFIX).render(values)
        html = self._html_env.get_template(name + HTML_SUFFIX).render(values)
        return Rendered(text=_tidy_text(text), html=html)

    def check(self) -> list[str]:
        """Every problem with the templates in use, each message naming its file.

        Compiles every file of the override directory, then renders each template
        (override or shipped) with every sample context, in this renderer's
        language and in any other language the override directory provides.
        """
        problems: dict[str, None] = {}  # ordered and de-duplicated
        languages = [self.language]
        if self.override_dir is not None:
            if not self.override_dir.is_dir():
                return [f"{self.override_dir}: templates directory does not exist"]
            for stray in sorted(self.override_dir.glob("*.j2")):
                problems[
                    f"{stray}: not used; templates go in a language subdirectory "
                    f"({' or '.join(lang + '/' for lang in LANGUAGES)})"
                ] = None
            languages += [
                lang
                for lang in LANGUAGES
                if lang != self.language and (self.override_dir / lang).is_dir()
            ]
        for language in languages:
            renderer = (
                self
                if language == self.language
                else Renderer(self.shipped_dir, self.override_dir, language)
            )
            for problem in renderer._check_one_language():
                problems[problem] = None
        return list(problems)

    def _check_one_language(self) -> Iterator[str]:
        if self.override_dir is not None:
            yield from self._compile_overrides(self.override_dir / self.language)
        for name in TEMPLATE_NAMES:
            for env, suffix in ((self._text_env, TEXT_SUFFIX), (self._html_env, HTML_SUFFIX)):
                for context in sample_contexts(name, self.language):
                    problem = _try_render(env, name + suffix, context)
                    if problem is not None:
                        yield problem
                        break

    def _compile_overrides(self, directory: Path) -> Iterator[str]:
        if not directory.is_dir():
            return
        for path in sorted(directory.rglob("*")):
            if not path.is_file() or path.name.startswith("."):
                continue
            relative = path.relative_to(directory).as_posix()
            if relative.endswith(HTML_SUFFIX):
                env, stem = self._html_env, relative.removesuffix(HTML_SUFFIX)
            elif relative.endswith(TEXT_SUFFIX):
                env, stem = self._text_env, relative.removesuffix(TEXT_SUFFIX)
            else:
                yield f"{path}: not used; template files end in {TEXT_SUFFIX} or {HTML_SUFFIX}"
                continue
            if stem not in TEMPLATE_NAMES and not path.name.startswith("_"):
                yield (
                    f"{path}: unknown template name {stem!r}; expected one of "
                    f"{', '.join(TEMPLATE_NAMES)} (shared partials start with _)"
                )
                continue
            try:
                env.get_template(relative)
            except jinja2.TemplateSyntaxError as exc:
                yield f"{exc.filename or path}:{exc.lineno}: syntax error: {exc.message}"


def _try_render(env: jinja2.Environment, template: str, context: Mapping[str, Any]) -> str | None:
    try:
        env.get_template(template).render(dict(context))
    except jinja2.TemplateSyntaxError as exc:
        return f"{exc.filename or template}:{exc.lineno}: syntax error: {exc.message}"
    except jinja2.TemplateNotFound as exc:
        return f"{template}: template not found: {exc.name}"
    except jinja2.UndefinedError as exc:
        return f"{_failing_location(exc, env, template)}: unknown variable: {exc.message}"
    except Exception as exc:  # an admin's template can fail in any way; report, never raise
        return f"{_failing_location(exc, env, template)}: {type(exc).__name__}: {exc}"
    return None


def _failing_location(exc: BaseException, env: jinja2.Environment, template: str) -> str:
    # Jinja rewrites tracebacks so that template frames carry the template's file
    # name and line: the innermost such frame is the file to blame (an include or
    # a base template, not necessarily the template we asked for).
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename.endswith((TEXT_SUFFIX, HTML_SUFFIX)):
            return f"{frame.filename}:{frame.lineno}"
    filename = env.get_template(template).filename
    return filename or template


# Sample contexts: the contract of templates/README.md, as data. Each template gets
# a "full" variant (every optional part present) and a "bare" one (optional parts
# empty), so that check() walks both sides of every {% if %}.


def _common(language: str, *, with_ticket: bool = True) -> dict[str, Any]:
    ticket = None
    if with_ticket:
        ticket = {
            "number": 592110,
            "token": "[#592110]",
            "subject": "Impressora não imprime" if language == "pt_BR" else "Printer won't print",
            "status": "open",
            "status_label": STATUS_LABELS[language]["open"],
            "priority": "normal",
            "priority_label": PRIORITY_LABELS[language]["normal"],
            "department": "Suporte" if language == "pt_BR" else "Support",
            "link": "https://suporte.example.com/t/592110/q8Zr3kVhT1mNcA7yLpW0sE",
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


_ATTACHMENTS = [
    {"filename": "erro-impressora.png", "size": 48213},
    {"filename": "nota-fiscal.pdf", "size": 1572864},
]
_LIST_LINK = "https://suporte.example.com/c/Vd3kq9Zr0mT1bN7yLpW2sEaH"
_REFUSAL_REASON = {"pt_BR": "tipo de arquivo não permitido", "en": "file type not allowed"}


def _specific(name: str, language: str, full: bool) -> dict[str, Any]:
    """The keys of one template, beyond the common ones."""
    subject = "Impressora não imprime" if language == "pt_BR" else "Printer won't print"
    text = (
        "Bom dia,\n\nA impressora do 2º andar não imprime desde ontem."
        if language == "pt_BR"
        else "Good morning,\n\nThe second-floor printer has not printed since yesterday."
    )
    attachments = list(_ATTACHMENTS) if full else []
    refused_one = [{"filename": "fatura.pdf.exe", "reason": _REFUSAL_REASON[language]}]
    refused = refused_one if full else []
    match name:
        case "confirmation":
            return {
                "list_link": _LIST_LINK if full else "",
                "due": "segunda-feira, 16/11/2026 às 13:12" if full else "",
                "outside_hours": full,
                "next_opening": "segunda-feira, 16/11/2026 às 08:30" if full else "",
                "refused_attachments": refused,
                "attachments": attachments,
            }
        case "agent_reply":
            return {
                "list_link": _LIST_LINK if full else "",
                "message_text": text,
                "agent_name": "Ana" if full else "",
                "attachments": attachments,
            }
        case "notice_duplicate_subject":
            return {}
        case "notice_refused_attachments":
            return {"refused_attachments": refused_one}
        case "notice_ccs_left_out":
            return {
                "limit": 10,
                "left_out": ["joao@cliente.example", "financeiro@cliente.example"],
                "more": 1988 if full else 0,
            }
        case "notice_followup_rejected":
            return {
                "policy": "closed" if full else "reject",
                "new_ticket_address": "suporte@example.com",
            }
        case "notice_empty" | "notice_unauthorized":
            return {"original_subject": subject if full else ""}
        case "notice_unknown_sender":
            return {"original_subject": subject if full else ""}
        case "ticket_list":
            return {"list_link": _LIST_LINK, "ticket_count": 5 if full else 0}
        case "notice_rate_limited":
            return {"limit": 20}
        case "notice_too_large":
            return {"limit_bytes": 26214400, "size_bytes": 31457280, "original_subject": subject}
        case "notice_agent_error":
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
                "original_subject": subject if full else "",
            }
        case "agent_notification":
            return {
                "event": "created",
                "customer_name": "Maria Souza" if full else "",
                "customer_email": "maria@cliente.example",
                "message_text": text,
                "attachments": attachments,
                "refused_attachments": refused,
                "commands_help": full,
                "rating": None,
                "rating_comment": "",
            }
        case "status_changed":
            return {
                "old_status_label": STATUS_LABELS[language]["open"],
                "new_status_label": STATUS_LABELS[language]["in_progress"],
            }
        case "resolved":
            link = "https://suporte.example.com/t/592110/q8Zr3kVhT1mNcA7yLpW0sE"
            return {
                "rating_links": [{"stars": n, "url": f"{link}?rate={n}"} for n in range(1, 6)]
                if full
                else []
            }
        case "sla_warning" | "sla_escalation":
            due = (
                "segunda-feira, 16/11/2026 às 13:12"
                if language == "pt_BR"
                else "Monday, 16 Nov 2026 at 13:12"
            )
            return {"sla": "first_response", "due": due}
        case "customer_reminder":
            when = (
                "sexta-feira, 20/11/2026 às 13:12"
                if language == "pt_BR"
                else "Friday, 20 Nov 2026 at 13:12"
            )
            return {"autoresolve_on": when if full else ""}
        case "autoresolved" | "rating_reminder":
            link = "https://suporte.example.com/t/592110/q8Zr3kVhT1mNcA7yLpW0sE"
            return {
                "rating_links": [{"stars": n, "url": f"{link}?rate={n}"} for n in range(1, 6)]
                if full
                else []
            }
        case "agent_digest":
            due = (
                "segunda-feira, 16/11/2026 às 13:12"
                if language == "pt_BR"
                else "Monday, 16 Nov 2026 at 13:12"
            )
            item = {
                "number": 592111,
                "token": "[#592111]",
                "subject": subject,
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
    raise ValueError(f"unknown template {name!r}, expected one of {TEMPLATE_NAMES}")


def sample_contexts(name: str, language: str) -> list[dict[str, Any]]:
    """Every sample context of a template: full, bare, and one per variant it has."""
    _check_language(language)
    # The unauthorized notice must reveal nothing of the ticket; the unknown-sender
    # notice and the list have none.
    with_ticket = name not in ("notice_unauthorized", "notice_unknown_sender", "ticket_list")
    full = _common(language, with_ticket=with_ticket) | _specific(name, language, True)
    bare = _bare_common(language, with_ticket=with_ticket) | _specific(name, language, False)
    status = {
        "status_changed": "in_progress",
        "resolved": "resolved",
        "autoresolved": "resolved",
        "rating_reminder": "resolved",
        "customer_reminder": "waiting_customer",
    }.get(name)
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
