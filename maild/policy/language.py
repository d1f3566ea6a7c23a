"""Which language a customer writes in, to answer them in it (issue 12).

Pure: a parsed message in, one of the shipped languages (or None) out. The
mail's own ``Content-Language`` wins, then ``Accept-Language`` (Outlook and
some web mailers send it), then the words of the subject and text when they
clearly lean one way. Nothing clear: None, and the desk's ``daemon.language``
applies.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from maild.parsers.types import ParsedMessage

# Primary language subtag -> our template directory.
TAGS = {"pt": "pt_BR", "en": "en"}

_WORD_RE = re.compile(r"[^\W\d_]+", re.UNICODE)


# Short, frequent words that exist in only one of the two languages.
def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


STOPWORDS = {
    "pt_BR": _words(
        "de que não para com uma é da em os na meu minha obrigado obrigada olá "
        "bom dia boa tarde por favor está você consigo preciso ajuda nota sistema "
        "quando ao aos das dos também mas já muito isso esse essa"
    ),
    "en": _words(
        "the and is to of my you not it this please thanks thank hello with for have "
        "can cannot on we our your would could there from when does"
    ),
}
# A text decides only with this many hits, and twice as many as the other language.
MIN_HITS = 3


def _from_tags(value: str | None, available: Sequence[str]) -> str | None:
    """First tag of a Content-Language / Accept-Language value we can answer in."""
    if not value:
        return None
    weighted = []
    for index, item in enumerate(value.split(",")):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        match = re.search(r"q=([0-9.]+)", params)
        if match:
            try:
                quality = float(match.group(1))
            except ValueError:
                quality = 0.0
        weighted.append((-quality, index, tag.strip().lower()))
    for _q, _i, tag in sorted(weighted):
        language = TAGS.get(tag.split("-", 1)[0].split("_", 1)[0])
        if language in available:
            return language
    return None


def detect_text_language(text: str, available: Sequence[str]) -> str | None:
    words = [w.casefold() for w in _WORD_RE.findall(text[:5000])]
    hits = {lang: sum(1 for w in words if w in STOPWORDS[lang]) for lang in STOPWORDS}
    best = max(hits, key=lambda lang: hits[lang])
    others = max((n for lang, n in hits.items() if lang != best), default=0)
    if hits[best] >= MIN_HITS and hits[best] >= 2 * others and best in available:
        return best
    return None


def detect_language(parsed: ParsedMessage, text: str, available: Sequence[str]) -> str | None:
    """The language to answer ``parsed`` in, or None when the mail does not say."""
    for header in ("content-language", "accept-language"):
        language = _from_tags(parsed.header(header), available)
        if language is not None:
            return language
    return detect_text_language(f"{parsed.subject}\n{text}", available)
