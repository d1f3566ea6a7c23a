"""settings.toml -> validated, frozen settings objects.

Every table of SPEC §8 is read here and nowhere else. Validation collects *all*
problems before failing, and each message names the offending key the way an
admin would find it in the file (``departments[1].addresses[0]: ...``).
Secrets are never read from the TOML itself: ``*_file`` / ``*_env`` keys point
at them, and relative paths are resolved against the settings file's folder.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email

DEFAULT_CONFIG_NAME = "settings.toml"
CONFIG_ENV = "MAILD_CONFIG"

LANGUAGES = ("pt_BR", "en")
LOG_LEVELS = ("debug", "info", "warning", "error")
SECURITY_MODES = ("tls", "starttls", "none")
FOLLOWUP_POLICIES = ("reject", "reopen", "new_ticket")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
AGENT_AUTH_MODES = ("from", "authentication-results")
AUTH_MODES = ("password", "xoauth2")  # SPEC §14
OAUTH_PROVIDERS = ("google", "microsoft", "generic")
# Keys an [[imap]] source or [smtp] takes for auth = "xoauth2" (SPEC §14).
OAUTH_KEYS = frozenset(
    {
        "auth",
        "oauth_provider",
        "client_id",
        "client_secret",  # known so that its error says where secrets go
        "client_secret_file",
        "client_secret_env",
        "token_endpoint",
        "authorization_endpoint",
        "device_authorization_endpoint",
        "tenant",
        "scopes",
        "oauth_key_file",
    }
)

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


class ConfigError(Exception):
    """settings.toml is unusable; ``errors`` holds one message per problem."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class DaemonSettings:
    instance: str = "maild"
    base_url: str = "http://127.0.0.1:8080"
    data_dir: Path = Path("var")
    language: str = "pt_BR"
    timezone: str = "America/Sao_Paulo"
    templates_dir: Path | None = None
    domain: str = ""  # Message-ID domain; derived from the first department address when ""
    log_level: str = "info"


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = ""
    password: str | None = field(repr=False, default=None)  # from password_file/_env


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


@dataclass(frozen=True)
class ImapSource:
    name: str
    host: str
    username: str
    password: str = field(repr=False, default="")
    auth: str = "password"
    oauth: OAuthSettings | None = None
    port: int = 993
    security: str = "tls"
    folder: str = "INBOX"
    processed_folder: str | None = None
    failed_folder: str | None = None
    idle: bool = True
    poll_seconds: int = 60


@dataclass(frozen=True)
class ListenerSettings:
    enabled: bool = True
    protocol: str = "lmtp"
    host: str = "127.0.0.1"
    port: int = 8025


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 587
    security: str = "starttls"
    username: str | None = None
    password: str | None = field(repr=False, default=None)
    timeout_seconds: int = 30
    auth: str = "password"
    oauth: OAuthSettings | None = None


@dataclass(frozen=True)
class WebSettings:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8080


@dataclass(frozen=True)
class TicketSettings:
    token_prefix: str = ""
    number_digits: int = 6
    remind_after: str = "3d"  # business time waiting_customer before the reminder
    autoresolve_after: str = "4d"  # business time after the reminder before auto-resolve
    close_after: str = "7d"  # calendar time resolved before auto-close


@dataclass(frozen=True)
class Department:
    key: str
    name: str
    addresses: tuple[str, ...]
    followup_on_resolved: str = "reject"
    default: bool = False


@dataclass(frozen=True)
class Agent:
    email: str
    name: str
    departments: tuple[str, ...] = ()


@dataclass(frozen=True)
class AttachmentSettings:
    allowed_extensions: tuple[str, ...] = ("jpg", "jpeg", "gif", "png", "pdf")
    max_bytes: int = 10 * 1024 * 1024
    max_message_bytes: int = 25 * 1024 * 1024


@dataclass(frozen=True)
class LimitSettings:
    max_messages_per_sender_per_hour: int = 20
    max_auto_replies_per_recipient_per_hour: int = 10
    # Abuse bounds (SPEC §8): no inbound mail makes the desk write to more
    # addresses than these, nor parse more header than this.
    max_ccs_per_ticket: int = 10
    max_recipients_per_automatic_mail: int = 10
    max_header_bytes: int = 256 * 1024


@dataclass(frozen=True)
class AccessSettings:
    allow_same_domain: bool = True
    # "anyone" may open tickets, or only "known" customers (SPEC §13).
    customers: str = "anyone"


@dataclass(frozen=True)
class AgentsAuthSettings:
    require: str = "from"
    trusted_authserv_id: str = ""


