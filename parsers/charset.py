"""Decode text bytes whatever their label says: declared charset, UTF-8, Windows-1252.

Mail lies about its charset often (UTF-8 labelled Latin-1, labels no codec
knows, codecs that are not charsets at all); these functions always return
text, and say when the label could not be used as is.
"""

from __future__ import annotations

import codecs
import re

_WESTERN_SINGLE_BYTE = frozenset({"ascii", "iso8859-1", "cp1252", "iso8859-15"})
# Labels real mailers use that Python's codec registry does not know (or knows wrongly).
_CHARSET_ALIASES = {
    "ks_c_5601-1987": "cp949",
    "iso-8859-8-i": "iso-8859-8",
    "x-mac-roman": "mac_roman",
    "macintosh": "mac_roman",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "x-sjis": "shift_jis",
    "unicode-1-1-utf-7": "utf-7",
    "ansi": "cp1252",
    "windows-1252": "cp1252",
}
# Labels that mean "unknown" rather than naming a charset.
_NO_CHARSET = frozenset({"unknown-8bit", "x-unknown", "unknown", "default", "none", ""})
# Registered codecs that are not charsets a mail could legitimately be written in.
_FORBIDDEN_CODECS = frozenset(
    {"unicode_escape", "raw_unicode_escape", "idna", "punycode", "undefined", "mbcs", "oem"}
)
# Lone surrogates: the stdlib parser's escapes of bytes it could not decode.
SURROGATE = re.compile("[\ud800-\udfff]")


def decode_text(data: bytes, declared: str | None) -> str:
    """Decode body bytes with the fallback chain (declared charset, UTF-8, Windows-1252);
    never raises, whatever the label says (``idna``, ``rot13``, garbage)."""
    try:
        return decode_bytes(data, declared)[0]
    except Exception:
        return clean(data.decode("cp1252", "replace"))


def codec_for(label: str | None) -> str | None:
    """Python codec name for a MIME charset label, or None when unknown/unusable."""
    if label is None:
        return None
    cleaned = label.strip().strip("\"'").strip().lower()
    cleaned = _CHARSET_ALIASES.get(cleaned, cleaned)
    if cleaned in _NO_CHARSET:
        return None
    try:
        info = codecs.lookup(cleaned)
    except (LookupError, ValueError):
        return None
    if (
        not getattr(info, "_is_text_encoding", True)
        or info.name.replace("-", "_") in _FORBIDDEN_CODECS
    ):
        return None
    return info.name


def decode_bytes(data: bytes, declared: str | None) -> tuple[str, str | None]:
    """Decode text bytes: declared charset, then UTF-8, then Windows-1252.

    Returns the text and a note when the declared charset could not be used as is.
    Text labelled ASCII/ISO-8859-1/Windows-1252 that is valid non-ASCII UTF-8 is
    read as UTF-8: mislabelled UTF-8 is common, Latin-1 text that happens to be
    valid UTF-8 practically never happens.
    """
    if not data:
        return "", None
    codec = codec_for(declared)
    label = (declared or "").strip()[:40]
    unknown = codec is None and bool(label) and label.lower() not in _NO_CHARSET
    if codec is None or codec in _WESTERN_SINGLE_BYTE:
        if data.isascii():
            return clean(data.decode("ascii")), None
        utf8 = _try_decode(data, "utf-8")
        if utf8 is not None:
            if codec is not None:
                return clean(utf8), f"labelled {label!r} but is UTF-8"
            return clean(utf8), (
                f"unknown charset {label!r}; decoded as UTF-8" if unknown else None
            )
        if codec == "iso8859-15":
            return clean(data.decode(codec)), None
        if codec in ("iso8859-1", "cp1252"):
            # ISO-8859-1 labels on Windows text: cp1252 is the superset senders mean.
            text = _try_decode(data, "cp1252")
            return clean(text if text is not None else data.decode("latin-1")), None
        if codec == "ascii":
            note = f"labelled {label!r} but has 8-bit bytes; decoded as Windows-1252"
        elif unknown:
            note = f"unknown charset {label!r}; decoded as Windows-1252"
        else:
            note = "8-bit text without a charset; decoded as Windows-1252"
        return clean(data.decode("cp1252", "replace")), note
    text = _try_decode(data, codec)
    if text is not None:
        return clean(text), None
    utf8 = _try_decode(data, "utf-8")
    if utf8 is not None:
        return clean(utf8), f"not valid {label!r}; decoded as UTF-8"
    return clean(data.decode("cp1252", "replace")), f"not valid {label!r}; decoded as Windows-1252"


def _try_decode(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec)
    except (UnicodeError, LookupError, ValueError):
        return None


def clean(text: str) -> str:
    """Drop NULs and stray surrogates: databases and JSON refuse them."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    return SURROGATE.sub("\ufffd", text) if SURROGATE.search(text) else text


def tidy_text(text: str) -> str:
    """Text as stored: clean, LF line ends, no leading blank lines or trailing space."""
    text = clean(text).replace("\r\n", "\n").replace("\r", "\n")
    return text.strip("\n").rstrip()
