"""An agent's ``#command`` lines checked against the settings (SPEC §5). Pure.

``parsers.commands`` finds the lines and their canonical values; here each is
checked against the desk (is the department known, does the name match exactly
one agent) and becomes a change to apply, or a problem named by a key that the
apply stage words in the agent's language.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

from maild.config import Settings
from maild.parsers.commands import Command, CommandParse, parse_commands


@dataclass(frozen=True)
class Change:
    kind: str  # status | priority | assign | department
    value: str | None


@dataclass(frozen=True)
class Problem:
    """One invalid line: ``key`` names the message, ``values`` fill it in; a
    ``key`` of None means ``text`` is the parser's own message."""

    line: str
    key: str | None
    values: dict[str, str] = field(default_factory=dict)
    text: str = ""


@dataclass(frozen=True)
class CheckedCommands:
    parse: CommandParse
    changes: tuple[Change, ...]
    problems: tuple[Problem, ...]
    internal: bool  # #note: kept from the customer

    @property
    def body(self) -> str:
        return self.parse.body.strip()


def check_commands(text: str, sender: str, settings: Settings) -> CheckedCommands:
    parse = parse_commands(text)
    problems = [Problem(e.line, None, text=e.message) for e in parse.errors]
    changes: list[Change] = []
    internal = False
    for cmd in parse.commands:
        if cmd.name == "note":
            internal = True
            continue
        change, problem = _check(cmd, sender, settings)
        if problem is not None:
            problems.append(problem)
        elif change is not None:
            changes.append(change)
    return CheckedCommands(parse, tuple(changes), tuple(problems), internal)


def _check(cmd: Command, sender: str, settings: Settings) -> tuple[Change | None, Problem | None]:
    value = cmd.value or ""
    if cmd.name == "assign":
        return _assignee(cmd, value, sender, settings)
    if cmd.name == "department":
        if settings.department(value) is None:
            known = ", ".join(d.key for d in settings.departments)
            return None, Problem(cmd.line, "unknown_department", {"value": value, "known": known})
        return Change("department", value), None
    return Change(cmd.name, value), None  # status, priority: canonical already


def _fold(value: str) -> str:
    decomposed = unicodedata.normalize("NFKD", value.strip())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def _assignee(
    cmd: Command, value: str, sender: str, settings: Settings
) -> tuple[Change | None, Problem | None]:
    """``me``, an agent's address, full name, first name or address local part."""
    if value.casefold() == "me":
        return Change("assign", sender), None
    agent = settings.agent(value)
    if agent is not None:
        return Change("assign", agent.email), None
    wanted = _fold(value)
    for rule in (
        lambda a: _fold(a.name) == wanted,
        lambda a: _fold(a.name).split()[:1] == [wanted],
        lambda a: _fold(a.email.split("@", 1)[0]) == wanted,
    ):
        matches = [a for a in settings.agents if rule(a)]
        if len(matches) == 1:
            return Change("assign", matches[0].email), None
        if len(matches) > 1:
            names = ", ".join(a.email for a in matches)
            return None, Problem(cmd.line, "ambiguous_agent", {"value": value, "matches": names})
    known = ", ".join(f"{a.name} <{a.email}>" for a in settings.agents)
    return None, Problem(cmd.line, "unknown_agent", {"value": value, "known": known})