@dataclass(frozen=True)
class BusinessHoursSettings:
    days: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri")
    open: str = "08:30"
    close: str = "17:30"
    holidays: str = "BR"
    breaks: tuple[str, ...] = ()  # "HH:MM-HH:MM" lunch breaks


@dataclass(frozen=True)
class SlaSettings:
    first_response: str = "4h"
    resolution: str = "6d"
    warn_before: str = "1h"  # business time before a due time: warning to the agents
    escalate_to: tuple[str, ...] = ()  # addresses that get breach escalations
    pause_while_waiting: bool = True  # the SLA clock stops while waiting_customer


@dataclass(frozen=True)
class DigestSettings:
    enabled: bool = True
    at: str = "08:30"  # local time, business days


BLOB_STORES = ("database", "files")
CUSTOMER_MODES = ("anyone", "known")


@dataclass(frozen=True)
class StorageSettings:
    # "database": raw mail and attachments in the database, seen by every instance;
    # "files": under data_dir, for a single host only.
    blobs: str = "database"


@dataclass(frozen=True)
class Settings:
    """The whole validated configuration. Tests build this directly."""

    daemon: DaemonSettings = field(default_factory=DaemonSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    imap: tuple[ImapSource, ...] = ()
    listener: ListenerSettings = field(default_factory=ListenerSettings)
    smtp: SmtpSettings | None = None
    web: WebSettings = field(default_factory=WebSettings)
    tickets: TicketSettings = field(default_factory=TicketSettings)
    departments: tuple[Department, ...] = ()
    agents: tuple[Agent, ...] = ()
    attachments: AttachmentSettings = field(default_factory=AttachmentSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    access: AccessSettings = field(default_factory=AccessSettings)
    agents_auth: AgentsAuthSettings = field(default_factory=AgentsAuthSettings)
    business_hours: BusinessHoursSettings = field(default_factory=BusinessHoursSettings)
    sla: SlaSettings = field(default_factory=SlaSettings)
    digest: DigestSettings = field(default_factory=DigestSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    source_path: Path | None = None

    # ---- derived lookups -------------------------------------------------
    @property
    def database_url(self) -> str:
        url = self.database.url or f"sqlite:///{self.daemon.data_dir / 'maild.sqlite3'}"
        if self.database.password is None:
            return url
        return _with_password(url, self.database.password)

    @property
    def message_id_domain(self) -> str:
        if self.daemon.domain:
            return self.daemon.domain
        for dept in self.departments:
            for address in dept.addresses:
                return address.rsplit("@", 1)[1]
        return "maild.invalid"

    def department(self, key: str) -> Department | None:
        return next((d for d in self.departments if d.key == key), None)

    @property
    def default_department(self) -> Department:
        for dept in self.departments:
            if dept.default:
                return dept
        return self.departments[0]

    def department_for_address(self, address: str) -> Department | None:
        address = address.lower()
        for dept in self.departments:
            if address in dept.addresses:
                return dept
        return None

    @property
    def own_addresses(self) -> frozenset[str]:
        return frozenset(a for d in self.departments for a in d.addresses)

    def agent(self, address: str) -> Agent | None:
        address = address.lower()
        return next((a for a in self.agents if a.email == address), None)

    def agents_of(self, department_key: str) -> tuple[Agent, ...]:
        return tuple(a for a in self.agents if department_key in a.departments)


# ---------------------------------------------------------------------------
# Loading and validation
# ---------------------------------------------------------------------------


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """--config, else $MAILD_CONFIG, else ./settings.toml."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(CONFIG_ENV)
    return Path(env) if env else Path(DEFAULT_CONFIG_NAME)


def load_settings(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate a settings file; raise ConfigError listing every problem."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read: {exc}"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
    return parse_settings(data, base_dir=path.resolve().parent, env=env, source_path=path)


class _Reader:
    """Walks a TOML document, collecting errors instead of raising on the first."""

    def __init__(self, base_dir: Path, env: Mapping[str, str]) -> None:
        self.errors: list[str] = []
        self.base_dir = base_dir
        self.env = env

    def error(self, key: str, message: str) -> None:
        self.errors.append(f"{key}: {message}")

    def table(self, data: Mapping[str, Any], name: str) -> dict[str, Any]:
        value = data.get(name, {})
        if not isinstance(value, dict):
            self.error(name, f"must be a table ([{name}]), got {_type_name(value)}")
            return {}
        return value

    def array_of_tables(self, data: Mapping[str, Any], name: str) -> list[dict[str, Any]]:
        value = data.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.error(name, f"must be an array of tables ([[{name}]])")
            return []
        return value

    def unknown(self, table: Mapping[str, Any], prefix: str, known: set[str]) -> None:
        for key in table:
            if key not in known:
                hint = _closest(key, known)
                suffix = f" (did you mean '{hint}'?)" if hint else ""
                self.error(_join(prefix, key), f"unknown key{suffix}")

    def get(
        self,
        table: Mapping[str, Any],
        prefix: str,
        key: str,
        kind: type | tuple[type, ...],
        default: Any,
        check: Callable[[Any], str | None] | None = None,
    ) -> Any:
        if key not in table:
            return default
        value = table[key]
        # TOML booleans are ints in Python; keep them apart.
        kinds = kind if isinstance(kind, tuple) else (kind,)
        ok = False if isinstance(value, bool) and bool not in kinds else isinstance(value, kinds)
        if not ok:
            expected = " or ".join(_type_label(k) for k in kinds)
            self.error(_join(prefix, key), f"must be {expected}, got {_type_name(value)}")
            return default
        if check is not None:
            problem = check(value)
            if problem:
                self.error(_join(prefix, key), problem)
                return default
        return value

    def required(
        self,
        table: Mapping[str, Any],
        prefix: str,
        key: str,
        kind: type | tuple[type, ...],
        check: Callable[[Any], str | None] | None = None,
    ) -> Any:
        if key not in table:
            self.error(_join(prefix, key), "is required")
            return None
        return self.get(table, prefix, key, kind, None, check)

    def path(self, value: str | None) -> Path | None:
        if value is None:
            return None
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    def secret(self, table: Mapping[str, Any], prefix: str, stem: str) -> str | None:
        """Read ``<stem>_file`` or ``<stem>_env``; never ``<stem>`` itself."""
        if stem in table:
            self.error(
                _join(prefix, stem),
                f"secrets are not kept in settings.toml; use {stem}_file or {stem}_env",
            )
        file_key, env_key = f"{stem}_file", f"{stem}_env"
        file_value = self.get(table, prefix, file_key, str, None)
        env_value = self.get(table, prefix, env_key, str, None)
        if file_value and env_value:
            self.error(prefix or stem, f"set {file_key} or {env_key}, not both")
            return None
        if file_value:
            p = self.path(file_value)
            assert p is not None
            try:
                return p.read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as exc:
                self.error(_join(prefix, file_key), f"cannot read {str(p)!r}: {exc.strerror}")
                return None
        if env_value:
            if env_value not in self.env:
                self.error(_join(prefix, env_key), f"environment variable {env_value} is not set")
                return None
            return self.env[env_value]
        return None


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _type_label(kind: type) -> str:
    return {
        str: "a string",
        int: "an integer",
        bool: "true or false",
        list: "a list",
        dict: "a table",
        float: "a number",
    }.get(kind, kind.__name__)


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    return {
        str: "a string",
        int: "an integer",
        float: "a number",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def _closest(key: str, known: set[str]) -> str | None:
    import difflib

    matches = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.75)
    return matches[0] if matches else None


def _one_of(choices: tuple[str, ...]) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if value not in choices:
            return f"{value!r} is not one of: {', '.join(choices)}"
        return None

    return check


def _positive(value: Any) -> str | None:
    return None if value > 0 else f"must be greater than 0, got {value}"


def _non_negative(value: Any) -> str | None:
    return None if value >= 0 else f"must be 0 or more, got {value}"


def _header_bytes_check(value: Any) -> str | None:
    # Below a few KiB ordinary mail (DKIM, Received chains) would count as a bomb.
    return None if value >= 4096 else f"must be at least 4096, got {value}"


def _port(value: Any) -> str | None:
    return None if 0 < value < 65536 else f"{value} is not a TCP port (1-65535)"


def _non_empty(value: Any) -> str | None:
    return None if value.strip() else "must not be empty"


def _base_url(value: Any) -> str | None:
    if not re.match(r"^https?://[^/\s]+", value):
        return f"{value!r} is not an http(s) URL"
    return None


def _timezone(value: Any) -> str | None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return f"{value!r} is not a known time zone (e.g. America/Sao_Paulo)"
    return None


def _hhmm(value: Any) -> str | None:
    return None if _HHMM_RE.match(value) else f"{value!r} is not a time of day HH:MM"


def _break_check(value: Any) -> str | None:
    start, sep, end = value.partition("-")
    if not sep or _hhmm(start) or _hhmm(end) or start >= end:
        return f"{value!r} is not a break like '12:00-13:30'"
    return None


def _duration(value: Any) -> str | None:
    if not value or not _DURATION_RE.match(value):
        return f"{value!r} is not a duration like '4h', '30m', '1h30m' or '6d'"
    return None


def _db_url(value: Any) -> str | None:
    if not re.match(r"^(sqlite|postgres|postgresql)://", value):
        return f"{value!r}: use sqlite:///path or postgresql://user@host/db"
    if urlsplit(value).password is not None:
        return (
            "has a password in it; secrets are not kept in settings.toml: "
            "use database.password_file or database.password_env"
        )
    return None


def _with_password(url: str, password: str) -> str:
    """``url`` with ``password`` put in its user part (the driver reads it from there)."""
    parts = urlsplit(url)
    if not parts.scheme.startswith("postgres"):
        return url  # SQLite has no password
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{user}:{quote(password, safe='')}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def _str_list(
    reader: _Reader,
    table: Mapping[str, Any],
    prefix: str,
    key: str,
    default: tuple[str, ...],
    item_check: Callable[[str], str | None] | None = None,
) -> tuple[str, ...]:
    value = reader.get(table, prefix, key, list, None)
    if value is None:
        return default
    result: list[str] = []
    for i, item in enumerate(value):
        item_key = f"{_join(prefix, key)}[{i}]"
        if not isinstance(item, str):
            reader.error(item_key, f"must be a string, got {_type_name(item)}")
            continue
        problem = item_check(item) if item_check else None
        if problem:
            reader.error(item_key, problem)
            continue
        result.append(item)
    return tuple(result)


def _email_check(value: str) -> str | None:
    return None if is_email(value) else f"{value!r} is not an email address"


def parse_settings(
    data: Mapping[str, Any],
    base_dir: Path,
    env: Mapping[str, str] | None = None,
    source_path: Path | None = None,
) -> Settings:
    """Validate a parsed TOML document; raise ConfigError with every problem found."""
    r = _Reader(base_dir, os.environ if env is None else env)
    top_known = {
        "daemon",
        "database",
        "imap",
        "listener",
        "smtp",
        "web",
        "tickets",
        "departments",
        "agents",
        "attachments",
        "limits",
        "access",
        "agents_auth",
        "business_hours",
        "sla",
        "digest",
        "storage",
    }
    r.unknown(data, "", top_known)

    # [daemon]
    t = r.table(data, "daemon")
    r.unknown(
        t,
        "daemon",
        {
            "instance",
            "base_url",
            "data_dir",
            "language",
            "timezone",
            "templates_dir",
            "domain",
            "log_level",
        },
    )
    d0 = DaemonSettings()
    templates_dir = r.get(t, "daemon", "templates_dir", str, None)
    daemon = DaemonSettings(
        instance=r.get(t, "daemon", "instance", str, d0.instance, _non_empty),
        base_url=r.get(t, "daemon", "base_url", str, d0.base_url, _base_url).rstrip("/"),
        data_dir=r.path(r.get(t, "daemon", "data_dir", str, str(d0.data_dir))) or d0.data_dir,
        language=r.get(t, "daemon", "language", str, d0.language, _one_of(LANGUAGES)),
        timezone=r.get(t, "daemon", "timezone", str, d0.timezone, _timezone),
        templates_dir=r.path(templates_dir),
        domain=r.get(t, "daemon", "domain", str, ""),
        log_level=r.get(t, "daemon", "log_level", str, d0.log_level, _one_of(LOG_LEVELS)),
    )
    if daemon.templates_dir is not None and not daemon.templates_dir.is_dir():
        r.error("daemon.templates_dir", f"{str(daemon.templates_dir)!r} is not a directory")

    # [database]
    t = r.table(data, "database")
    r.unknown(t, "database", {"url", "password_file", "password_env"})
    url = r.get(t, "database", "url", str, "", _db_url)
    db_password = r.secret(t, "database", "password")
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        rel = url[len("sqlite:///") :]
        if rel and rel != ":memory:":
            url = f"sqlite:///{r.path(rel)}"
    database = DatabaseSettings(url=url, password=db_password)

    # [[imap]]
    imap: list[ImapSource] = []
    names: set[str] = set()
    for i, t in enumerate(r.array_of_tables(data, "imap")):
        p = f"imap[{i}]"
        r.unknown(
            t,
            p,
            {
                "name",
                "host",
                "port",
                "security",
                "username",
                "password",
                "password_file",
                "password_env",
                "folder",
                "processed_folder",
                "failed_folder",
                "idle",
                "poll_seconds",
                *OAUTH_KEYS,
            },
        )
        name = r.required(t, p, "name", str, _non_empty) or f"imap{i}"
        if name in names:
            r.error(f"{p}.name", f"{name!r} is used by another [[imap]] source")
        names.add(name)
        security = r.get(t, p, "security", str, "tls", _one_of(SECURITY_MODES))
        auth = r.get(t, p, "auth", str, "password", _one_of(AUTH_MODES))
        oauth = _oauth(r, t, p) if auth == "xoauth2" else _no_oauth_keys(r, t, p)
        if auth == "xoauth2" and name == "smtp":
            r.error(f"{p}.name", "'smtp' names the [smtp] tokens; choose another name")
        password = r.secret(t, p, "password")
        has_password = any(k in t for k in ("password_file", "password_env"))
        if auth == "password" and password is None and not has_password:
            r.error(f"{p}.password_file", "is required (or password_env)")
        imap.append(
            ImapSource(
                name=name,
                host=r.required(t, p, "host", str, _non_empty) or "",
                port=r.get(t, p, "port", int, 993 if security == "tls" else 143, _port),
                security=security,
                username=r.required(t, p, "username", str, _non_empty) or "",
                password=password or "",
                folder=r.get(t, p, "folder", str, "INBOX", _non_empty),
                processed_folder=r.get(t, p, "processed_folder", str, None),
                failed_folder=r.get(t, p, "failed_folder", str, None),
                idle=r.get(t, p, "idle", bool, True),
                poll_seconds=r.get(t, p, "poll_seconds", int, 60, _positive),
                auth=auth,
                oauth=oauth,
            )
        )

    # [listener]
    t = r.table(data, "listener")
    r.unknown(t, "listener", {"enabled", "protocol", "host", "port"})
    l0 = ListenerSettings()
    listener = ListenerSettings(
        enabled=r.get(t, "listener", "enabled", bool, l0.enabled),
        protocol=r.get(t, "listener", "protocol", str, l0.protocol, _one_of(("lmtp", "smtp"))),
        host=r.get(t, "listener", "host", str, l0.host, _non_empty),
        port=r.get(t, "listener", "port", int, l0.port, _port),
    )

    # [smtp]
    smtp: SmtpSettings | None = None
    if "smtp" in data:
        t = r.table(data, "smtp")
        r.unknown(
            t,
            "smtp",
            {
                "host",
                "port",
                "security",
                "username",
                "password",
                "password_file",
                "password_env",
                "timeout_seconds",
                *OAUTH_KEYS,
            },
        )
        security = r.get(t, "smtp", "security", str, "starttls", _one_of(SECURITY_MODES))
        default_port = {"tls": 465, "starttls": 587, "none": 25}.get(security, 587)
        username = r.get(t, "smtp", "username", str, None)
        password = r.secret(t, "smtp", "password")
        has_secret = "password_file" in t or "password_env" in t
        auth = r.get(t, "smtp", "auth", str, "password", _one_of(AUTH_MODES))
        oauth = _oauth(r, t, "smtp") if auth == "xoauth2" else _no_oauth_keys(r, t, "smtp")
        if auth == "xoauth2" and not username:
            r.error("smtp.username", "is required when smtp.auth = 'xoauth2'")
        if auth == "password" and username and password is None and not has_secret:
            r.error("smtp.password_file", "is required when smtp.username is set")
        smtp = SmtpSettings(
            host=r.required(t, "smtp", "host", str, _non_empty) or "",
            port=r.get(t, "smtp", "port", int, default_port, _port),
            security=security,
            username=username,
            password=password,
            timeout_seconds=r.get(t, "smtp", "timeout_seconds", int, 30, _positive),
            auth=auth,
            oauth=oauth,
        )

    # [web]
    t = r.table(data, "web")
    r.unknown(t, "web", {"enabled", "host", "port"})
    web = WebSettings(
        enabled=r.get(t, "web", "enabled", bool, True),
        host=r.get(t, "web", "host", str, "127.0.0.1", _non_empty),
        port=r.get(t, "web", "port", int, 8080, _port),
    )

    # [tickets]
    t = r.table(data, "tickets")
    r.unknown(
        t,
        "tickets",
        {"token_prefix", "number_digits", "remind_after", "autoresolve_after", "close_after"},
    )

    def _prefix_check(value: str) -> str | None:
        if value and not re.match(r"^[A-Za-z][A-Za-z0-9-]{0,19}$", value):
            return f"{value!r} must be letters, digits or '-' (at most 20), starting with a letter"
        return None

    def _digits_check(value: int) -> str | None:
        return None if 4 <= value <= 12 else f"{value} must be between 4 and 12"

    tickets = TicketSettings(
        token_prefix=r.get(t, "tickets", "token_prefix", str, "", _prefix_check),
        number_digits=r.get(t, "tickets", "number_digits", int, 6, _digits_check),
        remind_after=r.get(t, "tickets", "remind_after", str, "3d", _duration),
        autoresolve_after=r.get(t, "tickets", "autoresolve_after", str, "4d", _duration),
        close_after=r.get(t, "tickets", "close_after", str, "7d", _duration),
    )

    # [[departments]]
    departments: list[Department] = []
    seen_keys: set[str] = set()
    seen_addresses: dict[str, str] = {}
    dept_tables = r.array_of_tables(data, "departments")
    if not dept_tables:
        r.error("departments", "at least one [[departments]] table is required")
    for i, t in enumerate(dept_tables):
        p = f"departments[{i}]"
        r.unknown(t, p, {"key", "name", "addresses", "followup_on_resolved", "default"})

        def _key_check(value: str) -> str | None:
            if not _KEY_RE.match(value):
                return f"{value!r} must be lowercase letters, digits, '-' or '_'"
            return None

        key = r.required(t, p, "key", str, _key_check) or f"department{i}"
        if key in seen_keys:
            r.error(f"{p}.key", f"{key!r} is used by another department")
        seen_keys.add(key)
        if "addresses" not in t:
            r.error(f"{p}.addresses", "is required")
        addresses = tuple(a.lower() for a in _str_list(r, t, p, "addresses", (), _email_check))
        if "addresses" in t and isinstance(t["addresses"], list) and not t["addresses"]:
            r.error(f"{p}.addresses", "must list at least one address")
        for j, address in enumerate(addresses):
            if address in seen_addresses:
                r.error(
                    f"{p}.addresses[{j}]",
                    f"{address!r} is already an address of department {seen_addresses[address]!r}",
                )
            seen_addresses.setdefault(address, key)
        departments.append(
            Department(
                key=key,
                name=r.get(t, p, "name", str, key.capitalize(), _non_empty),
                addresses=addresses,
                followup_on_resolved=r.get(
                    t, p, "followup_on_resolved", str, "reject", _one_of(FOLLOWUP_POLICIES)
                ),
                default=r.get(t, p, "default", bool, False),
            )
        )
    defaults = [d.key for d in departments if d.default]
    if len(defaults) > 1:
        r.error("departments", f"only one department may be default, got {', '.join(defaults)}")

    # [[agents]]
    agents: list[Agent] = []
    seen_agents: set[str] = set()
    for i, t in enumerate(r.array_of_tables(data, "agents")):
        p = f"agents[{i}]"
        r.unknown(t, p, {"email", "name", "departments"})
        email = (r.required(t, p, "email", str, _email_check) or "").lower()
        if email and email in seen_agents:
            r.error(f"{p}.email", f"{email!r} is listed twice")
        if email and email in seen_addresses:
            r.error(f"{p}.email", f"{email!r} is a department address, not an agent's")
        seen_agents.add(email)
        # No list: every department, in file order (a set's order changes per run).
        depts = _str_list(r, t, p, "departments", tuple(d.key for d in departments))
        for j, dep in enumerate(depts):
            if dep not in seen_keys:
                known = ", ".join(sorted(seen_keys)) or "none"
                r.error(f"{p}.departments[{j}]", f"unknown department {dep!r} (known: {known})")
        agents.append(
            Agent(
                email=email,
                name=r.get(t, p, "name", str, email.split("@")[0], _non_empty),
                departments=depts,
            )
        )

    # [attachments]
    t = r.table(data, "attachments")
    r.unknown(t, "attachments", {"allowed_extensions", "max_bytes", "max_message_bytes"})
    a0 = AttachmentSettings()

    def _ext_check(value: str) -> str | None:
        if not re.match(r"^[a-z0-9]{1,10}$", value):
            return f"{value!r} must be a lowercase extension without a dot"
        return None

    attachments = AttachmentSettings(
        allowed_extensions=_str_list(
            r, t, "attachments", "allowed_extensions", a0.allowed_extensions, _ext_check
        ),
        max_bytes=r.get(t, "attachments", "max_bytes", int, a0.max_bytes, _positive),
        max_message_bytes=r.get(
            t, "attachments", "max_message_bytes", int, a0.max_message_bytes, _positive
        ),
    )

    # [limits]
    t = r.table(data, "limits")
    r.unknown(
        t,
        "limits",
        {
            "max_messages_per_sender_per_hour",
            "max_auto_replies_per_recipient_per_hour",
            "max_ccs_per_ticket",
            "max_recipients_per_automatic_mail",
            "max_header_bytes",
        },
    )
    l0 = LimitSettings()

    limits = LimitSettings(
        max_messages_per_sender_per_hour=r.get(
            t, "limits", "max_messages_per_sender_per_hour", int, 20, _positive
        ),
        max_auto_replies_per_recipient_per_hour=r.get(
            t, "limits", "max_auto_replies_per_recipient_per_hour", int, 10, _positive
        ),
        max_ccs_per_ticket=r.get(
            t, "limits", "max_ccs_per_ticket", int, l0.max_ccs_per_ticket, _non_negative
        ),
        max_recipients_per_automatic_mail=r.get(
            t,
            "limits",
            "max_recipients_per_automatic_mail",
            int,
            l0.max_recipients_per_automatic_mail,
            _positive,
        ),
        max_header_bytes=r.get(
            t, "limits", "max_header_bytes", int, l0.max_header_bytes, _header_bytes_check
        ),
    )

    # [access]
    t = r.table(data, "access")
    r.unknown(t, "access", {"allow_same_domain", "customers"})
    access = AccessSettings(
        allow_same_domain=r.get(t, "access", "allow_same_domain", bool, True),
        customers=r.get(t, "access", "customers", str, "anyone", _one_of(CUSTOMER_MODES)),
    )

    # [agents_auth]
    t = r.table(data, "agents_auth")
    r.unknown(t, "agents_auth", {"require", "trusted_authserv_id"})
    agents_auth = AgentsAuthSettings(
        require=r.get(t, "agents_auth", "require", str, "from", _one_of(AGENT_AUTH_MODES)),
        trusted_authserv_id=r.get(t, "agents_auth", "trusted_authserv_id", str, ""),
    )
    if agents_auth.require == "authentication-results" and not agents_auth.trusted_authserv_id:
        r.error(
            "agents_auth.trusted_authserv_id",
            "is required when agents_auth.require = 'authentication-results'",
        )

    # [business_hours]
    t = r.table(data, "business_hours")
    r.unknown(t, "business_hours", {"days", "open", "close", "holidays", "breaks"})
    b0 = BusinessHoursSettings()
    business_hours = BusinessHoursSettings(
        days=_str_list(r, t, "business_hours", "days", b0.days, _one_of(WEEKDAYS)),
        open=r.get(t, "business_hours", "open", str, b0.open, _hhmm),
        close=r.get(t, "business_hours", "close", str, b0.close, _hhmm),
        holidays=r.get(t, "business_hours", "holidays", str, b0.holidays, _holidays_check),
        breaks=_str_list(r, t, "business_hours", "breaks", (), _break_check),
    )
    if business_hours.open >= business_hours.close:
        r.error("business_hours.close", "must be later than business_hours.open")
    elif business_hours.breaks:
        spans = sorted(b.split("-") for b in business_hours.breaks)
        last = business_hours.open
        for start, end in spans:
            if not last < start < end < business_hours.close:
                r.error(
                    "business_hours.breaks",
                    "each break must lie between open and close without overlapping another",
                )
                break
            last = end

    # [sla]
    t = r.table(data, "sla")
    r.unknown(
        t,
        "sla",
        {"first_response", "resolution", "warn_before", "escalate_to", "pause_while_waiting"},
    )
    sla = SlaSettings(
        first_response=r.get(t, "sla", "first_response", str, "4h", _duration),
        resolution=r.get(t, "sla", "resolution", str, "6d", _duration),
        warn_before=r.get(t, "sla", "warn_before", str, "1h", _duration),
        escalate_to=tuple(
            a.lower() for a in _str_list(r, t, "sla", "escalate_to", (), _email_check)
        ),
        pause_while_waiting=r.get(t, "sla", "pause_while_waiting", bool, True),
    )

    # [digest]
    t = r.table(data, "digest")
    r.unknown(t, "digest", {"enabled", "at"})
    digest = DigestSettings(
        enabled=r.get(t, "digest", "enabled", bool, True),
        at=r.get(t, "digest", "at", str, "08:30", _hhmm),
    )

    # [storage]
    t = r.table(data, "storage")
    r.unknown(t, "storage", {"blobs"})
    storage = StorageSettings(
        blobs=r.get(t, "storage", "blobs", str, "database", _one_of(BLOB_STORES)),
    )

    if r.errors:
        raise ConfigError(r.errors)
    return Settings(
        daemon=daemon,
        database=database,
        imap=tuple(imap),
        listener=listener,
        smtp=smtp,
        web=web,
        tickets=tickets,
        departments=tuple(departments),
        agents=tuple(agents),
        attachments=attachments,
        limits=limits,
        access=access,
        agents_auth=agents_auth,
        business_hours=business_hours,
        sla=sla,
        digest=digest,
        storage=storage,
        source_path=source_path,
    )


# Well-known endpoints and the scopes IMAP and SMTP need (docs/oauth.md). Google offers
# no device flow for the mail scope, so its authorization is a loopback redirect.
_GOOGLE = {
    "token_endpoint": "https://oauth2.googleapis.com/token",
    "authorization_endpoint": "https://accounts.google.com/o/oauth2/v2/auth",
    "device_authorization_endpoint": "",
    "scopes": ("https://mail.google.com/",),
}
_MICROSOFT_BASE = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0"
_MICROSOFT_SCOPES = (
    "https://outlook.office.com/IMAP.AccessAsUser.All",
    "https://outlook.office.com/SMTP.Send",
    "offline_access",
)


def _oauth(r: _Reader, t: Mapping[str, Any], p: str) -> OAuthSettings | None:
    """The OAuth2 keys of a source or [smtp] with ``auth = "xoauth2"`` (SPEC §14)."""
    provider = r.required(t, p, "oauth_provider", str, _one_of(OAUTH_PROVIDERS))
    client_id = r.required(t, p, "client_id", str, _non_empty)
    secret = r.secret(t, p, "client_secret")
    tenant = r.get(t, p, "tenant", str, "", _non_empty)
    if tenant and provider != "microsoft":
        r.error(_join(p, "tenant"), "only applies to oauth_provider = 'microsoft'")
    tenant = tenant or ("common" if provider == "microsoft" else "")
    if provider == "google":
        defaults: dict[str, Any] = dict(_GOOGLE)
    elif provider == "microsoft":
        base = _MICROSOFT_BASE.format(tenant=tenant)
        defaults = {
            "token_endpoint": f"{base}/token",
            "authorization_endpoint": f"{base}/authorize",
            "device_authorization_endpoint": f"{base}/devicecode",
            "scopes": _MICROSOFT_SCOPES,
        }
    else:
        defaults = {"authorization_endpoint": "", "device_authorization_endpoint": ""}
    urls = {}
    for key in ("token_endpoint", "authorization_endpoint", "device_authorization_endpoint"):
        urls[key] = r.get(t, p, key, str, defaults.get(key), _http_url)
    if provider == "generic" and not urls["token_endpoint"]:
        r.error(_join(p, "token_endpoint"), "is required for oauth_provider = 'generic'")
    if provider == "generic" and not (
        urls["authorization_endpoint"] or urls["device_authorization_endpoint"]
    ):
        r.error(
            _join(p, "authorization_endpoint"),
            "is required (or device_authorization_endpoint) for oauth_provider = 'generic'",
        )
    scopes = _str_list(r, t, p, "scopes", defaults.get("scopes", ()), _non_empty)
    key = b""
    key_path = r.path(r.required(t, p, "oauth_key_file", str, _non_empty))
    if key_path is not None:
        try:
            key = key_path.read_bytes().strip()
        except OSError as exc:
            r.error(_join(p, "oauth_key_file"), f"cannot read {str(key_path)!r}: {exc.strerror}")
        else:
            problem = _fernet_key_problem(key)
            if problem:
                r.error(_join(p, "oauth_key_file"), problem)
    if provider is None or client_id is None or not urls["token_endpoint"]:
        return None
    return OAuthSettings(
        provider=provider,
        client_id=client_id,
        token_endpoint=urls["token_endpoint"],
        authorization_endpoint=urls["authorization_endpoint"] or "",
        device_authorization_endpoint=urls["device_authorization_endpoint"] or "",
        scopes=scopes,
        tenant=tenant,
        client_secret=secret,
        key=key,
    )


def _no_oauth_keys(r: _Reader, t: Mapping[str, Any], p: str) -> None:
    for key in sorted(OAUTH_KEYS - {"auth"}):
        if key in t:
            r.error(_join(p, key), "only applies with auth = 'xoauth2'")
    return None


def _http_url(value: Any) -> str | None:
    if not re.match(r"^https?://[^/\s]+", value):
        return f"{value!r} is not an http(s) URL"
    return None


def _fernet_key_problem(key: bytes) -> str | None:
    from cryptography.fernet import Fernet

    try:
        Fernet(key)
    except ValueError:
        return (
            "is not a Fernet key (32 url-safe base64-encoded bytes); "
            "make one with `maild oauth generate-key`"
        )
    return None


def _holidays_check(value: str) -> str | None:
    if not value:
        return None
    import holidays

    country, _, subdiv = value.partition("-")
    supported = holidays.list_supported_countries()
    if country not in supported:
        return f"{value!r} is not a country code known to the holidays package (e.g. 'BR')"
    if subdiv and subdiv not in supported[country]:
        return f"{value!r}: {subdiv!r} is not a subdivision of {country}"
    return None
