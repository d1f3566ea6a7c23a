"""The shipped mail templates, admin overrides and their check, through Renderer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import pytest

from maild.render import (
    AGENT_TEMPLATES,
    CUSTOMER_TEMPLATES,
    LANGUAGES,
    PRIORITY_LABELS,
    SEPARATOR,
    SHIPPED_TEMPLATES_DIR,
    STATUS_LABELS,
    TEMPLATE_NAMES,
    TICKET_OPTIONAL,
    Rendered,
    Renderer,
    format_filesize,
    sample_context,
    sample_contexts,
)

ALL = [(name, language) for language in LANGUAGES for name in TEMPLATE_NAMES]
LINK = "https://suporte.example.com/t/592110/q8Zr3kVhT1mNcA7yLpW0sE"


def shipped(language: str) -> Renderer:
    return Renderer(SHIPPED_TEMPLATES_DIR, None, language)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_every_template_ships_in_both_languages() -> None:
    listings = {
        language: sorted(p.name for p in (SHIPPED_TEMPLATES_DIR / language).glob("*.j2"))
        for language in LANGUAGES
    }
    assert listings["pt_BR"] == listings["en"]
    for name in TEMPLATE_NAMES:
        assert f"{name}.txt.j2" in listings["en"]
        assert f"{name}.html.j2" in listings["en"]


def test_template_groups_cover_every_name() -> None:
    assert sorted(CUSTOMER_TEMPLATES + AGENT_TEMPLATES) == sorted(TEMPLATE_NAMES)


@pytest.mark.parametrize(("name", "language"), ALL)
def test_renders_every_sample_context(name: str, language: str) -> None:
    renderer = shipped(language)
    for context in sample_contexts(name, language):
        rendered = renderer.render(name, context)
        assert isinstance(rendered, Rendered)
        # the person replies above the separator: it opens every mail
        assert rendered.text.splitlines()[0] == SEPARATOR[language]
        assert SEPARATOR[language] in rendered.html
        assert rendered.text.endswith("\n") and not rendered.text.endswith("\n\n")
        assert "\n\n\n" not in rendered.text
        assert context["instance"] in rendered.text
        assert "{{" not in rendered.text and "{%" not in rendered.html
        lowered = rendered.html.lower()
        assert lowered.startswith("<!doctype html>")
        assert "<script" not in lowered and " src=" not in lowered and "<link" not in lowered


@pytest.mark.parametrize(("name", "language"), ALL)
def test_footer_ref_in_plain_text(name: str, language: str) -> None:
    text = shipped(language).render(name, sample_context(name, language)).text
    if name == "notice_unauthorized":
        assert "MAILD-592110" not in text  # a reply to it must not thread to the ticket
    else:
        assert text.rstrip().endswith("Ref: MAILD-592110")


@pytest.mark.parametrize(("name", "language"), ALL)
def test_link_only_when_entitled(name: str, language: str) -> None:
    renderer = shipped(language)
    context = sample_context(name, language)
    entitled = renderer.render(name, context)
    denied = renderer.render(name, context | {"link_entitled": False})
    assert LINK not in denied.text and LINK not in denied.html
    if name not in TICKET_OPTIONAL:  # these notices may not even know the ticket
        assert LINK in entitled.text and LINK in entitled.html


@pytest.mark.parametrize("language", LANGUAGES)
def test_unauthorized_notice_reveals_nothing(language: str) -> None:
    context = sample_context("notice_unauthorized", language)
    assert context["ticket"] is None
    rendered = shipped(language).render("notice_unauthorized", context)
    for leak in ("592110", LINK, "Suporte" if language == "pt_BR" else "Support\n"):
        assert leak not in rendered.text.replace(context["instance"], "")


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", TICKET_OPTIONAL)
def test_ticket_optional_templates_render_without_ticket(name: str, language: str) -> None:
    context = sample_context(name, language) | {"ticket": None, "link_entitled": False}
    rendered = shipped(language).render(name, context)
    assert "592110" not in rendered.text.replace("MAILD-592110", "")


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("confirmation", "subject"),
        ("agent_reply", "message_text"),
        ("agent_notification", "message_text"),
        ("agent_notification", "customer_name"),
        ("notice_empty", "original_subject"),
        ("notice_agent_error", "error_line"),
    ],
)
def test_html_escapes_mail_content(name: str, field: str, language: str) -> None:
    evil = '<script>alert("x")</script>'
    context: dict[str, Any] = sample_context(name, language)
    if field == "subject":
        context["ticket"] = context["ticket"] | {"subject": evil}
    else:
        context[field] = evil
    rendered = shipped(language).render(name, context)
    assert "<script>" not in rendered.html
    assert "&lt;script&gt;" in rendered.html
    assert evil in rendered.text  # plain text is not HTML: no escaping there


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(("name", "key"), [("confirmation", "due"), ("resolved", "ticket")])
def test_missing_key_raises(name: str, key: str, language: str) -> None:
    context = sample_context(name, language)
    del context[key]
    with pytest.raises(jinja2.UndefinedError):
        shipped(language).render(name, context)


def test_missing_nested_key_raises() -> None:
    context = sample_context("confirmation", "en")
    context["ticket"] = {k: v for k, v in context["ticket"].items() if k != "department"}
    with pytest.raises(jinja2.UndefinedError):
        shipped("en").render("confirmation", context)


def test_unknown_template_and_language() -> None:
    with pytest.raises(ValueError, match="unknown template"):
        shipped("en").render("welcome", {})
    with pytest.raises(ValueError, match="language"):
        Renderer(SHIPPED_TEMPLATES_DIR, None, "fr")
    with pytest.raises(ValueError, match="unknown template"):
        sample_context("welcome", "en")


@pytest.mark.parametrize("language", LANGUAGES)
def test_confirmation_content(language: str) -> None:
    context = sample_context("confirmation", language)
    rendered = shipped(language).render("confirmation", context)
    for expected in (
        context["due"],
        context["next_opening"],
        "[#592110]",
        "erro-impressora.png",
        "fatura.pdf.exe",
        context["refused_attachments"][0]["reason"],
        LINK,
    ):
        assert expected in rendered.text
        assert expected in rendered.html
    bare = shipped(language).render("confirmation", sample_contexts("confirmation", language)[1])
    assert "fatura.pdf.exe" not in bare.text and "fatura.pdf.exe" not in bare.html


def test_pt_br_wording() -> None:
    text = shipped("pt_BR").render("confirmation", sample_context("confirmation", "pt_BR")).text
    assert "Recebemos sua mensagem e abrimos o chamado [#592110]." in text
    assert "Prioridade:   Média" in text
    assert "47,1 KB" in text


def test_resolved_rating_links() -> None:
    rendered = shipped("en").render("resolved", sample_context("resolved", "en"))
    for stars in range(1, 6):
        assert f"{LINK}?rate={stars}" in rendered.text
        assert f'href="{LINK}?rate={stars}"' in rendered.html
    assert "1 star:" in rendered.text and "5 stars:" in rendered.text


def test_override_replaces_one_template(tmp_path: Path) -> None:
    write(tmp_path / "en" / "confirmation.txt.j2", "{{ separator }}\nCustom {{ ticket.token }}\n")
    renderer = Renderer(SHIPPED_TEMPLATES_DIR, tmp_path, "en")
    confirmation = renderer.render("confirmation", sample_context("confirmation", "en"))
    assert confirmation.text == f"{SEPARATOR['en']}\nCustom [#592110]\n"
    assert "We received your message" in confirmation.html  # html still shipped
    resolved = renderer.render("resolved", sample_context("resolved", "en"))
    assert "marked as resolved" in resolved.text
    assert renderer.check() == []


def test_override_of_other_language_is_not_used(tmp_path: Path) -> None:
    write(tmp_path / "pt_BR" / "confirmation.txt.j2", "{{ separator }}\nPersonalizado\n")
    rendered = Renderer(SHIPPED_TEMPLATES_DIR, tmp_path, "en").render(
        "confirmation", sample_context("confirmation", "en")
    )
    assert "Personalizado" not in rendered.text


def test_override_partial_applies_everywhere(tmp_path: Path) -> None:
    write(tmp_path / "pt_BR" / "_footer.txt.j2", "\n-- \n{{ instance }} (rodapé próprio)\n")
    renderer = Renderer(SHIPPED_TEMPLATES_DIR, tmp_path, "pt_BR")
    for name in ("confirmation", "resolved"):
        text = renderer.render(name, sample_context(name, "pt_BR")).text
        assert text.endswith("Acme Suporte (rodapé próprio)\n")


def test_check_reports_syntax_error_naming_file(tmp_path: Path) -> None:
    broken = write(tmp_path / "pt_BR" / "resolved.html.j2", "<p>{% if ticket %}sem fim</p>\n")
    problems = Renderer(SHIPPED_TEMPLATES_DIR, tmp_path, "pt_BR").check()
    assert problems, "a syntax error must be reported"
    assert any(str(broken) in p and "syntax error" in p for p in problems)
    assert all(str(broken) in p for p in problems)


def test_check_reports_unknown_variable_naming_file(tmp_path: Path) -> None:
    broken = write(
        tmp_path / "en" / "status_changed.txt.j2",
        "{{ separator }}\n\nNow {{ ticket.state }} for {{ ticket.number }}\n",
    )
    problems = Renderer(SHIPPED_TEMPLATES_DIR, tmp_path, "en").check()
    assert len(problems) == 1
    assert problems[0].startswith(f"{broken}:3: unknown variable")
    assert "state" in problems[0]


def test_check_blames_the_partial(tmp_path: Path) -> None:
    partial = write(tmp_path / "en" / "_ticket.txt.j2", "{{ ticket.numbr }}\n")
    problems = Renderer(SHIPPED_TEMPLATES_DIR, tmp_path, "en").check()
    assert problems == [f"{partial}:1: unknown variable: 'dict object' has no attribute 'numbr'"]


def test_check_walks_both_sides_of_conditions(tmp_path: Path) -> None:
    # the broken branch only runs when there are no attachments
    write(
        tmp_path / "en" / "agent_reply.txt.j2",
        "{{ separator }}\n{% if attachments %}ok{% else %}{{ nope }}{% endif %}\n",
    )
    problems = Renderer(SHIPPED_TEMPLATES_DIR, tmp_path, "en").check()
    assert len(problems) == 1 and "nope" in problems[0]


def test_check_covers_other_language_overrides(tmp_path: Path) -> None:
    broken = write(tmp_path / "en" / "notice_empty.txt.j2", "{{ missing_key }}\n")
    problems = Renderer(SHIPPED_TEMPLATES_DIR, tmp_path, "pt_BR").check()
    assert len(problems) == 1 and str(broken) in problems[0]


def test_check_reports_misplaced_and_misnamed_files(tmp_path: Path) -> None:
    top = write(tmp_path / "confirmation.txt.j2", "x\n")
    typo = write(tmp_path / "en" / "confirmaton.txt.j2", "x\n")
    wrong_suffix = write(tmp_path / "en" / "resolved.txt", "x\n")
    write(tmp_path / "en" / ".resolved.txt.j2.swp", "editor junk is ignored")
    problems = Renderer(SHIPPED_TEMPLATES_DIR, tmp_path, "en").check()
    assert len(problems) == 3
    assert str(top) in problems[0] and "language subdirectory" in problems[0]
    assert any(str(typo) in p and "unknown template name" in p for p in problems)
    assert any(str(wrong_suffix) in p and "not used" in p for p in problems)


def test_check_missing_override_dir(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    assert Renderer(SHIPPED_TEMPLATES_DIR, missing, "en").check() == [
        f"{missing}: templates directory does not exist"
    ]


def test_check_reports_runtime_errors(tmp_path: Path) -> None:
    broken = write(tmp_path / "en" / "notice_rate_limited.txt.j2", "{{ limit / 0 }}\n")
    problems = Renderer(SHIPPED_TEMPLATES_DIR, tmp_path, "en").check()
    assert problems == [f"{broken}:1: ZeroDivisionError: division by zero"]


def test_shipped_templates_pass_check() -> None:
    for language in LANGUAGES:
        assert shipped(language).check() == []


def test_labels() -> None:
    assert STATUS_LABELS["pt_BR"] == {
        "open": "Aberto",
        "in_progress": "Em andamento",
        "waiting_customer": "Aguardando resposta",
        "resolved": "Resolvido",
        "closed": "Fechado",
    }
    assert PRIORITY_LABELS["pt_BR"]["normal"] == "Média"
    assert PRIORITY_LABELS["en"]["normal"] == "Normal"
    for table in (STATUS_LABELS, PRIORITY_LABELS):
        assert set(table) == set(LANGUAGES)
        assert table["pt_BR"].keys() == table["en"].keys()


@pytest.mark.parametrize(
    ("size", "language", "expected"),
    [
        (0, "en", "0 bytes"),
        (1, "pt_BR", "1 byte"),
        (1023, "en", "1023 bytes"),
        (1024, "en", "1 KB"),
        (48213, "pt_BR", "47,1 KB"),
        (48213, "en", "47.1 KB"),
        (1572864, "pt_BR", "1,5 MB"),
        (26214400, "en", "25 MB"),
        (3 * 1024**3, "en", "3 GB"),
        (5 * 1024**5, "en", "5120 TB"),
    ],
)
def test_filesize(size: int, language: str, expected: str) -> None:
    assert format_filesize(size, language) == expected


def test_filesize_filter_follows_language(tmp_path: Path) -> None:
    write(tmp_path / "pt_BR" / "notice_too_large.txt.j2", "{{ size_bytes | filesize }}\n")
    rendered = Renderer(SHIPPED_TEMPLATES_DIR, tmp_path, "pt_BR").render(
        "notice_too_large", sample_context("notice_too_large", "pt_BR") | {"size_bytes": 1536}
    )
    assert rendered.text == "1,5 KB\n"
