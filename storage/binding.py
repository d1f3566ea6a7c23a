"""Which database the models use: the one bound to the running App, not a global.

Every model's ``Meta.database`` is :data:`MODELS_DATABASE`, a peewee proxy that
looks its target up on each use: the database bound in the current context
(:func:`bound`, a ``contextvars`` binding: each thread and each asyncio task
sees its own), else the process's (:func:`bind_process`, for a process or test
that has one database). So two Apps in one process each work on their own
database, and a CLI command opening its own App never rebinds its caller's.

Threads start with an empty context (Python 3.11): a thread that works for an
App runs bound to it (``App.thread``); asyncio tasks and ``asyncio.to_thread``
inherit the binding of the code that started them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import peewee

_context: ContextVar[peewee.Database | None] = ContextVar("maild_database", default=None)
_process_database: peewee.Database | None = None  # see bind_process


class UnboundDatabaseError(RuntimeError):
    """A model was used where no database is bound (a thread started without its App)."""


def current_database() -> peewee.Database | None:
    """The database bound here (context first, then process), or None."""
    database = _context.get()
    return _process_database if database is None else database


def bound_database() -> peewee.Database:
    """The database the models use here; raises when none is bound."""
    database = _context.get()
    if database is None:
        database = _process_database
        if database is None:
            raise UnboundDatabaseError(
                "no database bound here: run inside App.bound() (or start the thread "
                "with App.thread)"
            )
    return database


@contextlib.contextmanager
def bound(database: peewee.Database) -> Iterator[peewee.Database]:
    """Bind the models to ``database`` in this context (this thread or task) until exit."""
    token = _context.set(database)
    try:
        yield database
    finally:
        _context.reset(token)


def bind_context(database: peewee.Database) -> None:
    """Bind the models to ``database`` for the rest of the current context: for work
    run in a context of its own (``contextvars.copy_context().run``), such as one CLI
    command, whose binding must end with it."""
    _context.set(database)


def bind_process(database: peewee.Database | None) -> peewee.Database | None:
    """Make ``database`` the one every context without a binding of its own uses (a
    process or a test with one App); return the previous one, to restore it."""
    global _process_database
    previous = _process_database
    _process_database = database
    return previous


class _ModelsDatabase(peewee.DatabaseProxy):
    """A ``DatabaseProxy`` whose target is wherever the current context is bound.

    peewee's per-database field hooks run once, unbound: a plain ``BlobField`` would
    send ``bytearray`` copies; maild's BLOB columns are ``models.BytesField``, which
    hands ``bytes`` over as they are.
    """

    __slots__ = ()

    def __init__(self) -> None:  # no fixed target: nothing to initialize
        object.__setattr__(self, "_callbacks", [])

    @property  # type: ignore[override]
    def obj(self) -> peewee.Database | None:  # peewee reads it; None means unbound
        return current_database()

    def __getattr__(self, attr: str) -> Any:
        return getattr(bound_database(), attr)

    def __enter__(self) -> Any:
        return bound_database().__enter__()

    def __exit__(self, *exc: Any) -> Any:
        return bound_database().__exit__(*exc)


MODELS_DATABASE = _ModelsDatabase()
