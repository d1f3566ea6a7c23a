"""Typed hand-offs of the policy stage: what a message is, what the database
knows about it, and the decision. All frozen; the policy never touches IO."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from maild.parsers.types import ParsedMessage

if TYPE_CHECKING:
    from maild.policy.commands import CheckedCommands

# The outcome vocabulary (SPEC §3). Other tools depend on these strings.
CREATED = "created"
APPENDED = "appended"
REOPENED = "reopened"
FOLLOWUP_REJECTED = "followup_rejected"
DUPLICATE_SUBJECT_REJECTED = "duplicate_subject_rejected"
EMPTY_REJECTED = "empty_rejected"
UNAUTHORIZED = "unauthorized"
AUTO_REPLY_IGNORED = "auto_reply_ignored"
BOUNCE = "bounce"
RATE_LIMITED = "rate_limited"
TOO_LARGE = "too_large"
QUARANTINED = "quarantined"
DUPLICATE_MESSAGE = "duplicate_message"
UNKNOWN_SENDER_REJECTED = "unknown_sender_rejected"  # SPEC §13
# Agent mail that applies nothing (SPEC §3, §5): an invalid command, a token naming
# no ticket, a ticket of a department the agent does not serve.
AGENT_REFUSED = "agent_refused"
# Not in SPEC §3's table: a "meus chamados" / "my tickets" request (SPEC §12) opens
# nothing and is answered with the ticket-list link; none of the others says that.
TICKET_LIST_REQUESTED = "ticket_list_requested"

OUTCOMES = (
    CREATED,
    APPENDED,
    REOPENED,
    FOLLOWUP_REJECTED,
    DUPLICATE_SUBJECT_REJECTED,
    EMPTY_REJECTED,
    UNAUTHORIZED,
    AUTO_REPLY_IGNORED,
    BOUNCE,
    RATE_LIMITED,
    TOO_LARGE,
    QUARANTINED,
    DUPLICATE_MESSAGE,
    UNKNOWN_SENDER_REJECTED,
    AGENT_REFUSED,
    TICKET_LIST_REQUESTED,
)


@dataclass(frozen=True)
class CheckedAttachment:
    filename: str
    content_type: str
    payload: bytes = field(repr=False)
    accepted: bool
    reason: str | None = None
    reason_code: str | None = None
    inline: bool = False
    content_id: str | None = None


@dataclass(frozen=True)
class Classified:
    """Pure facts about one message, derived from its bytes and the settings."""

    parsed: ParsedMessage
    department: str
    sender: str
    sender_name: str
    is_agent: bool
    token_number: int | None
    plus_number: int | None
    footer_number: int | None
    reference_ids: tuple[str, ...]
    has_reply_prefix: bool
    normalized_subject: str
    stripped_text: str
    priority: str | None  # "high" when the mail asks for it, else None
    loop_reason: str | None
    bounce_message_id: str | None = None
    bounce_recipients: tuple[str, ...] = ()
    bounce_permanent: bool = False
    is_bounce: bool = False
    too_large: bool = False
    attachments: tuple[CheckedAttachment, ...] = ()
    commands: CheckedCommands | None = None  # an agent's #command lines, checked

    @property
    def accepted_attachments(self) -> tuple[CheckedAttachment, ...]:
        return tuple(a for a in self.attachments if a.accepted)

    @property
    def refused_attachments(self) -> tuple[CheckedAttachment, ...]:
        return tuple(a for a in self.attachments if not a.accepted)

    @property
    def is_empty(self) -> bool:
        return not self.stripped_text.strip() and not self.accepted_attachments


@dataclass(frozen=True)
class TicketView:
    """What the policy may know of an existing ticket."""

    number: int
    status: str
    department: str
    requester: str
    ccs: tuple[str, ...] = ()


@dataclass(frozen=True)
class PolicyContext:
    """What the database says about this message, looked up before deciding."""

    already_seen: bool = False
    ticket: TicketView | None = None  # the thread match, if any
    thread_via: str | None = None  # token | references | plus | footer | subject
    duplicate_of: TicketView | None = None  # active ticket with the same normalized subject
    # When the match is resolved: the sender's active ticket with the same subject in
    # its department (opened by an earlier follow-up), if any.
    successor: TicketView | None = None
    sender_recent_count: int = 0  # messages from this sender in the last hour
    max_per_hour: int = 20
    allow_same_domain: bool = True
    followup_policy: str = "reject"  # of the matched ticket's department
    known_customers_only: bool = False  # [access] customers = "known"
    sender_known: bool = True  # in the customer table, or requester/CC of a ticket
    # An agent's mail: member of the matched ticket's department, or its assignee.
    # False unless the context says so: an agent acts on nothing by default.
    agent_may_act: bool = False


@dataclass(frozen=True)
class Decision:
    outcome: str
    rule: str
    ticket: TicketView | None = None
    # For appended/reopened: the sender becomes a CC (same-domain colleague).
    add_sender_as_cc: bool = False
    reason: str | None = None  # agent_refused: which refusal
