"""Turn the HTML body of a mail into plain readable text (pure, no IO).

Sole purpose: ``html_to_text``. HTML-only mail (Outlook web, many phones and
marketing tools) must still give maild a text to store, strip and relay, so the
HTML is rendered with html2text configured for people rather than Markdown:
no images, no emphasis markers, no link targets, no line wrapping.
"""

from __future__ import annotations

import re
import warnings

import html2text

# html2text escapes Markdown-sensitive characters (``1\.``, ``\-``, ``\\``) in text
# data. Every literal backslash before one of these characters is itself doubled,
# so one left-to-right pass of "backslash + char -> char" is the exact inverse.
_MD_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!])")
_HEADING = re.compile(r"^#{1,6} +", re.MULTILINE)
_TRAILING_SPACE = re.compile(r"[ \t]+$", re.MULTILINE)
_BLANK_RUNS = re.compile(r"\n{3,}")
# With tables ignored, html2text glues adjacent cells together ("ab"): keep a gap.
_CELL_END = re.compile(r"</t[dh]\s*>", re.IGNORECASE)


def _converter() -> html2text.HTML2Text:
    converter = html2text.HTML2Text()
    converter.body_width = 0  # never re-wrap the sender's lines
    converter.ignore_images = True
    converter.ignore_emphasis = True  # no ** and _ around bold/italic text
    converter.ignore_links = True  # keep the anchor text only (pasted URLs are their own text)
    converter.ignore_tables = True  # Outlook lays whole messages out in tables
    converter.unicode_snob = True  # keep accents and typographic characters as they are
    converter.single_line_break = True  # Outlook wraps every line in its own <p>
    converter.ul_item_mark = "-"
    return converter


def html_to_text(html: str) -> str:
    """Render ``html`` as plain text; never raises (returns "" when nothing is readable)."""
    if not html or not html.strip():
        return ""
    try:
        with warnings.catch_warnings():
            # html2text is pure Python; a warning from its HTML parser on odd markup
            # must not turn into an error under a strict warnings filter.
            warnings.simplefilter("ignore")
            text = _converter().handle(_CELL_END.sub(r" \g<0>", html))
    except Exception:  # malformed markup must never stop a message from being processed
        text = re.sub(r"<[^>]*>", " ", html)
    text = _MD_ESCAPE.sub(r"\1", text)
    text = _HEADING.sub("", text)
    text = text.replace("\u00a0", " ")
    text = _TRAILING_SPACE.sub("", text)
    text = _BLANK_RUNS.sub("\n\n", text)
    return text.strip("\n")
