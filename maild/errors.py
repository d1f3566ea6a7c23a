"""The errors maild raises across modules (STYLE §4).

Ignoring or rejecting a message is an outcome of the policy (``maild.policy.types``),
not an exception; a message that cannot be processed is quarantined by the
pipeline. What is left: failures worth retrying, and command-line usage errors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from maild.faults import ResourceFault


class TransientError(Exception):
    """Try again later with backoff (connection lost, 4xx, database busy)."""


class StorageUnavailableError(TransientError):
    """The raw message could not be stored durably; the sender must retry (EX_TEMPFAIL).

    ``fault`` says what ran out when it is a resource fault (a full disk, a lost
    database connection), None for a passing conflict.
    """

    def __init__(self, message: str, fault: ResourceFault | None = None) -> None:
        super().__init__(message)
        self.fault = fault


class UsageError(Exception):
    """A command-line request that cannot be carried out (unknown ticket, bad filter)."""
