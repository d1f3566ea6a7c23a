"""Shared fixtures: settings factory, a database on SQLite and PostgreSQL, an App.

Real parts, not mocks: the PostgreSQL fixture talks to the server on
127.0.0.1:5432 (database ``test``), each test in a schema of its own. Under
``CI=true`` a missing PostgreSQL fails the run instead of skipping.
"""

from __future__ import annotations

import copy
import os
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import peewee
import pytest
import structlog
from maild.storage.binding import bind_process
from maild.storage.db import open_database

from maild.app import App
from maild.clock import FrozenClock
from maild.config import Settings, parse_settings

pytest_plugins = ["tests.plugins.dovecot", "tests.plugins.smtpsink", "tests.plugins.oauth"]

FIXTURES = Path(__file__).parent / "fixtures"
MAIL_FIXTURES = FIXTURES / "mail"
PG_URL = os.environ.get("MAILD_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() == "true"

BASE_SETTINGS: dict[str, Any] = {
    "daemon": {
        "instance": "Acme Suporte",
        "base_url": "http://127.0.0.1:8080",
        "language": "pt_BR",
        "timezone": "America/Sao_Paulo",
    },
    "tickets": {"token_prefix": "", "number_digits": 6},
    "departments": [
        {
            "key": "suporte",
            "name": "Suporte",
            "addresses": ["suporte@example.com"],
            "default": True,
            "followup_on_resolved": "reject",
        },
        {
            "key": "comercial",
            "name": "Comercial",
            "addresses": ["comercial@example.com", "vendas@example.com"],
            "followup_on_resolved": "reopen",
        },
        {
            "key": "financeiro",
            "name": "Financeiro",
            "addresses": ["financeiro@example.com"],
            "followup_on_resolved": "new_ticket",
        },
    ],
    "agents": [
        {"email": "ana@example.com", "name": "Ana", "departments": ["suporte", "comercial"]},
        {"email": "bruno@example.com", "name": "Bruno", "departments": ["financeiro"]},
    ],
    "listener": {"enabled": False},
    "web": {"enabled": False},
}


@pytest.fixture(autouse=True)
def _fresh_structlog() -> Iterator[None]:
    """The CLI configures structlog for the process; give every test the defaults back."""
    yield
    structlog.reset_defaults()


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def build_settings(tmp_path: Path, **tables: Any) -> Settings:
    """Settings from the test base plus overrides, data_dir under tmp_path."""
    data = _merge(BASE_SETTINGS, tables)
    data.setdefault("daemon", {}).setdefault("data_dir", str(tmp_path / "var"))
    return parse_settings(data, base_dir=tmp_path, env={})


@pytest.fixture
def settings_factory(tmp_path: Path):
    def make(**tables: Any) -> Settings:
        return build_settings(tmp_path, **tables)

    return make


def _pg_available() -> str | None:
    try:
        db = peewee.PostgresqlDatabase(
            "test", host="127.0.0.1", port=5432, user="postgres", connect_timeout=3
        )
        db.connect()
        db.close()
        return None
    except Exception as exc:
        return str(exc).strip()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL: SQLite in tmp_path, or a private PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'maild.sqlite3'}"
        return
    problem = _pg_available()
    if problem:
        message = f"PostgreSQL at 127.0.0.1:5432 not reachable: {problem}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    schema = f"t_{secrets.token_hex(6)}"
    admin = peewee.PostgresqlDatabase("test", host="127.0.0.1", port=5432, user="postgres")
    admin.connect()
    admin.execute_sql(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        admin.execute_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


@pytest.fixture
def db(database_url: str) -> Iterator[peewee.Database]:
    """The test's database, bound for the whole process (its threads too)."""
    database = open_database(database_url, migrate=True)
    previous = bind_process(database)
    try:
        yield database
    finally:
        bind_process(previous)
        database.close()


@pytest.fixture
def clock() -> FrozenClock:
    # A Tuesday, 10:00 in São Paulo: inside business hours.
    return FrozenClock(datetime(2026, 11, 24, 13, 0, tzinfo=UTC))


@pytest.fixture
def make_app(tmp_path: Path, clock: FrozenClock):
    """Factory: App on SQLite in tmp_path with the given settings overrides. The last
    App made is bound for the whole process (the test's threads too); an App working
    in a thread of its own binds there (``App.thread``, ``App.bound()``)."""
    apps: list[App] = []
    unbound: list[peewee.Database | None] = []  # the process binding before the first

    def make(database_url: str | None = None, **tables: Any) -> App:
        settings = build_settings(tmp_path, **tables)
        url = database_url or f"sqlite:///{tmp_path / 'maild.sqlite3'}"
        settings.daemon.data_dir.mkdir(parents=True, exist_ok=True)
        database = open_database(url, migrate=True)
        app = App(settings=settings, db=database, clock=clock)
        apps.append(app)
        previous = bind_process(database)
        if len(apps) == 1:
            unbound.append(previous)
        return app

    yield make
    if unbound:
        bind_process(unbound[0])
    for app in apps:
        app.close()


@pytest.fixture
def app(make_app) -> App:
    return make_app()


@pytest.fixture
def files_app(make_app) -> App:
    """An App keeping blobs as files under data_dir (``[storage] blobs = "files"``),
    for tests of what the file store does when its folders are in the way."""
    return make_app(storage={"blobs": "files"})


@pytest.fixture
def app_any_db(make_app, database_url: str) -> App:
    """The App on both databases."""
    return make_app(database_url)


def read_fixture(name: str) -> bytes:
    return (MAIL_FIXTURES / name).read_bytes()
