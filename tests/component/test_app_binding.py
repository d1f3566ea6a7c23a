"""The models are bound per App, not per process: two Apps in one process each work
on their own database, threads and asyncio work included, and a CLI command opening
its own App leaves its caller's binding alone."""

from __future__ import annotations

import asyncio
import io
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from maild.storage.binding import UnboundDatabaseError, bind_process, bound_database
from maild.storage.models import Inbound, Ticket

from maild.app import App
from maild.cli import run_cli
from maild.clock import FrozenClock
from maild.pipeline import ingest
from maild.records import IngestResult
from maild.web import start_web
from tests.component.conftest import mail

ROUNDS = 12


@pytest.fixture
def two_apps(make_app: Callable[..., App], tmp_path: Path) -> Iterator[tuple[App, App]]:
    """Two Apps on two SQLite files, and no process-wide binding to fall back on: a
    model used outside an App's binding fails instead of quietly using another's."""
    apps = tuple(
        make_app(
            f"sqlite:///{tmp_path / name / 'maild.sqlite3'}",
            daemon={"data_dir": str(tmp_path / name / "var")},
            web={"enabled": True, "host": "127.0.0.1", "port": _free_port()},
        )
        for name in ("first", "second")
    )
    unbound = bind_process(None)
    try:
        yield apps  # type: ignore[misc]
    finally:
        bind_process(unbound)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ingest_many(app: App, name: str, barrier: threading.Barrier, results: list[Any]) -> None:
    barrier.wait(10)
    try:
        for n in range(ROUNDS):
            raw = mail(subject=f"{name} pedido {n}", message_id=f"{name}-{n}@cliente.example")
            results.append(ingest(app, raw))
    except BaseException as exc:  # reported by the test
        results.append(exc)


def _seen(app: App) -> tuple[set[str], set[str]]:
    """(message ids, ticket subjects) in ``app``'s database."""
    with app.bound():
        ids = {str(row.message_id).strip("<>") for row in Inbound.select(Inbound.message_id)}
        subjects = {row.subject for row in Ticket.select(Ticket.subject)}
    return ids, subjects


def test_two_apps_in_two_threads_each_write_and_see_only_their_own(
    two_apps: tuple[App, App],
) -> None:
    barrier = threading.Barrier(2)
    results: dict[str, list[Any]] = {"first": [], "second": []}
    threads = [
        app.thread(lambda a=app, n=name: _ingest_many(a, n, barrier, results[n]), name=name)
        for app, name in zip(two_apps, ("first", "second"), strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    for name, app in zip(("first", "second"), two_apps, strict=True):
        assert [r.outcome for r in results[name] if isinstance(r, IngestResult)] == (
            ["created"] * ROUNDS
        ), results[name]
        ids, subjects = _seen(app)
        assert ids == {f"{name}-{n}@cliente.example" for n in range(ROUNDS)}
        assert subjects == {f"{name} pedido {n}" for n in range(ROUNDS)}


def test_a_thread_not_started_by_its_app_has_no_database(two_apps: tuple[App, App]) -> None:
    errors: list[BaseException] = []

    def count() -> None:
        try:
            Ticket.select().count()
        except BaseException as exc:
            errors.append(exc)

    first, _ = two_apps
    with first.bound():  # a plain thread does not inherit this
        thread = threading.Thread(target=count)
        thread.start()
        thread.join(10)
    assert [type(e) for e in errors] == [UnboundDatabaseError]


def test_asyncio_tasks_and_worker_threads_inherit_the_binding(
    two_apps: tuple[App, App],
) -> None:
    first, second = two_apps
    with first.bound():
        ingest(first, mail(subject="só no primeiro"))

    async def counts() -> list[Any]:
        in_task = asyncio.create_task(asyncio.to_thread(Ticket.select().count))
        return [Ticket.select().count(), await in_task, await asyncio.to_thread(bound_database)]

    with first.bound():
        assert asyncio.run(counts())[:2] == [1, 1]
    with second.bound():
        found = asyncio.run(counts())
    assert found[:2] == [0, 0] and found[2] is second.db


def test_two_web_views_in_one_loop_each_serve_their_own_app(two_apps: tuple[App, App]) -> None:
    """As in the daemon: a server started by a task bound to an App serves that App."""
    first, second = two_apps
    with first.bound():
        ticket = Ticket.get(Ticket.number == ingest(first, mail(subject="no primeiro")).ticket)
    path = f"/t/{ticket.number}/{ticket.access_key}"

    async def serve(app: App, started: asyncio.Event, stop: asyncio.Event) -> None:
        runner = await start_web(app)
        started.set()
        await stop.wait()
        await runner.cleanup()

    async def scenario() -> list[int]:
        stop = asyncio.Event()
        started = [asyncio.Event(), asyncio.Event()]
        servers = []
        for app, event in zip(two_apps, started, strict=True):
            with app.bound():  # the task copies this context, as Daemon.run's tasks do
                servers.append(asyncio.create_task(serve(app, event, stop)))
        for event in started:
            await event.wait()
        statuses = []
        async with aiohttp.ClientSession() as session:
            for app in two_apps:
                async with session.get(f"http://127.0.0.1:{app.settings.web.port}{path}") as r:
                    statuses.append(r.status)
        stop.set()
        await asyncio.gather(*servers)
        return statuses

    assert asyncio.run(scenario()) == [200, 404]  # the ticket is first's only
    assert second.settings.web.port != first.settings.web.port


def test_a_cli_command_leaves_its_caller_s_binding_alone(
    two_apps: tuple[App, App], write_config: Any, tmp_path: Path, clock: FrozenClock
) -> None:
    caller, other = two_apps
    config = write_config(other)
    opened: list[App] = []

    def factory(settings: Any, clock: Any) -> App:
        opened.append(App(settings=settings, db=other.db, clock=clock))
        return opened[-1]

    def maild_ingest(subject: str) -> None:
        message = tmp_path / f"{len(opened)}.eml"
        message.write_bytes(mail(subject=subject))
        out, err = io.StringIO(), io.StringIO()
        argv = ["--config", str(config), "ingest", str(message)]
        assert run_cli(argv, out, err, clock=clock, app_factory=factory) == 0, err.getvalue()

    with caller.bound():
        maild_ingest("pelo CLI")
        assert bound_database() is caller.db  # still the caller's, in its context
        assert Ticket.select().count() == 0
    assert len(opened) == 1
    assert _seen(other)[1] == {"pelo CLI"}

    # A process-wide binding (a process with one App, a test's fixture) is kept too.
    previous = bind_process(caller.db)
    try:
        maild_ingest("pelo CLI de novo")
        assert bound_database() is caller.db
        assert Ticket.select().count() == 0
    finally:
        bind_process(previous)
    assert _seen(other)[1] == {"pelo CLI", "pelo CLI de novo"}
