"""Cut the quoted history out of an HTML reply by its structure (pure, no IO).

Sole purpose: ``cut_quoted_html``. Mail clients mark the history they quote in
the HTML itself, and that mark is far more reliable than guessing in the text
after conversion, where the quote has lost its ``>`` and the attribution is just
another line:

* Outlook (desktop, web, new Outlook): ``div#divRplyFwdMsg`` (``x_`` prefixed when
  the reply was itself quoted), ``hr#stopSpelling`` (Outlook.com),
  ``div#mail-editor-reference-message-container``, and the header block's
  ``<div style="border:none;border-top:solid #E1E1E1 1.0pt…">`` whose text starts
  with ``From:/De:/Von:…``: everything from there down is history.
* Gmail ``div.gmail_quote`` (with its ``gmail_attr`` attribution), Apple Mail and
  iOS ``blockquote[type=cite]``, Thunderbird ``div.moz-cite-prefix`` plus its
  ``blockquote[type=cite]``, Yahoo ``div.yahoo_quoted``, mail.ru
  ``div.mail-quote-collapse`` and ``blockquote`` with its left border, Yandex
  ``blockquote`` after an attribution ``<div>… &lt;addr&gt;:</div>``: these
  containers go, and so does a short attribution right above them.

A quote holding a forwarded message (``Forwarded message``, ``Begin forwarded
message:``, Thunderbird's ``moz-forward-container``) is content and stays.

Why selectolax (Lexbor): an HTML5 tree builder reads the broken markup mail
clients send the way a browser does, never raises, and exposes siblings and
parents so "this node and everything after it" is a short walk. The stdlib's
``html.parser`` (what html2text uses) gives only events, not a tree; lxml's
libxml2 parser is not HTML5 (it re-parents unclosed ``<div>``s differently from
the client that wrote them) and refuses some inputs ("Document is empty").
"""

from __future__ import annotations

import re

from maild.parsers.quoted_headers import QUOTED_HEADER_FIELDS
from selectolax.lexbor import LexborHTMLParser, LexborNode

# Everything from these down is history (Outlook: the header div is followed by the
# quoted body as siblings, not inside it).
_CUT_FROM = (
    "#divRplyFwdMsg",
    "#x_divRplyFwdMsg",
    "hr#stopSpelling",
    "#mail-editor-reference-message-container",
)
# These containers are the quote.
_QUOTE_CONTAINERS = (
    ".gmail_quote",
    ".gmail_quote_container",
    "div.moz-cite-prefix",
    "blockquote[type=cite]",
    "[class*=yahoo_quoted]",
    "[id*=yahoo_quoted]",
    ".mail-quote-collapse",
    "blockquote[style*=border-left]",
    ".protonmail_quote",
    ".zmail_extra",
)
_FORWARD_HINT = re.compile(
    r"(?:forwarded message|mensagem encaminhada|mensaje reenviado|message transf[ée]r[ée]"
    r"|weitergeleitete nachricht|messaggio inoltrato|doorgestuurd bericht"
    r"|begin forwarded message|in[íi]cio da mensagem encaminhada|inicio del mensaje reenviado"
    r"|пересылаемое сообщение|пересланное сообщение)",
    re.IGNORECASE,
)
_HEADER_START = re.compile(
    r"^\s*(?:"
    + "|".join(re.escape(k) for k in sorted(QUOTED_HEADER_FIELDS, key=len, reverse=True))
    + r")\s*:",
    re.IGNORECASE,
)
_ATTRIBUTION_MAX_CHARS = 300
_SKIPPABLE = frozenset({"-text", "br", "#comment", "_em_comment"})


def cut_quoted_html(html: str) -> str | None:
    """``html`` without the quoted history, or None when no quote structure was found."""
    if not html or "<" not in html:
        return None
    try:
        tree = LexborHTMLParser(html)
        body = tree.body
        if body is None:
            return None
        found = _cut(tree)
        if not found:
            return None
        return body.html or ""
    except Exception:  # a structure pass must never cost the message its text
        return None


def _cut(tree: LexborHTMLParser) -> bool:
    found = False
    for selector in _CUT_FROM:
        node = tree.css_first(selector)
        if node is not None and not _is_forward(node):
            _cut_from(node)
            found = True
    for node in tree.css('div[style*="border-top"]'):
        style = (node.attributes.get("style") or "").replace(" ", "").lower()
        if "border-top:solid" in style and _HEADER_START.match(node.text(separator="\n") or ""):
            if not _is_forward(node):
                _cut_from(node)
                found = True
            break
    for selector in _QUOTE_CONTAINERS:
        for node in tree.css(selector):
            if _is_forward(node):
                continue
            _drop_attribution_before(node)
            if node.tag == "div" and "moz-cite-prefix" in (node.attributes.get("class") or ""):
                following = _next_element(node)
                if following is not None and following.tag == "blockquote":
                    following.decompose()
            node.decompose()
            found = True
    if not found:
        # Yandex, mail.ru and older webmails: a plain blockquote under an attribution.
        for node in tree.css("blockquote"):
            previous = _previous_element(node)
            if previous is not None and _is_attribution(previous):
                previous.decompose()
                node.decompose()
                found = True
    return found


def _is_forward(node: LexborNode) -> bool:
    if "moz-forward-container" in (node.attributes.get("class") or ""):
        return True
    head = (node.text(separator="\n") or "")[:400]
    if _FORWARD_HINT.search(head):
        return True
    previous = _previous_element(node)
    return previous is not None and bool(
        _FORWARD_HINT.search((previous.text(separator="\n") or "")[-200:])
    )


def _cut_from(node: LexborNode) -> None:
    """Remove ``node`` and everything after it in document order (and an <hr> above it)."""
    current: LexborNode | None = node
    while current is not None and current.tag not in ("body", "html"):
        sibling = current.next
        while sibling is not None:
            following = sibling.next
            sibling.decompose()
            sibling = following
        current = current.parent
    previous = _previous_element(node)
    if previous is not None and previous.tag == "hr":
        previous.decompose()
    node.decompose()


def _drop_attribution_before(node: LexborNode) -> None:
    previous = _previous_element(node)
    if previous is not None and _is_attribution(previous):
        previous.decompose()


def _is_attribution(node: LexborNode) -> bool:
    """A short element ending in ":" that names an address or a date."""
    if node.tag in ("blockquote", "table", "ul", "ol"):
        return False
    text = " ".join((node.text(separator=" ") or "").split())
    if not text or len(text) > _ATTRIBUTION_MAX_CHARS or not text.endswith(":"):
        return False
    return "@" in text or any(ch.isdigit() for ch in text)


def _previous_element(node: LexborNode) -> LexborNode | None:
    current = node.prev
    while current is not None:
        if current.tag not in _SKIPPABLE:
            return current
        if current.tag == "-text" and (current.text_content or "").strip():
            return current
        current = current.prev
    return None


def _next_element(node: LexborNode) -> LexborNode | None:
    current = node.next
    while current is not None:
        if current.tag not in _SKIPPABLE:
            return current
        if current.tag == "-text" and (current.text_content or "").strip():
            return current
        current = current.next
    return None
