"""Reply stripping: keep what the person wrote, drop quoted history and signatures.

Sole purpose: turn the plain text of a reply into the text that maild relays and
shows (SPEC §3 "Quoted text"). It is line based and pure.

Why not ``mail-parser-reply`` (the maintained library the project looked at first):
evaluated against ``tests/fixtures/mail/reply-*.eml`` and ``forward-*.eml`` (version
1.36) it got 5 of 13 reply fixtures right. It has no Portuguese rules (``"pt"`` is
silently dropped), so it misses ``Em … escreveu:``, ``Enviado do meu iPhone``,
``-------- Mensagem original --------``, ``Obter o Outlook para Android`` and our own
``##- Responda acima desta linha -##`` separator; it keeps ``>`` lines of an
interleaved reply; its ``body`` cuts everything after a line starting with
``- item`` or ``Thanks,`` (losing real text), and it strips the indentation of every
line (damaging pasted logs). Using it as a first pass would have meant undoing
those effects, so the rules below are our own; they are small, table-like and
tested against every fixture.

What is cut, reading top to bottom:

* hard cuts (everything from the line down): our separator line ``##- … -##``;
  ``-----Original Message-----`` / ``-------- Mensagem original --------``; forward
  markers (``---------- Forwarded message ---------``, ``-----Mensagem
  encaminhada-----``, ``Início da mensagem encaminhada:``, ``Begin forwarded
  message:``); an Outlook header block (``De:/From:`` followed by at least two of
  ``Enviado:/Sent:/Data:/Date:``, ``Para:/To:/Cc:``, ``Assunto:/Subject:``, also with
  ``*From:*`` bold markers, and the ``_____`` line above it); the ``-- `` signature
  delimiter; mobile signatures (``Enviado do meu iPhone``, ``Sent from my …``,
  ``Get Outlook for Android``, ``Obter o Outlook para Android``); a reply
  attribution (``Em <data>, <nome> escreveu:``, ``On <date>, <name> wrote:``, also
  wrapped over two or three lines) that is *not* followed by ``>`` lines.
* soft cuts (only those lines): ``>``-quoted lines, and an attribution directly
  followed by ``>`` lines. Text the person wrote between quotes (an interleaved
  reply) is kept.

When nothing is left: if the first hard cut was a forward or an
original-message/header block, the whole text is returned trimmed: a person who
forwards with no comment still sent something on purpose (Outlook forwards and
replies look the same, so both fall here). If the cut was our separator, an
attribution, a signature or quoting, "" is returned: the person wrote nothing, and
the pipeline answers ``empty_rejected``.
"""

from __future__ import annotations

import re
from enum import Enum

from maild.parsers.quoted_headers import QUOTED_HEADER_FIELDS


class _Cut(Enum):
    SEPARATOR = "separator"
    FORWARD = "forward"  # forward marker, original-message line, header block
    ATTRIBUTION = "attribution"
    SIGNATURE = "signature"


_SEPARATOR_RE = re.compile(r"^\s*##-.*-##\s*$")
_FORWARD_RE = re.compile(
    r"^\s*(?:"
    r"-{2,}\s*(?:forwarded message|mensagem encaminhada|mensaje reenviado|message transf[ée]r[ée]"
    r"|original message|mensagem original|mensaje original|message d'origine"
    r"|urspr[üu]ngliche nachricht)\s*-{2,}"
    r"|(?:in[íi]cio da mensagem encaminhada|begin forwarded message|inicio del mensaje reenviado)"
    r"\s*:"
    r")\s*$",
    re.IGNORECASE,
)
_UNDERSCORES_RE = re.compile(r"^\s*_{10,}\s*$")
_HEADER_GROUPS = QUOTED_HEADER_FIELDS
_HEADER_LINE_RE = re.compile(
    r"^\s*\*{0,2}(?P<name>" + "|".join(sorted(_HEADER_GROUPS, key=len, reverse=True)) + r")"
    r"\s*:\s*\*{0,2}(?:\s|$)",
    re.IGNORECASE,
)
_ATTRIBUTION_END_RE = re.compile(
    r"(?:escreveu|wrote|a [ée]crit|schrieb|escribi[óo]|ha scritto)\s*:\s*$", re.IGNORECASE
)
_ATTRIBUTION_START_RE = re.compile(r"^\s*(?:em|on|le|am|el|il)\s+\S", re.IGNORECASE)
_MOBILE_SIGNATURE_RE = re.compile(
    r"^\s*(?:"
    r"(?:enviado|enviada|sent|envoy[ée]|gesendet)\s+(?:do|de|da|from|depuis|von)\s+"
    r"(?:meu|minha|my|mon|ma|mein|meinem)\s+\S.{0,60}"
    r"|(?:get|obter o|obtenha o|baixe o|baixar o)\s+outlook\s+(?:for|para)\s+(?:android|ios)"
    r"\b.{0,80}"
    r"|(?:sent|enviado)\s+(?:from|do|via)\s+"
    r"(?:outlook|yahoo mail|mail for windows|email para windows)\b.{0,60}"
    r")$",
    re.IGNORECASE,
)
_QUOTED_RE = re.compile(r"^\s*>")
_DIGIT_RE = re.compile(r"\d")
# An attribution wrapped by the client ("... <suporte@example.com>\nescreveu:").
_ATTRIBUTION_MAX_LINES = 3
_ATTRIBUTION_MAX_CHARS = 300
_HEADER_BLOCK_SCAN = 10


