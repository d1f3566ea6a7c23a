"""The one error taxonomy of maild (STYLE §4).

Control signals (``IgnoreMessage``, ``RejectMessage``) are not failures; the
others say whether trying again can help.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from maild.faults import ResourceFault


class MaildError(Exception):
    """Base of maild's own errors."""


class IgnoreMessage(MaildError):
    """The message is recorded but gets no reply (loop, bulk, auto-reply)."""


class RejectMessage(MaildError):
    """The message is refused with a notice to its sender."""


class TransientError(MaildError):
    """Try again later with backoff (connection lost, 4xx, database busy)."""


class PermanentError(MaildError):
    """Retrying cannot help (5xx, unparseable); shunt and keep the evidence."""


class StorageUnavailableError(TransientError):
    """The raw message could not be stored durably; the sender must retry (EX_TEMPFAIL).

    ``fault`` says what ran out when it is a resource fault (a full disk, a lost
    database connection), None for a passing conflict.
    """

    def __init__(self, message: str, fault: ResourceFault | None = None) -> None:
        super().__init__(message)
        self.fault = fault


class UsageError(MaildError):
    """A command-line request that cannot be carried out (unknown ticket, bad filter)."""
