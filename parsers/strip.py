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
  Outlook's original-message line in a dozen languages (``-----Original
  Message-----``, ``-------- Mensagem original --------``, ``Ursprüngliche
  Nachricht``, ``Исходное сообщение``…, also decorated ``*---- … ----*``); an Outlook
  header block (``From:/De:/Von:/Van:/Fra:/Från:/Od:/От:/Від:`` followed by at least
  two other fields: date, to, cc, subject, in the same languages, also with
  ``*From:*`` bold markers) and the rule line (``_____``, ``-----``) above it; the
  ``-- `` signature delimiter; mobile signatures (``Enviado do meu iPhone``, ``Sent
  from my …``, ``Gesendet von meinem iPhone``, ``Get Outlook for Android``…); a reply
  attribution that is *not* followed by ``>`` lines: ``On … wrote:``, ``Em …
  escreveu:``, ``Am … schrieb …:``, ``Op … schreef``, ``Den … skrev``, ``… napisał(a):``,
  ``… написал:``, ``… пише:``, ``El … escribió:``, ``Le … a écrit :``, ``Il … ha
  scritto:``, also wrapped over two or three lines, and ``2013/7/20 Name <addr>``.
* soft cuts (only those lines): ``>``-quoted lines, and an attribution directly
  followed by ``>`` lines. Text the person wrote between quotes is kept; when a
  reply is interleaved (two or more quote blocks each answered below), the last
  lines of each answered quote stay above the answer, so the answer keeps its
  question.
* forwards are content: from a forward marker (``---------- Forwarded message
  ---------``, ``Begin forwarded message:``, ``Início da mensagem encaminhada:``…)
  down, the text is kept whole.
* rule lines left at the end after a cut are removed.

