"""Tests for parsers.commands: agent command lines at the top of a reply."""

from __future__ import annotations

import pytest
from maild.parsers.commands import Command, parse_commands


@pytest.mark.parametrize(
    ("line", "name", "value"),
    [
        ("#status open", "status", "open"),
        ("#status in_progress", "status", "in_progress"),
        ("#status in-progress", "status", "in_progress"),
        ("#status waiting", "status", "waiting_customer"),
        ("#status resolved", "status", "resolved"),
        ("#status closed", "status", "closed"),
        ("#status aberto", "status", "open"),
        ("#status em_andamento", "status", "in_progress"),
        ("#status em andamento", "status", "in_progress"),
        ("#status aguardando", "status", "waiting_customer"),
        ("#status resolvido", "status", "resolved"),
        ("#status fechado", "status", "closed"),
        ("#STATUS Resolved", "status", "resolved"),
        ("#status: resolved", "status", "resolved"),
        ("  #status resolved  ", "status", "resolved"),
        ("\\#status resolved", "status", "resolved"),
        ("#priority low", "priority", "low"),
        ("#priority normal", "priority", "normal"),
        ("#priority high", "priority", "high"),
        ("#priority urgent", "priority", "urgent"),
        ("#priority baixa", "priority", "low"),
        ("#priority media", "priority", "normal"),
        ("#priority média", "priority", "normal"),
        ("#priority alta", "priority", "high"),
        ("#priority urgente", "priority", "urgent"),
        ("#assign me", "assign", "me"),
        ("#assign ME", "assign", "me"),
        ("#assign Ana@Example.com", "assign", "ana@example.com"),
        ("#assign Ana Lima", "assign", "Ana Lima"),
        ("#department Financeiro", "department", "financeiro"),
        ("#note", "note", None),
        ("#close", "status", "resolved"),
    ],
)
def test_single_command(line: str, name: str, value: str | None) -> None:
    result = parse_commands(f"{line}\n\nTexto para o cliente.")
    assert result.errors == ()
    assert result.commands == (Command(name, value, 1, line.rstrip()),)
    assert result.body == "Texto para o cliente."


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("#status pending", '"pending"'),
        ("#status", "nothing"),
        ("#priority highest", '"highest"'),
        ("#assign", "#assign needs"),
        ("#department", "#department needs"),
        ("#department a b", "#department needs"),
        ("#note call the customer", "#note takes no value"),
        ("#close now", "#close takes no value"),
        ("#fechar", 'unknown command "#fechar"'),
        ("#urgente", 'unknown command "#urgente"'),
    ],
)
def test_invalid_command(line: str, fragment: str) -> None:
    result = parse_commands(f"{line}\nTexto")
    assert result.commands == ()
    assert len(result.errors) == 1
    error = result.errors[0]
    assert (error.line_no, error.line) == (1, line)
    assert fragment in error.message
    # the error mail must show the valid forms
    assert "#status open|in_progress|waiting|resolved|closed" in error.message
    assert "#priority low|normal|high|urgent" in error.message
    assert result.body == "Texto"


def test_several_commands_blank_lines_and_line_numbers() -> None:
    text = "\n\n#status waiting\n#priority alta\n\n#assign me\nOlá Maria,\n\n#status closed\n"
    result = parse_commands(text)
    assert result.commands == (
        Command("status", "waiting_customer", 3, "#status waiting"),
        Command("priority", "high", 4, "#priority alta"),
        Command("assign", "me", 6, "#assign me"),
    )
    assert result.errors == ()
    # a command-looking line after the body started is text
    assert result.body == "Olá Maria,\n\n#status closed"


def test_errors_and_valid_commands_are_both_reported() -> None:
    result = parse_commands("#status resolved\n#foo bar\n#priority nope\nTexto")
    assert [c.name for c in result.commands] == ["status"]
    assert [(e.line_no, e.line) for e in result.errors] == [(2, "#foo bar"), (3, "#priority nope")]


@pytest.mark.parametrize(
    "text",
    [
        "#592110 está resolvido?",
        "# Título em markdown\ntexto",
        "#\ntexto",
        "Olá,\n#status resolved",
        "",
        "   \n\n",
    ],
)
def test_not_commands(text: str) -> None:
    result = parse_commands(text)
    assert result.commands == ()
    assert result.errors == ()
    assert result.body == text


def test_only_commands_leaves_empty_body() -> None:
    result = parse_commands("#note\n")
    assert result.commands == (Command("note", None, 1, "#note"),)
    assert result.body == ""


def test_crlf_text() -> None:
    result = parse_commands("#close\r\n\r\nObrigado!\r\n")
    assert result.commands == (Command("status", "resolved", 1, "#close"),)
    assert result.body == "Obrigado!"
