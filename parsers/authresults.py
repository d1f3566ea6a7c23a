"""Agent authentication from ``Authentication-Results`` headers (RFC 8601, SPEC §5).

Sole purpose: decide whether the trusted receiving server vouched for the sender's
domain, so that a forged ``From: agent@`` is treated as a customer's mail.

The header grammar (comments, quoted strings, versions, ptypes) is parsed by
``authres``, the maintained RFC 8601 parser (also used by dkimpy/authheaders); the
rules below are ours:

* Only the topmost header whose authserv-id equals the trusted one counts. Headers
  further down were added before our server saw the message, and anyone can write
  them; our MTA must remove forged copies carrying its own authserv-id.
* ``dkim=pass`` counts when ``header.d`` (or the domain of ``header.i``) equals the
  sender's domain; ``dmarc=pass`` counts when ``header.from`` equals it. Equality is
  exact (case-insensitive): relaxed alignment would need the public suffix list, and
  the cost of being strict is only that an agent's mail reads as a customer's.
* A header that does not parse proves nothing: it is skipped like a foreign one.
"""

from __future__ import annotations

from collections.abc import Sequence

import authres

_ALIGNED = {"dkim": ("header.d", "header.i"), "dmarc": ("header.from",)}


def _domain_of(value: str) -> str:
    return value.rpartition("@")[2].strip().rstrip(".").lower()


def _parse(value: str) -> authres.AuthenticationResultsHeader | None:
    text = value.replace("\r", "").replace("\n", " ")
    try:
        return authres.AuthenticationResultsHeader.parse_value(text)
    except Exception:  # authres raises several SyntaxError flavours; all mean "unusable"
        return None


def _passes(result: authres.AuthenticationResult, domain: str) -> bool:
    keys = _ALIGNED.get(str(result.method).lower())
    if keys is None or str(result.result).lower() != "pass":
        return False
    return any(
        f"{p.type}.{p.name}".lower() in keys and _domain_of(str(p.value)) == domain
        for p in result.properties
    )


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
    for value in auth_results_headers:
        header = _parse(value)
        if header is None or str(header.authserv_id).lower() != trusted:
            continue
        return any(_passes(result, domain) for result in header.results)
    return False
