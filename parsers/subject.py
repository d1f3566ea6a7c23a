"""Ticket references in subjects, plus-addresses and footers, and subject normalization.

Sole purpose: read and write the small text markers that tie a mail to a ticket
(``[#592110]``, ``suporte+592110@``, ``Ref: MAILD-592110``) and reduce a subject to
the form used for duplicate detection (SPEC §3 "Threading", "Normalized subject").

Choices written down here:

* Tokens show the ticket number as is. Numbers are drawn at random with
  ``tickets.number_digits`` digits, so they never need zero padding, and a token
  round-trips through ``int`` without loss.
* With a token prefix (``"ACME"``) only ``[ACME #n]`` is a token (any case, with or
  without the space); a bare ``[#n]`` is then not ours. Without a prefix only
  ``[#n]`` is a token.
* ``format_subject`` removes leading reply/forward prefixes and any token of the
  same ticket, then puts the token first. A token of another ticket is kept (it
  is part of what the person wrote) and comes after ours, so ``extract_token``,
  which returns the first token, still finds ours.
* The footer reference reads ``Ref: MAILD-592110`` (``Ref: MAILD-ACME-592110``
  with a prefix): the ``MAILD-`` tag makes it unlikely in normal text and it
  survives ``>`` quoting, HTML-to-text conversion and Message-ID rewriting.
"""

from __future__ import annotations

import re
import unicodedata

#: Reply and forward prefixes seen in the wild, in the languages of our customers and
#: of the mail clients they use (pt, en, de, es, fr, nl, sv/no/da/fi).
REPLY_PREFIXES: tuple[str, ...] = (
    "Re",
    "RES",
    "Fwd",
    "Fw",
    "ENC",
    "AW",
    "WG",
    "RV",
    "TR",
    "SV",
    "VS",
    "Antw",
)

_PREFIX_WORDS = "|".join(sorted((p.lower() for p in REPLY_PREFIXES), key=len, reverse=True))
# One prefix: a word from the list, an optional counter ("Re[2]:", "RE (3):"), a
# colon, with any spacing ("RE : "), any case; repeated and nested ("Re:Re: Fwd:").
_PREFIX_RE = re.compile(
    rf"^\s*(?:(?:{_PREFIX_WORDS})\s*(?:\[\s*\d+\s*\]|\(\s*\d+\s*\))?\s*[:：]\s*)+",
    re.IGNORECASE,
)
_WHITESPACE_RE = re.compile(r"\s+")
# Upper bound on token digits: keeps ``int()`` small and ignores phone numbers.
_MAX_DIGITS = 12

_PLUS_RE = re.compile(r"^(?P<local>[^+@\s]+)\+(?P<number>[0-9]{1,12})@(?P<domain>[^@\s]+)$")

FOOTER_TAG = "MAILD"


def _token_re(prefix: str) -> re.Pattern[str]:
    """Pattern of one token for ``prefix`` (group ``number``)."""
    prefix = prefix.strip()
    head = rf"{re.escape(prefix)}\s*#" if prefix else "#"
    return re.compile(rf"\[\s*{head}\s*(?P<number>[0-9]{{1,{_MAX_DIGITS}}})\s*\]", re.IGNORECASE)


def format_token(number: int, prefix: str = "") -> str:
    """The subject token of a ticket: ``[#592110]`` or ``[ACME #592110]``."""
    prefix = prefix.strip()
    return f"[{prefix} #{number}]" if prefix else f"[#{number}]"


def extract_token(subject: str, prefix: str = "") -> int | None:
    """The ticket number of the first token anywhere in ``subject``, or None."""
    match = _token_re(prefix).search(subject)
    return int(match.group("number")) if match else None


def strip_token(subject: str, prefix: str = "") -> str:
    """``subject`` without any token for ``prefix`` (whitespace tidied where it was)."""
    stripped = _token_re(prefix).sub(" ", subject)
    return _WHITESPACE_RE.sub(" ", stripped).strip()


def has_reply_prefix(subject: str) -> bool:
    """True when ``subject`` starts with a reply/forward prefix (after an optional token).

    Forward prefixes count: a customer forwarding their own earlier mail means the
    same request, which is what the reply-prefix threading fallback is about.
    """
    text = subject.lstrip()
    if text.startswith("["):
        # "[#592110] RE: x" is still a reply; look past a leading bracket group.
        close = text.find("]")
        if close != -1:
            text = text[close + 1 :]
    return _PREFIX_RE.match(text) is not None


def strip_prefixes(subject: str) -> str:
    """``subject`` without its leading reply/forward prefixes, trimmed."""
    return _PREFIX_RE.sub("", subject, count=1).strip()


def _remove_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def normalize_subject(subject: str, prefix: str = "") -> str:
    """The comparison form of a subject (SPEC §3): no prefixes or token, NFKC,
    no accents, case folded, whitespace collapsed.

    ``RES: Não consigo emitir NF-e`` -> ``nao consigo emitir nf-e``.
    """
    text = unicodedata.normalize("NFKC", subject)
    # Tokens and prefixes can interleave ("Re: [#1] RE: x"): peel until stable.
    previous = None
    while previous != text:
        previous = text
        text = strip_prefixes(strip_token(text, prefix))
    text = _remove_accents(text).casefold()
    text = unicodedata.normalize("NFKC", text)
    return _WHITESPACE_RE.sub(" ", text).strip()


def format_subject(number: int, subject: str, prefix: str = "") -> str:
    """Outbound subject: the token first, never doubled.

    ``Re: [#592110] x`` -> ``[#592110] x``; an empty subject gives just the token.
    """
    token = format_token(number, prefix)
    pattern = _token_re(prefix)
    text = subject
    previous = None
    while previous != text:
        previous = text
        text = strip_prefixes(text)
        match = pattern.match(text)
        if match and int(match.group("number")) == number:
            text = text[match.end() :]
    own = [m for m in pattern.finditer(text) if int(m.group("number")) == number]
    for match in reversed(own):
        text = text[: match.start()] + " " + text[match.end() :]
    text = _WHITESPACE_RE.sub(" ", text).strip()
    return f"{token} {text}" if text else token


def extract_plus_number(address: str) -> tuple[str, int] | None:
    """``suporte+592110@example.com`` -> (``suporte@example.com``, 592110), else None.

    Only a purely numeric detail counts; ``suporte+vendas@`` is not a ticket.
    """
    match = _PLUS_RE.match(address.strip().lower())
    if match is None:
        return None
    base = f"{match.group('local')}@{match.group('domain')}"
    return base, int(match.group("number"))


def format_footer_ref(number: int, prefix: str = "") -> str:
    """The reference line put in outbound plain-text footers: ``Ref: MAILD-592110``."""
    prefix = prefix.strip()
    middle = f"{prefix.upper()}-" if prefix else ""
    return f"Ref: {FOOTER_TAG}-{middle}{number}"


def _footer_re(prefix: str) -> re.Pattern[str]:
    prefix = prefix.strip()
    middle = rf"{re.escape(prefix)}-" if prefix else ""
    return re.compile(
        rf"\bRef:\s*{FOOTER_TAG}-{middle}(?P<number>[0-9]{{1,{_MAX_DIGITS}}})\b", re.IGNORECASE
    )


def extract_footer_ref(text: str, prefix: str = "") -> int | None:
    """The ticket number of the first footer reference in ``text`` (quoted or not)."""
    match = _footer_re(prefix).search(text)
    return int(match.group("number")) if match else None
