"""The IMAP side of a source, below the runner: connecting (TLS, STARTTLS,
XOAUTH2), backoff, and fetching bodies in groups of bounded size. Sole purpose:
give ``maild.intake.imap.ImapRunner`` a logged-in ``IMAPClient`` and the
protocol pieces it needs, so the runner reads as the pass it is."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import socket
import ssl
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from imapclient import DELETED, SEEN, IMAPClient
from imapclient.exceptions import IMAPClientError

from maild.config import ImapSource
from maild.errors import TransientError
from maild.oauth import NeedsAuthorizationError, OAuthTokens
from maild.policy.types import QUARANTINED

BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 60.0
DEFAULT_TIMEOUT_SECONDS = 30.0

# Capabilities and FETCH items, as the protocol spells them.
CAP_IDLE = "IDLE"
CAP_MOVE = "MOVE"
CAP_STARTTLS = "STARTTLS"
CAP_UIDPLUS = "UIDPLUS"
ITEM_SIZE = b"RFC822.SIZE"
ITEM_BODY = b"BODY[]"
ITEM_HEADER = b"BODY[HEADER]"
FETCH_META = ["RFC822.SIZE", "FLAGS"]
FETCH_BODY = ["BODY.PEEK[]"]
FETCH_HEADER = ["BODY.PEEK[HEADER]"]
RESP_EXISTS = b"EXISTS"
RESP_RECENT = b"RECENT"
RESP_BYE = b"BYE"
IMAPLIB_LOGGER = "imapclient.imaplib"  # where imapclient sends imaplib's trace

# What a lost connection, a refused login or a dead server looks like to imapclient.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, timeouts (socket.timeout), ssl.SSLError
    IMAPClientError,  # imaplib's error/abort, LoginError, protocol errors
    TransientError,
)


class ImapConnectionLostError(TransientError):
    """The server said BYE or the connection ended; reconnect later."""


class ImapSecurityError(TransientError):
    """TLS was required but could not be established; never fall back to plaintext."""


class ImapConnector(Protocol):
    """Builds a logged-in client for one source (tests inject their own)."""

    def connect(self, source: ImapSource) -> IMAPClient: ...


@dataclass(frozen=True)
class DefaultImapConnector:
    """Connects with imapclient: implicit TLS, STARTTLS, or plaintext only when asked.
    Logs in with the password, or with XOAUTH2 and an access token from ``tokens``."""

    timeout: float = DEFAULT_TIMEOUT_SECONDS
    ssl_context: ssl.SSLContext | None = None
    tokens: OAuthTokens | None = None

    def connect(self, source: ImapSource) -> IMAPClient:
        context = self.ssl_context or ssl.create_default_context()
        client = IMAPClient(
            source.host,
            port=source.port,
            ssl=source.security == "tls",
            ssl_context=context if source.security == "tls" else None,
            timeout=self.timeout,
        )
        try:
            if source.security == "starttls":
                if not client.has_capability(CAP_STARTTLS):
                    raise ImapSecurityError(f"{source.host}:{source.port} does not offer STARTTLS")
                client.starttls(context)  # raises on failure: no plaintext fallback
            if source.auth == "xoauth2":
                self._oauth2_login(client, source)
            else:
                client.login(source.username, source.password)
        except BaseException:
            with contextlib.suppress(Exception):
                client.shutdown()
            raise
        return client

    def _oauth2_login(self, client: IMAPClient, source: ImapSource) -> None:
        if self.tokens is None or source.oauth is None:
            raise NeedsAuthorizationError(f"{source.name}: no OAuth2 token store configured")
        token = self.tokens.access_token(source.name, source.oauth)
        try:
            client.oauth2_login(source.username, token)
        except IMAPClientError:
            # Refused although unexpired (revoked early, or another client's): refresh
            # before the next try; a refused refresh then asks for authorization.
            self.tokens.discard_access_token(source.name)
            raise


@dataclass
class Backoff:
    """Exponential backoff with jitter: about 1 s, 2 s, 4 s ... at most ``cap``."""

    rng: random.Random = field(default_factory=random.Random)
    base: float = BACKOFF_BASE_SECONDS
    cap: float = BACKOFF_CAP_SECONDS
    failures: int = 0

    def next_delay(self) -> float:
        delay = min(self.cap, self.base * 2 ** min(self.failures, 32))
        self.failures += 1
        return min(self.cap, delay * self.rng.uniform(0.75, 1.25))

    def reset(self) -> None:
        self.failures = 0


def default_owner() -> str:
    """A lease owner name unique to this process: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def chunks(items: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def by_bytes(uids: Sequence[int], sizes: dict[int, int], budget: int) -> Iterator[list[int]]:
    """Groups of UIDs whose bodies add up to at most ``budget`` (at least one each)."""
    group: list[int] = []
    total = 0
    for uid in uids:
        if group and total + sizes[uid] > budget:
            yield group
            group, total = [], 0
        group.append(uid)
        total += sizes[uid]
    if group:
        yield group


class BodyReader:
    """Fetches whole messages in groups of at most ``budget`` bytes (at least one
    message each), on demand."""

    def __init__(
        self, client: IMAPClient, uids: Iterable[int], sizes: dict[int, int], budget: int
    ) -> None:
        self._client = client
        self._groups = iter(by_bytes(list(uids), sizes, budget))
        self._pending: dict[int, bytes] = {}
        self._fetched: set[int] = set()

    def get(self, uid: int) -> bytes | None:
        while uid not in self._fetched:
            group = next(self._groups, None)
            if group is None:
                return None
            response = self._client.fetch(group, FETCH_BODY)
            self._pending = {
                u: data[ITEM_BODY] for u, data in response.items() if ITEM_BODY in data
            }
            self._fetched = set(group)
        return self._pending.pop(uid, None)  # the caller holds the only copy


def quiet_imaplib(client: IMAPClient) -> None:
    """Turn off imaplib's own protocol tracing unless its logger would print it.

    imapclient sets ``imaplib.IMAP4.debug = 5`` on every connection and routes the
    trace to the ``imapclient.imaplib`` logger; imaplib formats each message before
    that logger can drop it, including ``repr()`` of every FETCH literal, twice. For a
    14 MB body that is ~33 MB of throwaway strings at the peak of a fetch, whatever
    the log level."""
    imap = getattr(client, "_imap", None)
    if imap is not None and not logging.getLogger(IMAPLIB_LOGGER).isEnabledFor(logging.DEBUG):
        imap.debug = 0


def is_response(response: Any, name: bytes) -> bool:
    """Whether a parsed untagged response is ``name`` (``* BYE ...`` or ``* 3 EXISTS``)."""
    return isinstance(response, tuple) and len(response) >= 2 and name in response[:2]


class Filing:
    """What happens in the mailbox once messages are committed: flagged ``\\Seen``
    and moved to ``processed_folder`` (or ``failed_folder`` when quarantined), by UID
    sets, with MOVE where the server has it."""

    def __init__(self, source: ImapSource, log: Callable[..., None]) -> None:
        self.source = source
        self._log = log
        self._known_folders: set[str] = set()

    def forget_folders(self) -> None:
        """A new connection: folders are looked up again."""
        self._known_folders = set()

    def after_commit(self, client: IMAPClient, done: Sequence[tuple[int, str | None]]) -> None:
        """Flag committed messages \\Seen and move them where the outcome says."""
        if not done:
            return
        client.add_flags([uid for uid, _ in done], [SEEN], silent=True)
        moves: dict[str, list[int]] = {}
        for uid, outcome in done:
            destination = self.destination(outcome)
            if destination is not None:
                moves.setdefault(destination, []).append(uid)
        for destination, uids in moves.items():
            self._move(client, uids, destination)

    def destination(self, outcome: str | None) -> str | None:
        folder = self.source.processed_folder
        if outcome == QUARANTINED and self.source.failed_folder:
            folder = self.source.failed_folder
        # Moving into the folder being read would give the message a new UID, forever.
        return folder if folder and folder != self.source.folder else None

    def _move(self, client: IMAPClient, uids: list[int], folder: str) -> None:
        if folder not in self._known_folders:
            if not client.folder_exists(folder):
                try:
                    client.create_folder(folder)
                except IMAPClientError:
                    if not client.folder_exists(folder):  # created by someone else meanwhile
                        raise
            self._known_folders.add(folder)
        if client.has_capability(CAP_MOVE):
            client.move(uids, folder)
        else:
            client.copy(uids, folder)
            client.add_flags(uids, [DELETED], silent=True)
            if client.has_capability(CAP_UIDPLUS):
                client.uid_expunge(uids)
            else:
                # Without UIDPLUS only a plain EXPUNGE exists; it also removes anything
                # else already marked \Deleted in this folder.
                client.expunge()
        self._log("debug", "imap.moved", count=len(uids), folder=folder)