def _is_quoted(line: str) -> bool:
    return _QUOTED_RE.match(line) is not None


def _header_block_at(lines: list[str], start: int) -> bool:
    """True when an Outlook-style header block (From + two other fields) starts here."""
    first = _HEADER_LINE_RE.match(lines[start])
    if first is None or _HEADER_GROUPS[first.group("name").lower()] != "from":
        return False
    groups: set[str] = set()
    for line in lines[start + 1 : start + 1 + _HEADER_BLOCK_SCAN]:
        if not line.strip():
            break
        match = _HEADER_LINE_RE.match(line)
        if match:
            groups.add(_HEADER_GROUPS[match.group("name").lower()])
        # other lines are wrapped header values (a long To: list): keep scanning
    return len(groups - {"from"}) >= 2


def _attribution_at(lines: list[str], start: int) -> int:
    """Number of lines of a reply attribution starting at ``start`` (0 if none)."""
    first = lines[start]
    if _ATTRIBUTION_END_RE.search(first) and len(first) <= _ATTRIBUTION_MAX_CHARS:
        if _next_is_quoted(lines, start + 1):
            return 1
        return 1 if _ATTRIBUTION_START_RE.match(first) and _looks_dated(first) else 0
    if not _ATTRIBUTION_START_RE.match(first):
        return 0
    joined = first.strip()
    for count in range(2, _ATTRIBUTION_MAX_LINES + 1):
        index = start + count - 1
        if index >= len(lines) or not lines[index].strip() or _is_quoted(lines[index]):
            return 0
        joined += " " + lines[index].strip()
        if len(joined) > _ATTRIBUTION_MAX_CHARS:
            return 0
        if _ATTRIBUTION_END_RE.search(joined):
            return count if _looks_dated(joined) else 0
    return 0


def _looks_dated(text: str) -> bool:
    """Attributions carry a date or an address; "Em resumo, ele escreveu:" does not."""
    return "@" in text or _DIGIT_RE.search(text) is not None


def _next_is_quoted(lines: list[str], start: int) -> bool:
    for line in lines[start:]:
        if line.strip():
            return _is_quoted(line)
    return False


def _hard_cut(lines: list[str], index: int) -> _Cut | None:
    line = lines[index]
    if _SEPARATOR_RE.match(line):
        return _Cut.SEPARATOR
    if _FORWARD_RE.match(line) or _header_block_at(lines, index):
        return _Cut.FORWARD
    if line in ("-- ", "--") or line.rstrip() == "--":
        return _Cut.SIGNATURE
    if _MOBILE_SIGNATURE_RE.match(line):
        return _Cut.SIGNATURE
    return None


def _underscore_start(lines: list[str], index: int) -> int:
    """Move a cut up over an Outlook ``_____`` line (and blank lines) right above it."""
    probe = index - 1
    while probe >= 0 and not lines[probe].strip():
        probe -= 1
    if probe >= 0 and _UNDERSCORES_RE.match(lines[probe]):
        return probe
    return index


def _tidy(lines: list[str]) -> str:
    """Trailing spaces off, runs of blank lines collapsed, blank edges trimmed."""
    out: list[str] = []
    for line in lines:
        line = line.rstrip()
        if not line and (not out or not out[-1]):
            continue
        out.append(line)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out)


def strip_reply(text: str) -> str:
    """The part of a reply the person wrote: quotes, history and signatures removed.

    See the module docstring for the rules and for what is returned when nothing
    is left.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept: list[tuple[int, str]] = []
    cut: _Cut | None = None
    index = 0
    while index < len(lines):
        line = lines[index]
        if _is_quoted(line):
            index += 1
            continue
        cut = _hard_cut(lines, index)
        if cut is not None:
            if cut is _Cut.FORWARD:
                start = _underscore_start(lines, index)
                kept = [(number, kept_line) for number, kept_line in kept if number < start]
            break
        attribution = _attribution_at(lines, index)
        if attribution:
            if _next_is_quoted(lines, index + attribution):
                index += attribution
                continue
            cut = _Cut.ATTRIBUTION
            break
        kept.append((index, line))
        index += 1
    result = _tidy([kept_line for _, kept_line in kept])
    if not result and cut is _Cut.FORWARD:
        return text.replace("\r\n", "\n").replace("\r", "\n").strip()
    return result
