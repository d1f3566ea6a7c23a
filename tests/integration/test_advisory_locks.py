"""Named advisory locks (storage.db) are per schema: two desks, or two test runs,
in their own schemas of one PostgreSQL database never wait on each other, while
two connections of one desk do exclude each other."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import peewee as pw
import pytest
from maild.storage.db import advisory_unlock, make_database, try_advisory_lock

from tests.conftest import IN_CI, PG_URL, _pg_available

pytestmark = pytest.mark.integration


@pytest.fixture
def schemas() -> Iterator[tuple[str, str]]:
    problem = _pg_available()
    if problem:
        if IN_CI:
            pytest.fail(f"PostgreSQL not reachable: {problem}")
        pytest.skip(f"PostgreSQL not reachable: {problem}")
    names = (f"t_{secrets.token_hex(6)}", f"t_{secrets.token_hex(6)}")
    admin = pw.PostgresqlDatabase("test", host="127.0.0.1", port=5432, user="postgres")
    admin.connect()
    for name in names:
        admin.execute_sql(f'CREATE SCHEMA "{name}"')
    try:
        yield names
    finally:
        for name in names:
            admin.execute_sql(f'DROP SCHEMA "{name}" CASCADE')
        admin.close()


def _connect(schema: str) -> pw.Database:
    db = make_database(f"{PG_URL}?options=-csearch_path%3D{schema}")
    db.connect()
    return db


def test_a_named_lock_excludes_within_a_schema_only(schemas: tuple[str, str]) -> None:
    first, second = schemas
    a1, a2, b = _connect(first), _connect(first), _connect(second)
    try:
        assert try_advisory_lock(a1, "maild:scheduler")
        assert not try_advisory_lock(a2, "maild:scheduler")  # the same desk: excluded
        assert try_advisory_lock(b, "maild:scheduler")  # another schema: its own lock
        advisory_unlock(a1, "maild:scheduler")
        assert try_advisory_lock(a2, "maild:scheduler")
    finally:
        for db in (a1, a2, b):
            db.close()
