"""settings.toml validation: the shipped file, every error named by its key, paths, defaults.

Broken documents are tables of (document, exact error); a document with several
problems must report all of them at once.
"""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

import pytest

from maild.config import (
    AccessSettings,
    AgentsAuthSettings,
    AttachmentSettings,
    BusinessHoursSettings,
    ConfigError,
    DaemonSettings,
    LimitSettings,
    ListenerSettings,
    Settings,
    SlaSettings,
    TicketSettings,
    WebSettings,
    load_settings,
    parse_settings,
)

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "settings.toml"
BASE_DIR = Path("/srv/maild")

MINIMAL: dict[str, Any] = {
    "departments": [
        {"key": "suporte", "name": "Suporte", "addresses": ["suporte@example.com"]},
        {"key": "comercial", "name": "Comercial", "addresses": ["comercial@example.com"]},
    ],
}


def doc(**tables: Any) -> dict[str, Any]:
    """MINIMAL plus the given top-level tables (replacing, not merging)."""
    data = copy.deepcopy(MINIMAL)
    data.update(copy.deepcopy(tables))
    return data


def errors_of(data: dict[str, Any], env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_settings(data, base_dir=BASE_DIR, env=env or {})
    return info.value.errors


def parse(data: dict[str, Any], env: dict[str, str] | None = None, base: Path = BASE_DIR):
    return parse_settings(data, base_dir=base, env=env or {})


# ---------------------------------------------------------------------------
# the shipped file
# ---------------------------------------------------------------------------


def test_shipped_settings_load_and_pass() -> None:
    settings = load_settings(SHIPPED, env={})

    assert settings.source_path == SHIPPED
    assert settings.daemon.data_dir == REPO / "var"
    assert settings.database_url == f"sqlite:///{REPO / 'var' / 'maild.sqlite3'}"
    assert settings.listener == ListenerSettings(True, "lmtp", "127.0.0.1", 8025)
    assert settings.smtp is None  # Maildir outbox
    assert settings.web == WebSettings(True, "127.0.0.1", 8080)
    assert [d.key for d in settings.departments] == ["suporte", "comercial", "financeiro"]
    assert settings.default_department.key == "suporte"
    assert len(settings.agents) == 2
    assert settings.imap == ()


def test_shipped_settings_only_hold_known_keys_with_their_documented_defaults() -> None:
    """Every value the shipped file spells out equals the code default (SPEC §8)."""
    data = tomllib.loads(SHIPPED.read_text(encoding="utf-8"))
    defaults = Settings()
    for table, values in data.items():
        if isinstance(values, list) or table in ("daemon", "database"):
            continue
        default = getattr(defaults, table)
        for key, value in values.items():
            expected = getattr(default, key)
            if isinstance(expected, tuple):
                expected = list(expected)
            if table == "agents_auth" and key == "trusted_authserv_id":
                continue  # an example value; the default is empty
            assert value == expected, f"{table}.{key}"


# ---------------------------------------------------------------------------
# defaults (SPEC §8)
# ---------------------------------------------------------------------------


def test_defaults_match_spec() -> None:
    s = parse(doc())

    assert s.daemon == DaemonSettings(
        instance="maild",
        base_url="http://127.0.0.1:8080",
        data_dir=BASE_DIR / "var",
        language="pt_BR",
        timezone="America/Sao_Paulo",
        templates_dir=None,
        domain="",
    )
    assert s.database_url == f"sqlite:///{BASE_DIR / 'var' / 'maild.sqlite3'}"
    assert s.imap == ()
    assert s.listener == ListenerSettings(
        enabled=True, protocol="lmtp", host="127.0.0.1", port=8025
    )
    assert s.smtp is None
    assert s.web == WebSettings(enabled=True, host="127.0.0.1", port=8080)
    assert s.tickets == TicketSettings(token_prefix="", number_digits=6)
    assert s.attachments == AttachmentSettings(
        allowed_extensions=("jpg", "jpeg", "gif", "png", "pdf"),
        max_bytes=10485760,
        max_message_bytes=26214400,
    )
    assert s.limits == LimitSettings(20, 10)
    assert s.access == AccessSettings(allow_same_domain=True)
    assert s.agents_auth == AgentsAuthSettings(require="from", trusted_authserv_id="")
    assert s.business_hours == BusinessHoursSettings(
        days=("mon", "tue", "wed", "thu", "fri"), open="08:30", close="17:30", holidays="BR"
    )
    assert s.sla == SlaSettings(first_response="4h", resolution="6d")
    dept = s.departments[0]
    assert (dept.followup_on_resolved, dept.default) == ("reject", False)
    assert s.default_department.key == "suporte"  # no default: the first one


def test_imap_and_smtp_defaults(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("s3nha\n", encoding="utf-8")
    s = parse(
        doc(
            imap=[
                {
                    "name": "suporte",
                    "host": "imap.example.com",
                    "username": "u",
                    "password_file": "secret",
                }
            ],
            smtp={"host": "smtp.example.com"},
        ),
        base=tmp_path,
    )

    src = s.imap[0]
    assert (src.port, src.security, src.folder, src.idle, src.poll_seconds) == (
        993,
        "tls",
        "INBOX",
        True,
        60,
    )
    assert (src.processed_folder, src.failed_folder) == (None, None)
    assert src.password == "s3nha"  # trailing newline of the file dropped
    assert "s3nha" not in repr(src)
    assert s.smtp is not None
    assert (s.smtp.port, s.smtp.security, s.smtp.username, s.smtp.password) == (
        587,
        "starttls",
        None,
        None,
    )


def test_agent_without_departments_belongs_to_all_in_file_order() -> None:
    s = parse(doc(agents=[{"email": "Ana@Example.com"}]))

    assert s.agents[0].email == "ana@example.com"
    assert s.agents[0].name == "ana"
    assert s.agents[0].departments == ("suporte", "comercial")


# ---------------------------------------------------------------------------
# relative paths
# ---------------------------------------------------------------------------


def test_relative_paths_resolve_against_the_files_folder(tmp_path: Path) -> None:
    conf = tmp_path / "etc"
    conf.mkdir()
    (conf / "imap-secret").write_text("pw-from-file", encoding="utf-8")
    (conf / "settings.toml").write_text(
        """
[daemon]
data_dir = "data"

[database]
url = "sqlite:///var/x.sqlite3"

[[imap]]
name = "suporte"
host = "imap.example.com"
username = "suporte@example.com"
password_file = "imap-secret"

[[departments]]
key = "suporte"
addresses = ["suporte@example.com"]
""",
        encoding="utf-8",
    )

    s = load_settings(conf / "settings.toml", env={})

    assert s.daemon.data_dir == conf / "data"
    assert s.database.url == f"sqlite:///{conf / 'var' / 'x.sqlite3'}"
    assert s.database_url == s.database.url
    assert s.imap[0].password == "pw-from-file"


def test_absolute_paths_and_postgres_urls_are_kept() -> None:
    s = parse(
        doc(
            daemon={"data_dir": "/var/lib/maild"},
            database={"url": "postgresql://maild@127.0.0.1/maild"},
        )
    )
    assert s.daemon.data_dir == Path("/var/lib/maild")
    assert s.database_url == "postgresql://maild@127.0.0.1/maild"
    assert parse(doc(database={"url": "sqlite:////abs/m.db"})).database_url == "sqlite:////abs/m.db"


def test_database_password_from_a_file_or_the_environment(tmp_path: Path) -> None:
    (tmp_path / "db-password").write_text("s3cr:t/@x\n", encoding="utf-8")
    from_file = parse(
        doc(
            database={
                "url": "postgresql://maild@db.example.com:5433/maild",
                "password_file": "db-password",
            }
        ),
        base=tmp_path,
    )
    from_env = parse(
        doc(database={"url": "postgresql://maild@db.example.com/maild", "password_env": "DB_PW"}),
        env={"DB_PW": "pw"},
    )

    assert from_file.database_url == "postgresql://maild:s3cr%3At%2F%40x@db.example.com:5433/maild"
    assert from_env.database_url == "postgresql://maild:pw@db.example.com/maild"
    assert "s3cr" not in repr(from_file)


def test_database_password_inline_in_the_url_is_refused() -> None:
    assert errors_of(doc(database={"url": "postgresql://maild:hunter2@db/maild"})) == [
        "database.url: has a password in it; secrets are not kept in settings.toml: "
        "use database.password_file or database.password_env"
    ]


def test_log_level_is_a_setting() -> None:
    assert parse(doc(daemon={"log_level": "debug"})).daemon.log_level == "debug"
    assert parse(doc()).daemon.log_level == "info"
    assert errors_of(doc(daemon={"log_level": "loud"}))[0].startswith("daemon.log_level: 'loud'")


def test_secret_from_environment() -> None:
    s = parse(
        doc(smtp={"host": "h", "username": "u", "password_env": "SMTP_PW"}),
        env={"SMTP_PW": "env-secret"},
    )
    assert s.smtp is not None and s.smtp.password == "env-secret"


# ---------------------------------------------------------------------------
# broken documents: one problem each, the exact message naming the key
# ---------------------------------------------------------------------------

DEPTS_BAD_ADDRESS = [
    {"key": "suporte", "addresses": ["suporte@example.com"]},
    {"key": "comercial", "addresses": ["suporte@"]},
]

BROKEN: list[tuple[str, dict[str, Any], str]] = [
    (
        "bad-address",
        {"departments": DEPTS_BAD_ADDRESS},
        "departments[1].addresses[0]: 'suporte@' is not an email address",
    ),
    (
        "unknown-top-level-key",
        doc(lisener={"port": 25}),
        "lisener: unknown key (did you mean 'listener'?)",
    ),
    (
        "unknown-nested-key",
        doc(daemon={"timezon": "UTC"}),
        "daemon.timezon: unknown key (did you mean 'timezone'?)",
    ),
    (
        "unknown-key-no-hint",
        doc(web={"colour": "blue"}),
        "web.colour: unknown key",
    ),
    (
        "unknown-key-in-department",
        {"departments": [{"key": "suporte", "addresses": ["s@example.com"], "adresses": []}]},
        "departments[0].adresses: unknown key (did you mean 'addresses'?)",
    ),
    (
        "string-for-int",
        doc(listener={"port": "8025"}),
        "listener.port: must be an integer, got a string",
    ),
    (
        "bool-for-int",
        doc(tickets={"number_digits": True}),
        "tickets.number_digits: must be an integer, got a boolean",
    ),
    (
        "int-for-bool",
        doc(web={"enabled": 1}),
        "web.enabled: must be true or false, got an integer",
    ),
    (
        "float-for-int",
        doc(attachments={"max_bytes": 1.5}),
        "attachments.max_bytes: must be an integer, got a number",
    ),
    (
        "string-for-list",
        doc(attachments={"allowed_extensions": "pdf"}),
        "attachments.allowed_extensions: must be a list, got a string",
    ),
    (
        "table-expected",
        doc(listener="lmtp"),
        "listener: must be a table ([listener]), got a string",
    ),
    (
        "port-out-of-range",
        doc(web={"port": 70000}),
        "web.port: 70000 is not a TCP port (1-65535)",
    ),
    (
        "duplicate-address-across-departments",
        {
            "departments": [
                {"key": "suporte", "addresses": ["suporte@example.com"]},
                {"key": "comercial", "addresses": ["vendas@example.com", "Suporte@Example.com"]},
            ]
        },
        "departments[1].addresses[1]: 'suporte@example.com' is already an address of "
        "department 'suporte'",
    ),
    (
        "agent-in-unknown-department",
        doc(agents=[{"email": "ana@example.com", "departments": ["suporte", "juridico"]}]),
        "agents[0].departments[1]: unknown department 'juridico' (known: comercial, suporte)",
    ),
    (
        "bad-time-zone",
        doc(daemon={"timezone": "America/Sao Paulo"}),
        "daemon.timezone: 'America/Sao Paulo' is not a known time zone (e.g. America/Sao_Paulo)",
    ),
    (
        "bad-holidays-country",
        doc(business_hours={"holidays": "XX"}),
        "business_hours.holidays: 'XX' is not a country code known to the holidays package "
        "(e.g. 'BR')",
    ),
    (
        "smtp-password-in-file",
        doc(
            smtp={
                "host": "smtp.example.com",
                "username": "u",
                "password_env": "P",
                "password": "hunter2",
            }
        ),
        "smtp.password: secrets are not kept in settings.toml; use password_file or password_env",
    ),
    (
        "password-env-unset",
        doc(smtp={"host": "smtp.example.com", "username": "u", "password_env": "MAILD_SMTP_PW"}),
        "smtp.password_env: environment variable MAILD_SMTP_PW is not set",
    ),
    (
        "password-file-missing",
        doc(imap=[{"name": "s", "host": "h", "username": "u", "password_file": "no-such"}]),
        "imap[0].password_file: cannot read '/srv/maild/no-such': No such file or directory",
    ),
    (
        "imap-missing-host",
        doc(imap=[{"name": "s", "username": "u", "password_env": "P"}]),
        "imap[0].host: is required",
    ),
    (
        "smtp-security-ssl",
        doc(smtp={"host": "smtp.example.com", "security": "ssl"}),
        "smtp.security: 'ssl' is not one of: tls, starttls, none",
    ),
    (
        "open-after-close",
        doc(business_hours={"open": "18:00", "close": "08:00"}),
        "business_hours.close: must be later than business_hours.open",
    ),
    (
        "open-equals-close",
        doc(business_hours={"open": "08:00", "close": "08:00"}),
        "business_hours.close: must be later than business_hours.open",
    ),
    (
        "two-defaults",
        {
            "departments": [
                {"key": "suporte", "addresses": ["s@example.com"], "default": True},
                {"key": "comercial", "addresses": ["c@example.com"], "default": True},
            ]
        },
        "departments: only one department may be default, got suporte, comercial",
    ),
    (
        "no-departments",
        {},
        "departments: at least one [[departments]] table is required",
    ),
    (
        "empty-departments",
        {"departments": []},
        "departments: at least one [[departments]] table is required",
    ),
    (
        "bad-language",
        doc(daemon={"language": "pt"}),
        "daemon.language: 'pt' is not one of: pt_BR, en",
    ),
    (
        "bad-duration",
        doc(sla={"first_response": "4 hours"}),
        "sla.first_response: '4 hours' is not a duration like '4h', '30m', '1h30m' or '6d'",
    ),
    (
        "bad-database-url",
        doc(database={"url": "mysql://x/y"}),
        "database.url: 'mysql://x/y': use sqlite:///path or postgresql://user@host/db",
    ),
    (
        "bad-weekday",
        doc(business_hours={"days": ["mon", "sabado"]}),
        "business_hours.days[1]: 'sabado' is not one of: mon, tue, wed, thu, fri, sat, sun",
    ),
]


@pytest.mark.parametrize(
    ("data", "expected"), [(d, e) for _, d, e in BROKEN], ids=[i for i, _, _ in BROKEN]
)
def test_broken_document_names_the_key(data: dict[str, Any], expected: str) -> None:
    assert expected in errors_of(data)


def test_password_in_imap_table_is_refused() -> None:
    errors = errors_of(
        doc(imap=[{"name": "s", "host": "h", "username": "u", "password": "hunter2"}])
    )
    assert (
        "imap[0].password: secrets are not kept in settings.toml; use password_file or "
        "password_env" in errors
    )
    assert not any("hunter2" in e for e in errors)  # the secret is never echoed


def test_exactly_the_problems_of_a_document_are_reported() -> None:
    """A document with three problems gives three messages, all at once."""
    data = doc(
        daemon={"timezone": "Nowhere/City", "languag": "en"},
        listener={"port": True},
    )

    assert errors_of(data) == [
        "daemon.languag: unknown key (did you mean 'language'?)",
        "daemon.timezone: 'Nowhere/City' is not a known time zone (e.g. America/Sao_Paulo)",
        "listener.port: must be an integer, got a boolean",
    ]


def test_problems_in_many_tables_are_all_reported() -> None:
    data = {
        "departments": DEPTS_BAD_ADDRESS,
        "smtp": {"host": "h", "security": "ssl"},
        "business_hours": {"open": "18:00", "close": "08:00", "holidays": "XX"},
        "agents": [{"email": "x@example.com", "departments": ["nope"]}],
    }
    errors = errors_of(data)
    assert len(errors) == 5, errors
    for key in (
        "departments[1].addresses[0]",
        "smtp.security",
        "business_hours.holidays",
        "business_hours.close",
        "agents[0].departments[0]",
    ):
        assert any(e.startswith(f"{key}: ") for e in errors), key


def test_config_error_message_lists_every_problem() -> None:
    exc = ConfigError(["a: one", "b: two"])
    assert str(exc) == "a: one\nb: two"


# ---------------------------------------------------------------------------
# the file itself
# ---------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path / "nope.toml")
    assert info.value.errors == [f"{tmp_path / 'nope.toml'}: file not found"]


def test_invalid_toml(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text("[daemon\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert len(info.value.errors) == 1
    assert info.value.errors[0].startswith(f"{path}: not valid TOML: ")


@pytest.mark.parametrize(
    ("address", "valid"),
    [
        ("suporte@example.com", True),
        ("ana.silva+vendas@example.com.br", True),
        ("suporte@exämple.com.br", True),  # IDNA domain
        ("ana..silva@example.com", False),  # the old regex let these three through
        ("ana@-example.com", False),
        (".ana@example.com", False),
        ("suporte@", False),
        ("suporte@localhost", False),
        ("Suporte <suporte@example.com>", False),
    ],
)
def test_address_syntax_is_checked_by_email_validator(address: str, valid: bool) -> None:
    from maild.config import is_email

    assert is_email(address) is valid


def test_scheduler_keys_defaults_and_errors() -> None:
    s = parse(doc())
    assert (s.sla.warn_before, s.sla.escalate_to, s.sla.pause_while_waiting) == ("1h", (), True)
    assert (s.tickets.remind_after, s.tickets.autoresolve_after, s.tickets.close_after) == (
        "3d",
        "4d",
        "7d",
    )
    assert (s.digest.enabled, s.digest.at, s.business_hours.breaks) == (True, "08:30", ())
    s = parse(
        doc(
            sla={"escalate_to": ["Gerente@Example.com"], "pause_while_waiting": False},
            business_hours={"breaks": ["12:00-13:30"]},
            digest={"at": "07:45", "enabled": False},
        )
    )
    assert s.sla.escalate_to == ("gerente@example.com",)
    assert s.business_hours.breaks == ("12:00-13:30",)
    assert (s.digest.at, s.digest.enabled) == ("07:45", False)
    errors = errors_of(
        doc(
            sla={"escalate_to": ["gerente"], "warn_before": "soon"},
            business_hours={"breaks": ["13:30-12:00", "07:00-08:00"]},
            tickets={"remind_after": "3 days"},
            digest={"at": "8h"},
        )
    )
    assert errors == [
        "tickets.remind_after: '3 days' is not a duration like '4h', '30m', '1h30m' or '6d'",
        "business_hours.breaks[0]: '13:30-12:00' is not a break like '12:00-13:30'",
        "business_hours.breaks: each break must lie between open and close without "
        "overlapping another",
        "sla.warn_before: 'soon' is not a duration like '4h', '30m', '1h30m' or '6d'",
        "sla.escalate_to[0]: 'gerente' is not an email address",
        "digest.at: '8h' is not a time of day HH:MM",
    ]


# ---------------------------------------------------------------------------
# [limits]: abuse bounds (issue 15)
# ---------------------------------------------------------------------------


def test_abuse_limits_defaults_and_values() -> None:
    limits = parse(doc()).limits
    assert (
        limits.max_ccs_per_ticket,
        limits.max_recipients_per_automatic_mail,
        limits.max_header_bytes,
    ) == (10, 10, 262144)
    given = parse(
        doc(
            limits={
                "max_ccs_per_ticket": 0,
                "max_recipients_per_automatic_mail": 3,
                "max_header_bytes": 65536,
            }
        )
    ).limits
    assert (
        given.max_ccs_per_ticket,
        given.max_recipients_per_automatic_mail,
        given.max_header_bytes,
    ) == (0, 3, 65536)


def test_abuse_limits_are_checked_all_at_once() -> None:
    errors = errors_of(
        doc(
            limits={
                "max_ccs_per_ticket": -1,
                "max_recipients_per_automatic_mail": 0,
                "max_header_bytes": 100,
            }
        )
    )
    assert len(errors) == 3
    assert any(e.startswith("limits.max_ccs_per_ticket") for e in errors)
    assert any(e.startswith("limits.max_recipients_per_automatic_mail") for e in errors)
    assert any(e.startswith("limits.max_header_bytes") and "4096" in e for e in errors)


def test_smtp_connections_default_and_check() -> None:
    smtp = {"host": "smtp.example.com"}
    settings = parse(doc(smtp=smtp))
    assert settings.smtp is not None and settings.smtp.connections == 2
    assert parse(doc(smtp=smtp | {"connections": 4})).smtp.connections == 4
    errors = errors_of(doc(smtp=smtp | {"connections": 0}))
    assert len(errors) == 1 and errors[0].startswith("smtp.connections")


def test_group_commit_limits_have_defaults_and_are_checked() -> None:
    storage = parse(doc()).storage
    assert (storage.batch_messages, storage.batch_bytes, storage.batch_wait_ms) == (
        50,
        8 * 1024 * 1024,
        0,
    )
    problems = errors_of(doc(storage={"batch_messages": 0, "batch_wait_ms": -1}))
    assert any(p.startswith("storage.batch_messages") for p in problems), problems
    assert any(p.startswith("storage.batch_wait_ms") for p in problems), problems
