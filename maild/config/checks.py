"""Value checks for settings keys: each takes a TOML value of the right type and returns
a problem (the part of the message after ``key: ``) or None."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email

Check = Callable[[Any], str | None]

LANGUAGES = ("pt_BR", "en")
LOG_LEVELS = ("debug", "info", "warning", "error")
SECURITY_MODES = ("tls", "starttls", "none")
FOLLOWUP_POLICIES = ("reject", "reopen", "new_ticket")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
AGENT_AUTH_MODES = ("from", "authentication-results")
AUTH_MODES = ("password", "xoauth2")  # SPEC §14
OAUTH_PROVIDERS = ("google", "microsoft", "generic")
BLOB_STORES = ("database", "files")
CUSTOMER_MODES = ("anyone", "known")
LISTENER_PROTOCOLS = ("lmtp", "smtp")

# Free-mail providers: sharing one of these domains says nothing about being a colleague.
FREE_MAIL_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "hotmail.com",
        "hotmail.com.br",
        "outlook.com",
        "outlook.com.br",
        "live.com",
        "msn.com",
        "yahoo.com",
        "yahoo.com.br",
        "ymail.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "aol.com",
        "proton.me",
        "protonmail.com",
        "gmx.com",
        "gmx.net",
        "uol.com.br",
        "bol.com.br",
        "terra.com.br",
        "ig.com.br",
        "globo.com",
        "globomail.com",
        "r7.com",
        "zipmail.com.br",
    }
)

_KEY_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_HHMM_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_DURATION_RE = re.compile(r"^(\d+d)?(\d+h)?(\d+m)?$")


def is_free_mail(domain: str) -> bool:
    """True for public free-mail domains (``yahoo.com.*`` included)."""
    domain = domain.lower()
    return domain in FREE_MAIL_DOMAINS or domain.startswith("yahoo.")


def is_email(value: str) -> bool:
    """RFC 5321/5322 address syntax (and IDNA domains) by email-validator, the maintained
    checker; no DNS lookup: settings are validated offline."""
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


def one_of(choices: tuple[str, ...]) -> Check:
    def check(value: Any) -> str | None:
        if value not in choices:
            return f"{value!r} is not one of: {', '.join(choices)}"
        return None

    return check


def positive(value: Any) -> str | None:
    return None if value > 0 else f"must be greater than 0, got {value}"


def non_negative(value: Any) -> str | None:
    return None if value >= 0 else f"must be 0 or more, got {value}"


def header_bytes(value: Any) -> str | None:
    # Below a few KiB ordinary mail (DKIM, Received chains) would count as a bomb.
    return None if value >= 4096 else f"must be at least 4096, got {value}"


def port(value: Any) -> str | None:
    return None if 0 < value < 65536 else f"{value} is not a TCP port (1-65535)"


def non_empty(value: Any) -> str | None:
    return None if value.strip() else "must not be empty"


def http_url(value: Any) -> str | None:
    if not re.match(r"^https?://[^/\s]+", value):
        return f"{value!r} is not an http(s) URL"
    return None


def timezone(value: Any) -> str | None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return f"{value!r} is not a known time zone (e.g. America/Sao_Paulo)"
    return None


def hhmm(value: Any) -> str | None:
    return None if _HHMM_RE.match(value) else f"{value!r} is not a time of day HH:MM"


def break_span(value: Any) -> str | None:
    start, sep, end = value.partition("-")
    if not sep or hhmm(start) or hhmm(end) or start >= end:
        return f"{value!r} is not a break like '12:00-13:30'"
    return None


def duration(value: Any) -> str | None:
    if not value or not _DURATION_RE.match(value):
        return f"{value!r} is not a duration like '4h', '30m', '1h30m' or '6d'"
    return None


def db_url(value: Any) -> str | None:
    if not re.match(r"^(sqlite|postgres|postgresql)://", value):
        return f"{value!r}: use sqlite:///path or postgresql://user@host/db"
    if urlsplit(value).password is not None:
        return (
            "has a password in it; secrets are not kept in settings.toml: "
            "use database.password_file or database.password_env"
        )
    return None


def with_password(url: str, password: str) -> str:
    """``url`` with ``password`` put in its user part (the driver reads it from there)."""
    parts = urlsplit(url)
    if not parts.scheme.startswith("postgres"):
        return url  # SQLite has no password
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{user}:{quote(password, safe='')}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def email(value: str) -> str | None:
    return None if is_email(value) else f"{value!r} is not an email address"


def department_key(value: str) -> str | None:
    if not _KEY_RE.match(value):
        return f"{value!r} must be lowercase letters, digits, '-' or '_'"
    return None


def token_prefix(value: str) -> str | None:
    if value and not re.match(r"^[A-Za-z][A-Za-z0-9-]{0,19}$", value):
        return f"{value!r} must be letters, digits or '-' (at most 20), starting with a letter"
    return None


def number_digits(value: int) -> str | None:
    return None if 4 <= value <= 12 else f"{value} must be between 4 and 12"


def extension(value: str) -> str | None:
    if not re.match(r"^[a-z0-9]{1,10}$", value):
        return f"{value!r} must be a lowercase extension without a dot"
    return None


def fernet_key_problem(key: bytes) -> str | None:
    from cryptography.fernet import Fernet  # imported when an xoauth2 account is read

    try:
        Fernet(key)
    except ValueError:
        return (
            "is not a Fernet key (32 url-safe base64-encoded bytes); "
            "make one with `maild oauth generate-key`"
        )
    return None


def holidays_code(value: str) -> str | None:
    if not value:
        return None
    import holidays  # slow to import; only when a country is set

    country, _, subdiv = value.partition("-")
    supported = holidays.list_supported_countries()
    if country not in supported:
        return f"{value!r} is not a country code known to the holidays package (e.g. 'BR')"
    if subdiv and subdiv not in supported[country]:
        return f"{value!r}: {subdiv!r} is not a subdivision of {country}"
    return None
