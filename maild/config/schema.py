"""The settings schema: every key of settings.toml, declared once.

Each section is a frozen dataclass; each key is one field made by :func:`setting`,
holding its default, its TOML type, its check and one line of documentation (the way
Mailman's ``config/schema.cfg`` keeps key, default and doc together). ``reader.py``
reads any section from these fields, and ``docs.py`` writes docs/configuration.md
from them. Defaults that depend on other keys (a port by security, a name by its
key) are filled by the section's hook in ``reader.py`` and say so in ``shown``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maild.config import checks as c
from maild.config.checks import Check


@dataclass(frozen=True)
class Key:
    """How one settings key is read and documented."""

    kind: type  # the TOML type: str, int, bool, or list (of strings)
    doc: str
    check: Check | None = None  # for a list: the check of each item
    required: bool = False
    secret: bool = False  # read from <key>_file or <key>_env, never from <key>
    path: bool = False  # a str resolved against the settings file's folder
    lower: bool = False  # addresses: kept lowercase
    shown: str | None = None  # the default as docs show it, when computed


_NO_DEFAULT: Any = dataclasses.MISSING


def setting(
    default: Any = _NO_DEFAULT,
    *,
    kind: type,
    doc: str,
    check: Check | None = None,
    secret: bool = False,
    path: bool = False,
    lower: bool = False,
    shown: str | None = None,
    optional: bool = False,
) -> Any:
    """A dataclass field that is a settings key; without ``default`` the key is required,
    unless ``optional`` (its default computed by the section's hook, see ``shown``)."""
    required = default is _NO_DEFAULT and not optional
    spec = Key(kind, doc, check, required, secret, path, lower, shown)
    return field(default=default, repr=not secret, metadata={"key": spec})


def keys(cls: type) -> list[tuple[str, Key, Any]]:
    """(name, Key, default) of each settings key of a section, in file order."""
    return [
        (f.name, f.metadata["key"], f.default)
        for f in dataclasses.fields(cls)
        if "key" in f.metadata
    ]


def toml_names(cls: type) -> set[str]:
    """Every key a section's table may hold (a secret as <key>, <key>_file, <key>_env)."""
    names: set[str] = set()
    for name, spec, _ in keys(cls):
        names |= {name, f"{name}_file", f"{name}_env"} if spec.secret else {name}
    return names


@dataclass(frozen=True)
class DaemonSettings:
    instance: str = setting(
        "maild",
        kind=str,
        check=c.non_empty,
        doc='display name on outbound mail (`From: "Acme Suporte" <suporte@…>`) and pages',
    )
    base_url: str = setting(
        "http://127.0.0.1:8080",
        kind=str,
        check=c.http_url,
        doc="public URL of the web view; quick-access links are `{base_url}/t/{number}/{key}`",
    )
    data_dir: Path = setting(  # noqa: RUF009 (a field, not a shared default)
        Path("var"),
        kind=str,
        path=True,
        doc="raw mail (`raw/`), attachments (`attachments/`), Maildir outbox (`outbox/`), "
        "default SQLite file",
    )
    language: str = setting(
        "pt_BR",
        kind=str,
        check=c.one_of(c.LANGUAGES),
        doc="`pt_BR` or `en`: customer mail and web pages",
    )
    timezone: str = setting(
        "America/Sao_Paulo",
        kind=str,
        check=c.timezone,
        doc="business hours and dates shown in mail",
    )
    templates_dir: Path | None = setting(  # noqa: RUF009
        None,
        kind=str,
        path=True,
        doc="folder searched before the shipped `templates/` (`<dir>/<language>/<name>.txt.j2`)",
    )
    domain: str = setting(
        "",
        kind=str,
        shown="first department address's domain",
        doc="domain of the Message-IDs maild creates",
    )
    log_level: str = setting(
        "info",
        kind=str,
        check=c.one_of(c.LOG_LEVELS),
        doc="`debug`, `info`, `warning` or `error` for `maild run` and `maild ingest` (the "
        "environment variable `MAILD_LOG_LEVEL` overrides it); other commands log warnings only",
    )


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = setting(
        "",
        kind=str,
        check=c.db_url,
        shown="`sqlite:///{data_dir}/maild.sqlite3`",
        doc="`sqlite:///relative/path`, `sqlite:////absolute/path` or "
        "`postgresql://user@host[:port]/db`; a password in the URL is an error",
    )
    password: str | None = setting(None, kind=str, secret=True, doc="the PostgreSQL password")


@dataclass(frozen=True, kw_only=True)
class OAuthKeys:
    """The keys an [[imap]] source or [smtp] takes with ``auth = "xoauth2"`` (SPEC §14);
    ``reader.read_oauth`` turns them into :class:`OAuthSettings`."""

    oauth_provider: str = setting(
        kind=str,
        check=c.one_of(c.OAUTH_PROVIDERS),
        doc="`google`, `microsoft` or `generic`",
    )
    client_id: str = setting(kind=str, check=c.non_empty, doc="the app registration's id")
    client_secret: str | None = setting(
        None,
        kind=str,
        secret=True,
        doc="the app's secret; Microsoft public clients (device code) have none",
    )
    tenant: str = setting(
        "",
        kind=str,
        check=c.non_empty,
        shown='`"common"` for microsoft',
        doc="Microsoft only: tenant id or domain (`organizations`, `contoso.com`)",
    )
    token_endpoint: str | None = setting(
        None,
        kind=str,
        check=c.http_url,
        shown="filled for google/microsoft",
        doc="`generic` needs it",
    )
    authorization_endpoint: str | None = setting(
        None,
        kind=str,
        check=c.http_url,
        shown="filled for google/microsoft",
        doc="browser redirect to 127.0.0.1 for `maild oauth authorize`; `generic` needs it "
        "or `device_authorization_endpoint`",
    )
    device_authorization_endpoint: str | None = setting(
        None,
        kind=str,
        check=c.http_url,
        shown="filled for microsoft",
        doc="with it `maild oauth authorize` shows a code instead of using a browser redirect",
    )
    scopes: tuple[str, ...] | None = setting(
        None,
        kind=list,
        check=c.non_empty,
        shown='Google `["https://mail.google.com/"]`; Microsoft `IMAP.AccessAsUser.All`, '
        "`SMTP.Send`, `offline_access` on `https://outlook.office.com/`",
        doc="what the tokens may do",
    )
    oauth_key_file: str = setting(
        kind=str,
        check=c.non_empty,
        doc="a Fernet key (`maild oauth generate-key`) encrypting the tokens kept in the "
        "database; the same file for every instance",
    )


# Keys an [[imap]] source or [smtp] takes for auth = "xoauth2" (SPEC §14).
OAUTH_KEYS = frozenset({"auth"} | toml_names(OAuthKeys))


@dataclass(frozen=True)
class OAuthSettings:
    """XOAUTH2 for one account (an [[imap]] source or [smtp]); endpoints already filled
    for google/microsoft. ``key`` encrypts the stored tokens (from ``oauth_key_file``)."""

    provider: str
    client_id: str
    token_endpoint: str
    authorization_endpoint: str = ""
    device_authorization_endpoint: str = ""  # "" when the provider offers no device flow
    scopes: tuple[str, ...] = ()
    tenant: str = ""
    client_secret: str | None = field(repr=False, default=None)
    key: bytes = field(repr=False, default=b"")


_AUTH_DOC = (
    "`password`, or `xoauth2` for Gmail / Microsoft 365 (SPEC §14, [oauth.md](oauth.md), "
    "the OAuth2 keys below)"
)


@dataclass(frozen=True)
class ImapSource:
    name: str = setting(kind=str, check=c.non_empty, doc="names the source (unique)")
    host: str = setting(kind=str, check=c.non_empty, doc="IMAP server")
    username: str = setting(kind=str, check=c.non_empty, doc="login")
    password: str = setting(
        "",
        kind=str,
        secret=True,
        shown='— (required with `auth = "password"`)',
        doc="the login's password",
    )
    auth: str = setting("password", kind=str, check=c.one_of(c.AUTH_MODES), doc=_AUTH_DOC)
    oauth: OAuthSettings | None = None
    port: int = setting(993, kind=int, check=c.port, shown="993 for tls, else 143", doc="IMAP port")
    security: str = setting(
        "tls",
        kind=str,
        check=c.one_of(c.SECURITY_MODES),
        doc="`tls`, `starttls` or `none`",
    )
    folder: str = setting("INBOX", kind=str, check=c.non_empty, doc="folder read")
    processed_folder: str | None = setting(None, kind=str, doc="mail is moved there once stored")
    failed_folder: str | None = setting(None, kind=str, doc="quarantined mail is moved there")
    idle: bool = setting(True, kind=bool, doc="IMAP IDLE; else polling")
    poll_seconds: int = setting(60, kind=int, check=c.positive, doc="between polls")


@dataclass(frozen=True)
class ListenerSettings:
    enabled: bool = setting(True, kind=bool, doc="the embedded LMTP/SMTP ingress")
    protocol: str = setting(
        "lmtp", kind=str, check=c.one_of(c.LISTENER_PROTOCOLS), doc="`lmtp` or `smtp`"
    )
    host: str = setting(
        "127.0.0.1",
        kind=str,
        check=c.non_empty,
        doc="where it listens; only department addresses are accepted as recipients",
    )
    port: int = setting(8025, kind=int, check=c.port, doc="where it listens")


@dataclass(frozen=True)
class SmtpSettings:
    host: str = setting(kind=str, check=c.non_empty, doc="relay")
    port: int = setting(
        587, kind=int, check=c.port, shown="465/587/25 by security", doc="relay port"
    )
    security: str = setting(
        "starttls",
        kind=str,
        check=c.one_of(c.SECURITY_MODES),
        doc="`tls`, `starttls` or `none`; TLS failures never fall back to plaintext",
    )
    username: str | None = setting(None, kind=str, doc="optional AUTH; required with `xoauth2`")
    password: str | None = setting(
        None, kind=str, secret=True, doc="required when `username` is set with `password`"
    )
    timeout_seconds: int = setting(30, kind=int, check=c.positive, doc="per connection")
    auth: str = setting("password", kind=str, check=c.one_of(c.AUTH_MODES), doc=_AUTH_DOC)
    connections: int = setting(
        2, kind=int, check=c.positive, doc="SMTP connections the sender uses in parallel"
    )
    oauth: OAuthSettings | None = None


@dataclass(frozen=True)
class WebSettings:
    enabled: bool = setting(True, kind=bool, doc="the quick-access web view")
    host: str = setting("127.0.0.1", kind=str, check=c.non_empty, doc="where it listens")
    port: int = setting(8080, kind=int, check=c.port, doc="where it listens")


@dataclass(frozen=True)
class TicketSettings:
    token_prefix: str = setting(
        "", kind=str, check=c.token_prefix, doc='`"ACME"` gives `[ACME #592110]`'
    )
    number_digits: int = setting(
        6,
        kind=int,
        check=c.number_digits,
        doc="ticket numbers are random with this many digits (4–12), never reused",
    )
    remind_after: str = setting(
        "3d",
        kind=str,
        check=c.duration,
        doc="business time a ticket waits for the customer before one reminder to the "
        "requester (SPEC §11)",
    )
    autoresolve_after: str = setting(
        "4d",
        kind=str,
        check=c.duration,
        doc="business time after that reminder before the ticket is `resolved` (resolved "
        "mail with rating links)",
    )
    close_after: str = setting(
        "7d",
        kind=str,
        check=c.duration,
        doc="**calendar** time a ticket stays `resolved` before it is `closed` (no mail)",
    )


@dataclass(frozen=True)
class Department:
    key: str = setting(
        kind=str, check=c.department_key, doc="lowercase letters, digits, `-`, `_`; unique"
    )
    name: str = setting(
        kind=str, check=c.non_empty, optional=True, shown="the key, capitalized", doc="display name"
    )
    addresses: tuple[str, ...] = setting(
        kind=list,
        check=c.email,
        lower=True,
        doc="at least one; each address in one department only",
    )
    followup_on_resolved: str = setting(
        "reject",
        kind=str,
        check=c.one_of(c.FOLLOWUP_POLICIES),
        doc="mail to a resolved ticket: `reject`, `reopen` or `new_ticket`",
    )
    default: bool = setting(
        False, kind=bool, doc="at most one department; without one, the first is the default"
    )


@dataclass(frozen=True)
class Agent:
    email: str = setting(kind=str, check=c.email, lower=True, doc="the agent's address")
    name: str = setting(
        kind=str,
        check=c.non_empty,
        optional=True,
        shown="the address's local part",
        doc="display name",
    )
    departments: tuple[str, ...] = setting(
        (), kind=list, shown="all", doc="keys of the departments the agent serves"
    )


@dataclass(frozen=True)
class AttachmentSettings:
    allowed_extensions: tuple[str, ...] = setting(
        ("jpg", "jpeg", "gif", "png", "pdf"),
        kind=list,
        check=c.extension,
        doc="lowercase, no dot; content must match (magic bytes)",
    )
    max_bytes: int = setting(10 * 1024 * 1024, kind=int, check=c.positive, doc="per file")
    max_message_bytes: int = setting(
        25 * 1024 * 1024,
        kind=int,
        check=c.positive,
        doc="per message; larger ones keep only their headers (`too_large`)",
    )


@dataclass(frozen=True)
class LimitSettings:
    max_messages_per_sender_per_hour: int = setting(
        20,
        kind=int,
        check=c.positive,
        doc="beyond it, messages are held (`rate_limited`) until `maild quarantine release`",
    )
    max_auto_replies_per_recipient_per_hour: int = setting(
        10,
        kind=int,
        check=c.positive,
        doc="cap on automatic customer mail per address (agent notifications are not capped)",
    )
    # Abuse bounds (SPEC §8): no inbound mail makes the desk write to more
    # addresses than these, nor parse more header than this.
    max_ccs_per_ticket: int = setting(
        10,
        kind=int,
        check=c.non_negative,
        doc="customer CCs a ticket can hold (0 or more); further `Cc:` addresses are not "
        "added, the requester is told which were left out and agents see them; our own "
        "addresses never count",
    )
    max_recipients_per_automatic_mail: int = setting(
        10,
        kind=int,
        check=c.positive,
        doc="addresses one automatic customer mail (confirmation, notice, status change) goes "
        "to, at least 1; the requester comes first (agent notifications go to the configured "
        "agents and are not capped)",
    )
    max_header_bytes: int = setting(
        256 * 1024,
        kind=int,
        check=c.header_bytes,
        doc="header block of one message (at least 4096); beyond it the message is "
        "`too_large` and only the first `max_header_bytes` of its headers are kept",
    )


@dataclass(frozen=True)
class AccessSettings:
    allow_same_domain: bool = setting(
        True,
        kind=bool,
        doc="a colleague of the requester (same non-free-mail domain) may post and becomes CC",
    )
    customers: str = setting(
        "anyone",
        kind=str,
        check=c.one_of(c.CUSTOMER_MODES),
        doc='`"known"`: only addresses and domains of the `customer` table (`maild customers '
        "…`) may open tickets; others get `unknown_sender_rejected` (agents and CCs of "
        "existing tickets are always allowed) (SPEC §13)",
    )


@dataclass(frozen=True)
class AgentsAuthSettings:
    require: str = setting(
        "from",
        kind=str,
        check=c.one_of(c.AGENT_AUTH_MODES),
        doc="`from`, or `authentication-results` (agent only with dkim/dmarc pass from the "
        "trusted server)",
    )
    trusted_authserv_id: str = setting("", kind=str, doc="required with `authentication-results`")


@dataclass(frozen=True)
class BusinessHoursSettings:
    days: tuple[str, ...] = setting(
        ("mon", "tue", "wed", "thu", "fri"),
        kind=list,
        check=c.one_of(c.WEEKDAYS),
        doc="working days",
    )
    open: str = setting("08:30", kind=str, check=c.hhmm, doc="in `daemon.timezone`")
    close: str = setting(
        "17:30", kind=str, check=c.hhmm, doc="in `daemon.timezone`; later than `open`"
    )
    holidays: str = setting(
        "BR",
        kind=str,
        check=c.holidays_code,
        doc='country (or `BR-SP` with a subdivision) of the `holidays` package; `""` for none',
    )
    breaks: tuple[str, ...] = setting(
        (),
        kind=list,
        check=c.break_span,
        doc='`"HH:MM-HH:MM"` breaks inside business hours (lunch); break time never counts',
    )


@dataclass(frozen=True)
class SlaSettings:
    first_response: str = setting(
        "4h",
        kind=str,
        check=c.duration,
        doc="business time (`30m`, `4h`, `1h30m`, `2d`) shown in the confirmation; met by "
        "the first agent reply",
    )
    resolution: str = setting(
        "6d",
        kind=str,
        check=c.duration,
        doc="business days; met when the ticket is resolved",
    )
    warn_before: str = setting(
        "1h",
        kind=str,
        check=c.duration,
        doc="business time before each due time when the assignee (or the department's "
        "agents) is warned",
    )
    escalate_to: tuple[str, ...] = setting(
        (),
        kind=list,
        check=c.email,
        lower=True,
        doc="addresses that get the breach escalation, besides the assignee or the "
        "department's agents",
    )
    pause_while_waiting: bool = setting(
        True,
        kind=bool,
        doc="time in `waiting_customer` does not count: due times move later by the "
        "business time spent waiting",
    )


@dataclass(frozen=True)
class DigestSettings:
    enabled: bool = setting(
        True,
        kind=bool,
        doc="one mail per agent on business days: their active tickets (assigned to them, or "
        "unassigned in their departments), breached first, then in order of arrival",
    )
    at: str = setting(
        "08:30", kind=str, check=c.hhmm, doc="local time (`daemon.timezone`) of the digest"
    )


@dataclass(frozen=True)
class StorageSettings:
    blobs: str = setting(
        "database",
        kind=str,
        check=c.one_of(c.BLOB_STORES),
        doc="where raw mail and attachments live: `database` (the `blob` table: every "
        "instance on every host reads them, a database backup holds everything) or `files` "
        "(under `data_dir`, one host only). `maild db migrate` copies files left by `files` "
        "mode into the database, verifying each SHA-256",
    )
    batch_messages: int = setting(
        50,
        kind=int,
        check=c.positive,
        doc="group commit (SPEC §2.3): most messages stored and processed in one batch -- an "
        "IMAP FETCH round, the LMTP deliveries waiting while a batch commits, the files of one "
        "`maild ingest`",
    )
    batch_bytes: int = setting(
        8 * 1024 * 1024,
        kind=int,
        check=c.positive,
        doc="most bytes of mail one batch holds in memory (a larger message goes alone)",
    )
    batch_wait_ms: int = setting(
        0,
        kind=int,
        check=c.non_negative,
        doc="how long the LMTP listener waits for more deliveries before committing a batch; "
        "0: a delivery arriving alone is stored at once, and those arriving while a batch "
        "commits form the next batch",
    )
