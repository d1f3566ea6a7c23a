"""Agent authentication from ``Authentication-Results`` headers (RFC 8601, SPEC §5).

Sole purpose: decide whether the trusted receiving server vouched for the sender's
domain, so that a forged ``From: agent@`` is treated as a customer's mail.

Rules written down here:

* Only the topmost header whose authserv-id equals the trusted one counts. Headers
  further down were added before our server saw the message, and anyone can write
  them; our MTA must remove forged copies carrying its own authserv-id.
* ``dkim=pass`` counts when ``header.d`` (or the domain of ``header.i``) equals the
  sender's domain; ``dmarc=pass`` counts when ``header.from`` equals it. Equality is
  exact (case-insensitive): relaxed alignment would need the public suffix list, and
  the cost of being strict is only that an agent's mail reads as a customer's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_PROPERTY_RE = re.compile(r'([A-Za-z0-9_.-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s;]+)')


def _remove_comments(value: str) -> str:
    """``value`` without RFC 5322 comments (nested, quoted strings respected)."""
    out: list[str] = []
    depth = 0
    quoted = False
    escaped = False
    for ch in value:
        if escaped:
            escaped = False
            if depth == 0:
                out.append(ch)
            continue
        if ch == "\\":
            escaped = True
            if depth == 0:
                out.append(ch)
            continue
        if quoted:
            if ch == '"':
                quoted = False
            out.append(ch)
            continue
        if ch == "(":
            depth += 1
            continue
        if ch == ")" and depth:
            depth -= 1
            if depth == 0:
                out.append(" ")
            continue
        if depth:
            continue
        if ch == '"':
            quoted = True
        out.append(ch)
    return "".join(out)


def _split_results(value: str) -> list[str]:
    """Split on ``;`` outside quoted strings."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    escaped = False
    for ch in value:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == ";" and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return [part.strip() for part in parts]


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _authserv_id(first: str) -> str:
    """The authserv-id from the first element (which may carry a version number)."""
    words = first.split()
    return words[0].lower() if words else ""


def _domain_of(value: str) -> str:
    return value.rpartition("@")[2].strip().rstrip(".").lower()


def _passes(resinfo: str, domain: str) -> bool:
    properties = [(k.lower(), _unquote(v)) for k, v in _PROPERTY_RE.findall(resinfo)]
    if not properties:
        return False
    method, result = properties[0]
    if result.lower() != "pass":
        return False
    if method == "dkim":
        keys = ("header.d", "header.i")
    elif method == "dmarc":
        keys = ("header.from",)
    else:
        return False
    return any(key in keys and _domain_of(value) == domain for key, value in properties[1:])


def agent_authenticated(
    auth_results_headers: Sequence[str], trusted_authserv_id: str, sender_domain: str
) -> bool:
    """True when the topmost trusted ``Authentication-Results`` shows ``dkim=pass``
    or ``dmarc=pass`` for ``sender_domain``.

    ``auth_results_headers`` are the header values in message order, topmost first.
    """
    trusted = trusted_authserv_id.strip().lower()
    domain = sender_domain.strip().rstrip(".").lower()
    if not trusted or not domain:
        return False
    for header in auth_results_headers:
        parts = _split_results(_remove_comments(header.replace("\r", "").replace("\n", " ")))
        if _authserv_id(parts[0]) != trusted:
            continue
        return any(_passes(part, domain) for part in parts[1:])
    return False
