"""settings.toml -> validated, frozen settings objects.

Every table of SPEC §8 is declared once in ``schema.py`` (key, type, default, check,
doc line) and read by the one generic reader of ``reader.py``; ``docs.py`` writes
docs/configuration.md from the same schema. Validation collects *all* problems before
failing, each message naming its key (``departments[1].addresses[0]: ...``). Secrets
are never read from the TOML itself: ``*_file`` / ``*_env`` keys point at them, and
relative paths are resolved against the settings file's folder.
"""

from maild.config.checks import (
    AGENT_AUTH_MODES,
    AUTH_MODES,
    BLOB_STORES,
    CUSTOMER_MODES,
    FOLLOWUP_POLICIES,
    FREE_MAIL_DOMAINS,
    LANGUAGES,
    LOG_LEVELS,
    OAUTH_PROVIDERS,
    SECURITY_MODES,
    WEEKDAYS,
    is_email,
    is_free_mail,
)
from maild.config.reader import (
    CONFIG_ENV,
    DEFAULT_CONFIG_NAME,
    ConfigError,
    config_path,
    load_settings,
    parse_settings,
)
from maild.config.schema import (
    OAUTH_KEYS,
    AccessSettings,
    Agent,
    AgentsAuthSettings,
    AttachmentSettings,
    BusinessHoursSettings,
    DaemonSettings,
    DatabaseSettings,
    Department,
    DigestSettings,
    ImapSource,
    LimitSettings,
    ListenerSettings,
    OAuthSettings,
    SlaSettings,
    SmtpSettings,
    StorageSettings,
    TicketSettings,
    WebSettings,
)
from maild.config.settings import Settings

__all__ = [
    "AGENT_AUTH_MODES",
    "AUTH_MODES",
    "BLOB_STORES",
    "CONFIG_ENV",
    "CUSTOMER_MODES",
    "DEFAULT_CONFIG_NAME",
    "FOLLOWUP_POLICIES",
    "FREE_MAIL_DOMAINS",
    "LANGUAGES",
    "LOG_LEVELS",
    "OAUTH_KEYS",
    "OAUTH_PROVIDERS",
    "SECURITY_MODES",
    "WEEKDAYS",
    "AccessSettings",
    "Agent",
    "AgentsAuthSettings",
    "AttachmentSettings",
    "BusinessHoursSettings",
    "ConfigError",
    "DaemonSettings",
    "DatabaseSettings",
    "Department",
    "DigestSettings",
    "ImapSource",
    "LimitSettings",
    "ListenerSettings",
    "OAuthSettings",
    "Settings",
    "SlaSettings",
    "SmtpSettings",
    "StorageSettings",
    "TicketSettings",
    "WebSettings",
    "config_path",
    "is_email",
    "is_free_mail",
    "load_settings",
    "parse_settings",
]