When nothing is left: if the first hard cut was an original-message/header block,
the whole text is returned trimmed: Outlook forwards and replies look the same,
and a person who forwards with no comment still sent something on purpose. If
the cut was our separator, an attribution, a signature or quoting, "" is
returned: the person wrote nothing, and the pipeline answers ``empty_rejected``.
"""

from __future__ import annotations

import re
from enum import Enum

from maild.parsers.html import html_to_text
from maild.parsers.html_quote import cut_quoted_html
from maild.parsers.quoted_headers import QUOTED_HEADER_FIELDS
from maild.parsers.types import ParsedMessage


class _Cut(Enum):
    SEPARATOR = "separator"
    ORIGINAL = "original"  # original-message line or Outlook header block
    ATTRIBUTION = "attribution"
    SIGNATURE = "signature"


_SEPARATOR_RE = re.compile(r"^\s*##-.*-##\s*$")
# Decorations clients and HTML conversion put around marker lines: "*-----  … -----*".
_DECOR = r"[\s*_>]*"
# Forward markers: what follows is a message the person passes on; it is content.
_FORWARD_RE = re.compile(
    r"^" + _DECOR + r"(?:"
    r"-{2,}\s*(?:forwarded message|mensagem encaminhada|mensaje reenviado"
    r"|message transf[ée]r[ée]|weitergeleitete nachricht|messaggio inoltrato"
    r"|doorgestuurd bericht|videresendt meddelelse|videresendt melding"
    r"|vidarebefordrat meddelande|przekazana wiadomość|wiadomość przekazana"
    r"|пересылаемое сообщение|пересланное сообщение|переслане повідомлення"
    r"|välitetty viesti)\s*-{2,}"
    r"|(?:in[íi]cio da mensagem encaminhada|begin forwarded message|inicio del mensaje reenviado"
    r"|d[ée]but du message r[ée]exp[ée]di[ée]|anfang der weitergeleiteten nachricht"
    r"|doorgestuurd bericht|start på videresendt (?:meddelelse|melding)"
    r"|vidarebefordrat brev)\s*:"
    r")" + _DECOR + r"$",
    re.IGNORECASE,
)
# Outlook's line above the history of a reply (and of its forwards: they look alike).
_ORIGINAL_RE = re.compile(
    r"^" + _DECOR + r"-{2,}\s*(?:original message|original-nachricht|mensagem original"
    r"|mensaje original|message d'origine|urspr[üu]ngliche nachricht|oorspronkelijk bericht"
    r"|opprinnelig melding|oprindelig meddelelse|ursprungligt meddelande|originalmeddelande"
    r"|wiadomość oryginalna|oryginalna wiadomość|messaggio originale|исходное сообщение"
    r"|оригинальное сообщение|вихідне повідомлення|alkuperäinen viesti|původní zpráva"
    r"|eredeti üzenet)\s*-{2,}" + _DECOR + r"$",
    re.IGNORECASE,
)
_UNDERSCORES_RE = re.compile(r"^\s*_{10,}\s*$")
# A line of nothing but rule characters, left behind above a cut.
_RULE_LINE_RE = re.compile(r"^\s*(?:[-_=*~#.·—–]\s*){4,}$")
_HEADER_GROUPS = QUOTED_HEADER_FIELDS
_HEADER_LINE_RE = re.compile(
    r"^\s*[*>]{0,2}\s*(?P<name>"
    + "|".join(re.escape(k) for k in sorted(_HEADER_GROUPS, key=len, reverse=True))
    + r")\s*:\s*\*{0,2}(?:\s|$)",
    re.IGNORECASE,
)
_ATTRIBUTION_END_RE = re.compile(
    r"(?:escreveu|wrote|a\s+[ée]crit|schrieb|escribi[óo]|ha\s+scritto|schreef|skrev|skrivit"
    r"|napisa[łl](?:\(a\)|a)?|написал(?:\(а\)|а)?|написала|пише|писал(?:\(а\)|а)?|написав"
    r"|(?:schrieb|schreef|skrev)\s[^:]{0,160}"
    r"|pisze|пишет|kirjoitti|írta|yazdı|napsal(?:\(a\)|a)?|写道|寫道|wrote\s+on\s.{0,80})"
    r"\s*:\s*$",
    re.IGNORECASE,
)
_ATTRIBUTION_START_RE = re.compile(
    r"^\s*(?:em|on|le|am|el|il|op|den|d\.|dne|w\s+dniu|в|у|\d|\w+,\s+\d)", re.IGNORECASE
)
# An attribution with no verb, naming the quoted sender's address, ending in ":".
_ADDRESS_ATTRIBUTION_RE = re.compile(r"@[^\s<>]+(?:>|&gt;)?\s*(?:\[[^\]]{0,40}\])?\s*:\s*$")
# Old Gmail and Chinese/Japanese clients: "2013/7/20 Name <addr>" (no verb at all).
_ISO_ATTRIBUTION_RE = re.compile(
    r"^\s*\d{4}[/.-]\d{1,2}[/.-]\d{1,2}(?:\s+\d{1,2}:\d{2}(?::\d{2})?)?"
    r"(?:\s+(?:GMT|UTC)?[+-]?\d{0,2}:?\d{0,2})?\s+"
    r"[^<>]{0,100}<[^<>\s@]+@[^<>\s]+>\s*:?\s*$"
)
_MOBILE_DEVICE = (
    r"(?:iphone|ipad|android|samsung|galaxy|mobile|smartphone|outlook|yahoo|huawei|xiaomi"
    r"|blackberry|telefone|celular|handy|móvil|movil|mobil|mobiel|telefon|телефона|ios)"
)
_MOBILE_SIGNATURE_RE = re.compile(
    r"^\s*(?:"
    r"(?:enviado|enviada|sent|envoy[ée]|gesendet|verzonden|verstuurd|sendt|skickat|inviato"
    r"|wysłane|wysłano|отправлено|надіслано|lähetetty)\s+"
    r"(?:do|de|desde|da|from|depuis|von|vanaf|van|met|fra|från|z|ze|с|со|из|з|from\s+the|via|dal|dal\s+mio)"
    r"\s+(?:(?:meu|minha|my|mon|ma|mein|meinem|mijn|min|mitt|mi|mio|mojego|моего|мого)\s+\S.{0,60}"
    r"|\S{0,20}" + _MOBILE_DEVICE + r"\b.{0,60})"
    r"|(?:get|obter o|obtenha o|baixe o|baixar o|descargar|obtenez|hämta|hent|holen sie sich"
    r"|скачайте|download)\s+outlook\s+(?:for|para|pour|för|til|für|для)\s+(?:android|ios)\b.{0,80}"
    r")$",
    re.IGNORECASE,
)
_QUOTED_RE = re.compile(r"^\s*>")
_DIGIT_RE = re.compile(r"\d")
# An attribution wrapped by the client ("... <suporte@example.com>\nescreveu:").
_ATTRIBUTION_MAX_LINES = 3
_ATTRIBUTION_MAX_CHARS = 300
_HEADER_BLOCK_SCAN = 10
# Quote lines kept above each answer of an interleaved reply.
_CONTEXT_LINES = 3


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
            if groups:
                break
            continue  # HTML conversion puts blank lines between the fields
        match = _HEADER_LINE_RE.match(line)
        if match:
            groups.add(_HEADER_GROUPS[match.group("name").lower()])
        # other lines are wrapped header values (a long To: list): keep scanning
    return len(groups - {"from"}) >= 2


def _attribution_at(lines: list[str], start: int) -> int:
    """Number of lines of a reply attribution starting at ``start`` (0 if none)."""
    first = lines[start]
    if len(first) <= _ATTRIBUTION_MAX_CHARS and _ISO_ATTRIBUTION_RE.match(first):
        return 1
    # Gmail in Russian, mail.ru, Yandex, Mutt: "… от Name <addr>:", "* Name <addr> [date]:"
    if (
        len(first) <= _ATTRIBUTION_MAX_CHARS
        and _ADDRESS_ATTRIBUTION_RE.search(first)
        and _next_is_quoted(lines, start + 1)
    ):
        return 1
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
    if _ORIGINAL_RE.match(line) or _header_block_at(lines, index):
        return _Cut.ORIGINAL
    if line.rstrip() == "--":
        return _Cut.SIGNATURE
    if _MOBILE_SIGNATURE_RE.match(line):
        return _Cut.SIGNATURE
    return None


def _cut_start(lines: list[str], index: int) -> int:
    """Move a cut up over a rule line (Outlook's ``_____``, ``-----``) right above it."""
    probe = index - 1
    while probe >= 0 and not lines[probe].strip():
        probe -= 1
    if probe >= 0 and (_UNDERSCORES_RE.match(lines[probe]) or _RULE_LINE_RE.match(lines[probe])):
        return probe
    return index


def _tidy(lines: list[str]) -> str:
    """Trailing spaces off, runs of blank lines collapsed, blank edges and rule lines
    left at the end (the remains of a cut) trimmed."""
    out: list[str] = []
    for line in lines:
        line = line.rstrip()
        if not line and (not out or not out[-1]):
            continue
        out.append(line)
    while out and (not out[-1] or _RULE_LINE_RE.match(out[-1])):
        out.pop()
    return "\n".join(out)


def _with_context(kept: list[tuple[int, str]], quotes: list[tuple[int, str]]) -> list[str]:
    """Kept lines, plus the quote lines each answer of an interleaved reply answers.

    A reply is interleaved when at least two blocks of quoted lines are each
    followed by text the person wrote; then the last few lines of each such block
    stay above the answer, so "Versão 4.2.1." keeps the question it answers. A
    single quote followed by text (a bottom-posted reply) keeps no quote.
    """
    events = sorted(
        [(n, line, False) for n, line in kept] + [(n, line, True) for n, line in quotes]
    )
    context: list[tuple[int, str]] = []
    block: list[tuple[int, str]] = []
    answered = 0
    for number, line, quoted in events:
        if quoted:
            if line.strip(" >\t"):
                block.append((number, line))
            continue
        if not line.strip():
            continue
        if block:
            answered += 1
            context.extend(block[-_CONTEXT_LINES:])
            block = []
    if answered < 2:
        return [line for _, line in kept]
    merged = sorted(kept + context)
    return [line for _, line in merged]


def strip_reply(text: str) -> str:
    """The part of a reply the person wrote: quotes, history and signatures removed.

    See the module docstring for the rules and for what is returned when nothing
    is left.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    kept: list[tuple[int, str]] = []
    quotes: list[tuple[int, str]] = []
    cut: _Cut | None = None
    index = 0
    while index < len(lines):
        line = lines[index]
        if _is_quoted(line):
            quotes.append((index, line))
            index += 1
            continue
        if _FORWARD_RE.match(line):
            # A forwarded message is content: kept whole, from its marker down.
            kept.extend((number, lines[number]) for number in range(index, len(lines)))
            break
        cut = _hard_cut(lines, index)
        if cut is not None:
            if cut is _Cut.ORIGINAL:
                start = _cut_start(lines, index)
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
    result = _tidy(_with_context(kept, quotes))
    if not result and cut is _Cut.ORIGINAL:
        return text.strip()
    return result


def strip_message(parsed: ParsedMessage) -> str:
    """The new text of a parsed message, as ``strip_reply`` but reading HTML-only
    mail by its structure first.

    When the text came from the HTML part, the quoted history is cut from the HTML
    (``parsers.html_quote``) before it is converted, then the text rules run on
    what is left. If that leaves nothing (an answer typed inside the quote), the
    whole conversion goes through the text rules instead, which keep interleaved
    answers.
    """
    if parsed.text_from_html and parsed.html:
        cut = cut_quoted_html(parsed.html)
        if cut is not None:
            stripped = strip_reply(html_to_text(cut))
            if stripped.strip():
                return stripped
    return strip_reply(parsed.text) if parsed.text else ""
