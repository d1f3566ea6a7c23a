"""Agent command lines at the top of a reply (SPEC §5).

Sole purpose: split an agent's stripped text into the ``#command`` lines at its top
and the body that is relayed, normalizing command values to the canonical English
enums, and report every invalid line (an invalid command applies nothing).

Rules written down here:

* Command lines are only at the top. Blank lines before and between them are
  allowed; the first other line ends the command block and starts the body.
* A command line is ``#`` directly followed by a letter (``#status resolved``).
  ``#592110`` (a ticket number), ``# Title`` and a lone ``#`` are text, not commands.
  A leading backslash (``\\#status``, from HTML-to-text escaping) is tolerated, as is a
  colon after the name (``#status: resolved``).
* ``#close`` is returned as ``Command("status", "resolved", ...)`` so that whoever
  applies commands handles one form; ``#note`` has value None.
* ``#note`` and ``#close`` take no value: text after them is an error, because an
  agent writing ``#note call the customer`` would otherwise lose that text.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

STATUS_VALUES: dict[str, str] = {
    "open": "open",
    "in_progress": "in_progress",
    "waiting": "waiting_customer",
    "waiting_customer": "waiting_customer",
    "resolved": "resolved",
    "closed": "closed",
    "aberto": "open",
    "em_andamento": "in_progress",
    "aguardando": "waiting_customer",
    "aguardando_resposta": "waiting_customer",
    "resolvido": "resolved",
    "fechado": "closed",
}

PRIORITY_VALUES: dict[str, str] = {
    "low": "low",
    "normal": "normal",
    "high": "high",
    "urgent": "urgent",
    "baixa": "low",
    "media": "normal",  # "média" once accents are removed
    "alta": "high",
    "urgente": "urgent",
}

#: The accepted forms, one per command, as shown to an agent in error mail.
VALID_FORMS: tuple[str, ...] = (
    "#status open|in_progress|waiting|resolved|closed",
    "#priority low|normal|high|urgent (baixa|média|alta|urgente)",
    "#assign <agent email or name>|me",
    "#department <key>",
    "#note",
    "#close",
)

_HELP = "valid commands: " + "; ".join(VALID_FORMS)

_COMMAND_RE = re.compile(r"^\s*\\?#(?P<name>[^\W\d_][\w-]*)\s*:?\s*(?P<value>.*?)\s*$")


@dataclass(frozen=True)
class Command:
    """One valid command line. ``value`` is canonical (``high``, ``waiting_customer``)."""

    name: str  # status | priority | assign | department | note
    value: str | None
    line_no: int  # 1-based line number in the text given to parse_commands
    line: str  # the line as written (trailing whitespace removed)


@dataclass(frozen=True)
class CommandError:
    """One invalid command line, with a message that lists the valid forms."""

    line_no: int
    line: str
    message: str


@dataclass(frozen=True)
class CommandParse:
    """The commands found at the top of a text, the remaining body, and errors."""

    commands: tuple[Command, ...]
    body: str
    errors: tuple[CommandError, ...]


def _fold(value: str) -> str:
    """Lowercase, accents removed, spaces and hyphens as underscores."""
    decomposed = unicodedata.normalize("NFKD", value.strip())
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return re.sub(r"[\s-]+", "_", plain.casefold())


def _parse_one(name: str, value: str, line_no: int, line: str) -> Command | CommandError:
    def error(message: str) -> CommandError:
        return CommandError(line_no, line, f"{message}; {_HELP}")

    if name in ("status", "priority"):
        table = STATUS_VALUES if name == "status" else PRIORITY_VALUES
        canonical = table.get(_fold(value))
        if canonical is None:
            shown = f'"{value}"' if value else "nothing"
            return error(f"#{name} expects one of {'|'.join(dict.fromkeys(table))}, got {shown}")
        return Command(name, canonical, line_no, line)
    if name == "assign":
        if not value:
            return error("#assign needs an agent email, name or me")
        if value.casefold() == "me":
            return Command(name, "me", line_no, line)
        return Command(name, value.lower() if "@" in value else value, line_no, line)
    if name == "department":
        if not value or len(value.split()) != 1:
            return error("#department needs one department key")
        return Command(name, value.lower(), line_no, line)
    if name in ("note", "close"):
        if value:
            return error(f"#{name} takes no value")
        if name == "close":
            return Command("status", "resolved", line_no, line)
        return Command("note", None, line_no, line)
    return error(f'unknown command "#{name}"')


def parse_commands(text: str) -> CommandParse:
    """Split ``text`` into its top command lines and the body that follows them."""
    lines = text.splitlines()
    commands: list[Command] = []
    errors: list[CommandError] = []
    body_start = len(lines)
    for index, raw_line in enumerate(lines):
        if not raw_line.strip():
            continue
        match = _COMMAND_RE.match(raw_line)
        if match is None:
            body_start = index
            break
        line = raw_line.rstrip()
        name = match.group("name").lower()
        result = _parse_one(name, match.group("value"), index + 1, line)
        if isinstance(result, Command):
            commands.append(result)
        else:
            errors.append(result)
    if not commands and not errors:
        return CommandParse((), text, ())
    body = "\n".join(lines[body_start:]).strip("\n")
    return CommandParse(tuple(commands), body, tuple(errors))
