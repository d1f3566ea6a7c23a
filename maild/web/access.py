"""Who may see and change a ticket page: link checks, form tokens, response headers.

Pure functions and constants, no aiohttp handlers. The quick-access key is the
only credential, so it is compared in constant time, never logged, and kept out
of ``Referer`` by the ``Referrer-Policy``. Form tokens bind every POST to a page
this process rendered for that ticket and key, so a form on another site cannot
post here even when it knows the link.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Mapping
from urllib.parse import quote, urlsplit

# Ticket numbers are BIGINT; more digits than this cannot name a ticket.
_NUMBER_RE = re.compile(r"[0-9]{1,18}")
# Keys are URL-safe base64 (storage.tickets.new_access_key); anything else is wrong.
_KEY_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")
_CONTENT_TYPE_RE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}")
# Compared against when the number names no ticket, so both misses take the same path.
_NO_KEY = b"-" * 32

FORM_TOKEN_PURPOSE = b"maild-web-form-v1"

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
# Downloads are never rendered as our page, even if a browser ignores the disposition.
DOWNLOAD_CSP = CSP + "; sandbox"

SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
NO_STORE = "no-store"
SERVER_NAME = "maild"


def parse_number(text: str) -> int | None:
    """The ticket number in a path segment, or None (ASCII digits only)."""
    return int(text) if _NUMBER_RE.fullmatch(text) else None


def plausible_key(text: str) -> bool:
    return bool(_KEY_RE.fullmatch(text))


def key_matches(given: str, stored: str | None) -> bool:
    """Constant-time comparison of the key in the URL with the ticket's key.

    ``stored`` is None when the number names no ticket: the comparison still
    runs, so a missing ticket and a wrong key cost the same.
    """
    expected = stored.encode("utf-8") if stored else _NO_KEY
    same = hmac.compare_digest(given.encode("utf-8"), expected)
    return same and stored is not None


class FormTokens:
    """HMAC tokens over (ticket number, key) with a secret of this process.

    A token is valid for every form of one ticket page until the key rotates or
    the process restarts (then the page just needs a reload).
    """

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("form token secret must be at least 16 bytes")
        self._secret = secret

    def issue(self, number: int, key: str) -> str:
        message = FORM_TOKEN_PURPOSE + b"\0" + str(number).encode() + b"\0" + key.encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def check(self, token: str, number: int, key: str) -> bool:
        return hmac.compare_digest(token.encode("utf-8"), self.issue(number, key).encode())


def cross_site(headers: Mapping[str, str], host: str, base_url: str) -> bool:
    """True when the browser says a POST comes from another site.

    ``Sec-Fetch-Site`` is trusted when present. ``Origin: null`` is normal here:
    with ``Referrer-Policy: no-referrer`` browsers send it on our own form posts.
    """
    fetch_site = headers.get("Sec-Fetch-Site", "").lower()
    if fetch_site in ("cross-site", "same-site"):
        return True
    origin = headers.get("Origin", "")
    if not origin or origin == "null":
        return False
    netloc = urlsplit(origin).netloc.lower()
    allowed = {host.lower(), urlsplit(base_url).netloc.lower()}
    return netloc not in allowed


def safe_content_type(value: str) -> str:
    """The stored content type when it is a plain ``type/subtype``, else octet-stream."""
    value = value.strip().lower()
    return value if _CONTENT_TYPE_RE.fullmatch(value) else "application/octet-stream"


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII fallback name and the RFC 5987 UTF-8 name."""
    cleaned = "".join(ch for ch in filename if unicodedata.category(ch)[0] != "C") or "file"
    fallback = unicodedata.normalize("NFKD", cleaned).encode("ascii", "ignore").decode("ascii")
    fallback = re.sub(r"[^A-Za-z0-9._ ()+-]", "_", fallback).strip() or "file"
    encoded = quote(cleaned, safe="")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"
