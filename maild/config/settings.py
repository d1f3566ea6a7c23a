"""The whole validated configuration: one field per settings.toml section."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from maild.config.checks import with_password
from maild.config.schema import (
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
    SlaSettings,
    SmtpSettings,
    StorageSettings,
    TicketSettings,
    WebSettings,
)

# (section, its schema, shape) in file order: "table" is [name] (defaults when absent),
# "optional" is [name] that is None when absent, "array" is [[name]].
SECTIONS: tuple[tuple[str, type, str], ...] = (
    ("daemon", DaemonSettings, "table"),
    ("database", DatabaseSettings, "table"),
    ("imap", ImapSource, "array"),
    ("listener", ListenerSettings, "table"),
    ("smtp", SmtpSettings, "optional"),
    ("web", WebSettings, "table"),
    ("tickets", TicketSettings, "table"),
    ("departments", Department, "array"),
    ("agents", Agent, "array"),
    ("attachments", AttachmentSettings, "table"),
    ("limits", LimitSettings, "table"),
    ("access", AccessSettings, "table"),
    ("agents_auth", AgentsAuthSettings, "table"),
    ("business_hours", BusinessHoursSettings, "table"),
    ("sla", SlaSettings, "table"),
    ("digest", DigestSettings, "table"),
    ("storage", StorageSettings, "table"),
)


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
        return with_password(url, self.database.password)

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
