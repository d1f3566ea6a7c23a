"""Composition root: settings -> database, stores, clock, renderer.

The only place that builds long-lived collaborators. Everything below receives
what it needs from the ``App`` it is handed; nothing reaches for a global. The
models use the database of the App bound where they run (``App.bound()``): the
daemon serves bound to its App (``Daemon.run``, ``App.thread``), a CLI command
binds the App it opens for itself only (``run_cli``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import peewee

from maild.clock import Clock, SystemClock
from maild.config import Settings
from maild.metrics import Metrics
from maild.render import SHIPPED_TEMPLATES_DIR, Renderer
from maild.storage.binding import bound
from maild.storage.db import open_database
from maild.storage.stores import BlobStore, DatabaseStore, attachment_store, raw_store

if TYPE_CHECKING:
    from maild.oauth import OAuthTokens


@dataclass
class App:
    settings: Settings
    db: peewee.Database
    clock: Clock = field(default_factory=SystemClock)
    # Called (from any thread) after a commit queued outbound mail: the daemon
    # wakes its sender, so a web reply's mail goes out now, not at the next poll.
    outbox_listeners: list[Callable[[], None]] = field(default_factory=list)
    metrics: Metrics = field(default_factory=Metrics)

    def bound(self) -> AbstractContextManager[peewee.Database]:
        """Bind the models to this App's database in the current thread or task (and
        the tasks and ``asyncio.to_thread`` calls it starts) until exit."""
        return bound(self.db)

    def thread(self, target: Callable[[], object], *, name: str) -> threading.Thread:
        """A daemon thread running ``target`` bound to this App's database (a thread
        starts with an empty context: it would not see the starter's binding)."""

        def run() -> None:
            with self.bound():
                target()

        return threading.Thread(target=run, name=name, daemon=True)

    def outbox_changed(self) -> None:
        for listener in self.outbox_listeners:
            listener()

    @cached_property
    def raw_store(self) -> BlobStore:
        if self.settings.storage.blobs == "files":
            return raw_store(self.settings.daemon.data_dir)
        return DatabaseStore(self.db)

    @cached_property
    def attachment_store(self) -> BlobStore:
        if self.settings.storage.blobs == "files":
            return attachment_store(self.settings.daemon.data_dir)
        return DatabaseStore(self.db)

    @cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.settings.daemon.timezone)

    @cached_property
    def renderer(self) -> Renderer:
        return Renderer(
            SHIPPED_TEMPLATES_DIR, self.settings.daemon.templates_dir, self.settings.daemon.language
        )

    @cached_property
    def oauth(self) -> OAuthTokens:
        # Imported here on purpose: the OAuth client (authlib, requests) costs every
        # `maild ingest` of an MTA pipe ~100 ms and only OAuth-connected sources use it
        # (tests/unit/test_cli_imports.py).
        from maild.oauth import OAuthTokens

        return OAuthTokens(self)

    def close(self) -> None:
        if not self.db.is_closed():
            self.db.close()


def build_app(settings: Settings, clock: Clock | None = None, *, migrate: bool = True) -> App:
    settings.daemon.data_dir.mkdir(parents=True, exist_ok=True)
    db = open_database(settings.database_url, migrate=migrate)
    return App(settings=settings, db=db, clock=clock or SystemClock())
