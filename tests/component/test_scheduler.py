"""The scheduler (SPEC §11) on SQLite and PostgreSQL, driven by an injected clock:
each job a minute before, at and after its boundary, across a weekend and a
Brazilian holiday, with lunch breaks and the SLA clock paused while waiting."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from maild.storage.models import Event, Outbox, SchedulerMark, Ticket, aware

from maild.app import App
from maild.clock import FrozenClock
from maild.pipeline import ingest
from maild.scheduler.runner import next_due, run_due
from tests.component.conftest import CUSTOMER, bodies, mail

SP = ZoneInfo("America/Sao_Paulo")
TICKET_JOBS = {
    "first_response_warning",
    "first_response_breach",
    "resolution_warning",
    "resolution_breach",
    "reminder",
    "autoresolve",
    "autoclose",
    "rating_reminder",
}


def at(clock: FrozenClock, *args: int) -> datetime:
    clock.set(datetime(*args, tzinfo=SP).astimezone(UTC))
    return clock.now()


def tick(app: App, clock: FrozenClock, *args: int) -> list[tuple[str, int | None]]:
    now = at(clock, *args)
    result = run_due(app, now)
    return [(a.job, a.ticket) for a in result.actions if a.job in TICKET_JOBS]


def open_ticket(app: App, clock: FrozenClock, *args: int, subject: str = "Erro na NF-e") -> Ticket:
    at(clock, *args)
    result = ingest(app, mail(subject=subject))
    assert result.outcome == "created"
    return Ticket.get(Ticket.number == result.ticket)


def agent_reply(app: App, clock: FrozenClock, ticket: Ticket, *args: int) -> None:
    at(clock, *args)
    raw = mail(
        sender="ana@example.com",
        sender_name="Ana",
        subject=f"[#{ticket.number}] Re: x",
        body="Pode enviar o XML da nota?\n",
    )
    assert ingest(app, raw).outcome == "appended"


def customer_reply(app: App, clock: FrozenClock, ticket: Ticket, *args: int) -> None:
    at(clock, *args)
    raw = mail(subject=f"[#{ticket.number}] Re: x", body="Segue o XML.\n")
    assert ingest(app, raw).outcome == "appended"


def local(value: datetime | None) -> datetime:
    moment = aware(value)
    assert moment is not None
    return moment.astimezone(SP).replace(tzinfo=None)


@pytest.fixture
def sched_app(make_app, database_url: str) -> App:
    return make_app(
        database_url, digest={"enabled": False}, sla={"escalate_to": ["gerente@example.com"]}
    )


def test_first_response_warning_then_breach_at_their_minute(
    sched_app: App, clock: FrozenClock
) -> None:
    t = open_ticket(sched_app, clock, 2026, 11, 24, 10, 0)  # Tuesday; due 14:00, warn 13:00
    assert local(t.first_response_due) == datetime(2026, 11, 24, 14, 0)
    assert tick(sched_app, clock, 2026, 11, 24, 12, 59) == []
    assert tick(sched_app, clock, 2026, 11, 24, 13, 0) == [("first_response_warning", t.number)]
    assert tick(sched_app, clock, 2026, 11, 24, 13, 1) == []
    assert tick(sched_app, clock, 2026, 11, 24, 13, 59) == []
    assert tick(sched_app, clock, 2026, 11, 24, 14, 0) == [("first_response_breach", t.number)]
    assert tick(sched_app, clock, 2026, 11, 24, 14, 1) == []
    warning = Outbox.get(Outbox.template == "sla_warning")
    assert warning.recipients == ["ana@example.com"]
    text, _html = bodies(warning)
    assert "terça-feira, 24/11/2026 às 14:00" in text
    escalation = Outbox.get(Outbox.template == "sla_escalation")
    assert sorted(escalation.recipients) == ["ana@example.com", "gerente@example.com"]
    breaches = list(Event.select().where(Event.kind == "sla_breached"))
    assert [e.data["sla"] for e in breaches] == ["first_response"]


def test_an_agent_reply_meets_the_first_response(sched_app: App, clock: FrozenClock) -> None:
    t = open_ticket(sched_app, clock, 2026, 11, 24, 10, 0)
    agent_reply(sched_app, clock, t, 2026, 11, 24, 12, 0)
    assert tick(sched_app, clock, 2026, 11, 24, 15, 0) == []
    assert (
        not Outbox.select().where(Outbox.template.in_(["sla_warning", "sla_escalation"])).exists()
    )


def test_weekend_and_holiday_do_not_count(sched_app: App, clock: FrozenClock) -> None:
    # Thursday 19/11 16:30; Friday 20/11 is Consciência Negra (national since 2024):
    # one hour on Thursday, then Monday 08:30 + 3h.
    t = open_ticket(sched_app, clock, 2026, 11, 19, 16, 30)
    assert local(t.first_response_due) == datetime(2026, 11, 23, 11, 30)
    assert tick(sched_app, clock, 2026, 11, 20, 12, 0) == []
    # The warning hour before Monday 11:30 is Monday 10:30.
    assert tick(sched_app, clock, 2026, 11, 23, 10, 29) == []
    assert tick(sched_app, clock, 2026, 11, 23, 10, 30) == [("first_response_warning", t.number)]
    assert tick(sched_app, clock, 2026, 11, 23, 11, 30) == [("first_response_breach", t.number)]


def test_warning_across_the_night(sched_app: App, clock: FrozenClock) -> None:
    # Opened Monday 16:00: due Tuesday 11:00 (1h30 Monday + 2h30 Tuesday), warned 10:00.
    t = open_ticket(sched_app, clock, 2026, 11, 23, 16, 0)
    assert local(t.first_response_due) == datetime(2026, 11, 24, 11, 0)
    assert tick(sched_app, clock, 2026, 11, 24, 9, 59) == []
    assert tick(sched_app, clock, 2026, 11, 24, 10, 0) == [("first_response_warning", t.number)]


def test_lunch_break_does_not_count(make_app, clock: FrozenClock) -> None:
    app = make_app(digest={"enabled": False}, business_hours={"breaks": ["12:00-13:30"]})
    t = open_ticket(app, clock, 2026, 11, 24, 10, 0)
    # 10:00-12:00 is 2h; 13:30 + 2h = 15:30. The warning hour: 14:30.
    assert local(t.first_response_due) == datetime(2026, 11, 24, 15, 30)
    assert tick(app, clock, 2026, 11, 24, 14, 29) == []
    assert tick(app, clock, 2026, 11, 24, 14, 30) == [("first_response_warning", t.number)]


def test_waiting_pauses_the_resolution_clock(sched_app: App, clock: FrozenClock) -> None:
    t = open_ticket(sched_app, clock, 2026, 11, 24, 10, 0)
    assert local(t.resolution_due) == datetime(2026, 12, 2, 10, 0)  # 6 business days
    agent_reply(sched_app, clock, t, 2026, 11, 24, 10, 30)  # waiting_customer from here
    customer_reply(sched_app, clock, t, 2026, 11, 26, 10, 30)  # 2 business days (18h) later
    run_due(sched_app, at(clock, 2026, 11, 26, 10, 31))
    t = Ticket.get_by_id(t.id)
    assert t.sla_pauses == []
    assert local(t.resolution_due) == datetime(2026, 12, 4, 10, 0)
    # Warned an hour before the moved due time, not before the first one.
    assert tick(sched_app, clock, 2026, 12, 2, 9, 0) == []
    assert tick(sched_app, clock, 2026, 12, 4, 8, 59) == []
    assert tick(sched_app, clock, 2026, 12, 4, 9, 0) == [("resolution_warning", t.number)]
    assert tick(sched_app, clock, 2026, 12, 4, 10, 0) == [("resolution_breach", t.number)]


def test_no_pause_when_disabled(make_app, database_url: str, clock: FrozenClock) -> None:
    app = make_app(database_url, digest={"enabled": False}, sla={"pause_while_waiting": False})
    t = open_ticket(app, clock, 2026, 11, 24, 10, 0)
    agent_reply(app, clock, t, 2026, 11, 24, 10, 30)
    customer_reply(app, clock, t, 2026, 11, 26, 10, 30)
    assert tick(app, clock, 2026, 12, 2, 9, 0) == [("resolution_warning", t.number)]


def test_silent_customer_reminded_then_resolved_then_closed(
    sched_app: App, clock: FrozenClock
) -> None:
    t = open_ticket(sched_app, clock, 2026, 11, 24, 10, 0)
    agent_reply(sched_app, clock, t, 2026, 11, 24, 10, 30)
    # 3 business days waiting: Friday 27/11 10:30.
    assert tick(sched_app, clock, 2026, 11, 27, 10, 29) == []
    assert tick(sched_app, clock, 2026, 11, 27, 10, 30) == [("reminder", t.number)]
    reminder = Outbox.get(Outbox.template == "customer_reminder")
    assert reminder.recipients == [CUSTOMER]
    assert "quinta-feira, 03/12/2026 às 10:30" in bodies(reminder)[0]
    assert tick(sched_app, clock, 2026, 11, 27, 10, 31) == []
    # 4 more business days: Thursday 03/12 10:30.
    assert tick(sched_app, clock, 2026, 12, 3, 10, 29) == []
    assert tick(sched_app, clock, 2026, 12, 3, 10, 30) == [("autoresolve", t.number)]
    assert Ticket.get_by_id(t.id).status == "resolved"
    resolved = Outbox.get(Outbox.template == "autoresolved")
    assert "?rate=5" in bodies(resolved)[0]
    # The rating reminder two days later, once.
    assert tick(sched_app, clock, 2026, 12, 5, 10, 29) == []
    assert tick(sched_app, clock, 2026, 12, 5, 10, 30) == [("rating_reminder", t.number)]
    assert tick(sched_app, clock, 2026, 12, 6, 10, 30) == []
    # Closed seven days after the resolution, without mail.
    sent = Outbox.select().count()
    assert tick(sched_app, clock, 2026, 12, 10, 10, 29) == []
    assert tick(sched_app, clock, 2026, 12, 10, 10, 30) == [("autoclose", t.number)]
    assert Ticket.get_by_id(t.id).status == "closed"
    assert Outbox.select().count() == sent


def test_a_customer_answer_stops_the_reminder(sched_app: App, clock: FrozenClock) -> None:
    t = open_ticket(sched_app, clock, 2026, 11, 24, 10, 0)
    agent_reply(sched_app, clock, t, 2026, 11, 24, 10, 30)
    customer_reply(sched_app, clock, t, 2026, 11, 26, 9, 0)
    assert [j for j, _ in tick(sched_app, clock, 2026, 11, 27, 10, 30)] == []


def test_dry_run_changes_nothing(sched_app: App, clock: FrozenClock) -> None:
    t = open_ticket(sched_app, clock, 2026, 11, 24, 10, 0)
    before = (Outbox.select().count(), Event.select().count(), SchedulerMark.select().count())
    result = run_due(sched_app, at(clock, 2026, 11, 24, 14, 0), dry_run=True)
    assert [(a.job, a.ticket) for a in result.actions if a.job in TICKET_JOBS] == [
        ("first_response_breach", t.number)
    ]
    after = (Outbox.select().count(), Event.select().count(), SchedulerMark.select().count())
    assert after == before


def test_next_due_is_the_nearest_step(sched_app: App, clock: FrozenClock) -> None:
    open_ticket(sched_app, clock, 2026, 11, 24, 10, 20)  # warning 13:20, breach 14:20
    now = at(clock, 2026, 11, 24, 10, 25)
    assert next_due(sched_app, now) == datetime(2026, 11, 24, 11, 0, tzinfo=SP)  # housekeeping
    now = at(clock, 2026, 11, 24, 13, 5)
    run_due(sched_app, now)
    assert next_due(sched_app, now) == datetime(2026, 11, 24, 13, 20, tzinfo=SP)
    run_due(sched_app, at(clock, 2026, 11, 24, 13, 20))
    assert next_due(sched_app, clock.now()) == datetime(2026, 11, 24, 14, 0, tzinfo=SP)


def test_the_daemon_runs_what_is_due_and_sleeps_until_the_next(
    app: App, clock: FrozenClock
) -> None:
    import asyncio

    from maild.daemon import Daemon

    t = open_ticket(app, clock, 2026, 11, 24, 10, 0)
    at(clock, 2026, 11, 24, 13, 0)  # the warning is due; the breach at 14:00
    daemon = Daemon(app)

    def templates() -> list[str]:
        return [r.template for r in Outbox.select().where(Outbox.ticket == t.id)]

    async def scenario() -> None:
        daemon._loop = asyncio.get_running_loop()
        daemon._stopping = asyncio.Event()
        daemon._wake_sender = asyncio.Event()
        daemon._wake_scheduler = asyncio.Event()
        task = asyncio.create_task(daemon.scheduler_loop())
        for _ in range(200):
            if "sla_warning" in await asyncio.to_thread(templates):
                break
            await asyncio.sleep(0.05)
        assert "sla_escalation" not in await asyncio.to_thread(templates)
        at(clock, 2026, 11, 24, 14, 0)
        daemon.wake_sender()  # a commit elsewhere: the scheduler looks again
        for _ in range(200):
            if "sla_escalation" in await asyncio.to_thread(templates):
                break
            await asyncio.sleep(0.05)
        daemon.request_stop()
        await asyncio.wait_for(task, 10)

    asyncio.run(scenario())
    assert templates().count("sla_warning") == 1
    assert templates().count("sla_escalation") == 1


def test_v4_migration_adds_the_clock_columns_to_an_existing_database(
    sched_app: App, clock: FrozenClock
) -> None:
    from maild.storage.migrations import LATEST, migrate
    from maild.storage.models import SchemaVersion
    from playhouse import migrate as schema

    t = open_ticket(sched_app, clock, 2026, 11, 24, 10, 0)
    agent_reply(sched_app, clock, t, 2026, 11, 24, 10, 30)
    db = sched_app.db
    # Back to a version 3 database: no marks table, no clock columns.
    migrator = schema.SchemaMigrator.from_database(db)
    schema.migrate(
        migrator.drop_column("ticket", "waiting_since"),
        migrator.drop_column("ticket", "sla_pauses"),
    )
    db.drop_tables([SchedulerMark])
    SchemaVersion.delete().where(SchemaVersion.version > 3).execute()
    assert migrate(db) == (3, LATEST)
    t = Ticket.get_by_id(t.id)
    assert t.sla_pauses == []
    assert local(t.waiting_since) == datetime(2026, 11, 24, 10, 30)  # its last change
    assert tick(sched_app, clock, 2026, 11, 27, 10, 30) == [("reminder", t.number)]


def test_tick_command(sched_app: App, clock: FrozenClock, write_config, cli) -> None:
    import json

    if "Postgres" in type(sched_app.db).__name__:
        pytest.skip("the in-process CLI helper runs on SQLite")
    t = open_ticket(sched_app, clock, 2026, 11, 24, 10, 0)
    config = write_config(sched_app, digest={"enabled": False})
    code, out, err = cli(
        sched_app, config, "tick", "--now", "2026-11-24T14:00:00-03:00", "--dry-run"
    )
    assert code == 0, err
    assert f"would run first_response_breach    #{t.number}" in out
    assert "first_response was due 2026-11-24T14:00-03:00" in out
    assert not Outbox.select().where(Outbox.template == "sla_escalation").exists()
    code, out, err = cli(sched_app, config, "tick", "--now", "2026-11-24T14:00:00-03:00", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["dry_run"] is False
    assert {
        "job": "first_response_breach",
        "ticket": t.number,
        "detail": data["actions"][0]["detail"],
    } in data["actions"]
    assert Outbox.select().where(Outbox.template == "sla_escalation").count() == 1
    code, out, err = cli(sched_app, config, "tick", "--now", "2026-11-24T14:00")
    assert code == 1 and "needs an offset" in err


def test_morning_digest_breached_first_then_by_arrival(
    make_app, database_url: str, clock: FrozenClock
) -> None:
    app = make_app(database_url)

    def digests(*args: int) -> list[str]:
        result = run_due(app, at(clock, *args))
        return [a.detail for a in result.actions if a.job == "digest"]

    older = open_ticket(app, clock, 2026, 11, 19, 10, 0, subject="Boleto duplicado")
    agent_reply(app, clock, older, 2026, 11, 19, 11, 0)
    customer_reply(app, clock, older, 2026, 11, 19, 12, 0)
    newer = open_ticket(app, clock, 2026, 11, 23, 9, 0, subject="Sistema fora do ar")
    assert digests(2026, 11, 23, 14, 0) == ["ana@example.com: 2 ticket(s)"]  # Monday's
    assert digests(2026, 11, 24, 8, 29) == []
    assert digests(2026, 11, 24, 8, 30) == ["ana@example.com: 2 ticket(s)"]
    assert digests(2026, 11, 24, 9, 0) == []
    assert digests(2026, 11, 28, 8, 30) == []  # Saturday
    rows = list(Outbox.select().where(Outbox.template == "agent_digest").order_by(Outbox.id))
    assert [r.recipients for r in rows] == [["ana@example.com"], ["ana@example.com"]]
    text, html = bodies(rows[-1])
    assert text.index(f"[#{newer.number}]") < text.index(f"[#{older.number}]")
    assert f"[PRAZO ESTOURADO] [#{newer.number}]" in text
    assert "Prazo estourado" in html


def test_tickets_list_overdue_and_due_times(
    app: App, clock: FrozenClock, write_config, cli
) -> None:
    import json

    late = open_ticket(app, clock, 2026, 11, 24, 9, 0, subject="Atrasado")  # due 13:00
    answered = open_ticket(app, clock, 2026, 11, 24, 9, 30, subject="Respondido")
    agent_reply(app, clock, answered, 2026, 11, 24, 10, 0)
    fresh = open_ticket(app, clock, 2026, 11, 24, 12, 0, subject="Novo")  # due 16:00
    at(clock, 2026, 11, 24, 13, 30)
    config = write_config(app)
    code, out, err = cli(app, config, "tickets", "list", "--json")
    assert code == 0, err
    rows = {r["number"]: r for r in json.loads(out)}
    assert rows[late.number]["first_response_due"] == "2026-11-24T13:00:00-03:00"
    assert rows[late.number]["overdue"] is True
    assert rows[answered.number]["first_response_due"] is None
    # waiting since 10:00: the 3h30 paused so far move it from 09:30 to 13:00
    assert rows[answered.number]["resolution_due"] == "2026-12-02T13:00:00-03:00"
    assert rows[fresh.number]["overdue"] is False
    code, out, err = cli(app, config, "tickets", "list", "--overdue", "--json")
    assert [r["number"] for r in json.loads(out)] == [late.number]
    code, out, err = cli(app, config, "tickets", "list", "--overdue")
    assert "2026-11-24 13:00 OVERDUE" in out
    code, out, err = cli(app, config, "tickets", "show", str(fresh.number), "--json")
    assert json.loads(out)["first_response_due"] == "2026-11-24T16:00:00-03:00"


def test_report_for_a_month(app: App, clock: FrozenClock, write_config, cli) -> None:
    import json

    from maild.web.actions import rate_ticket

    a = open_ticket(app, clock, 2026, 11, 23, 9, 0, subject="Um")
    agent_reply(app, clock, a, 2026, 11, 23, 10, 0)  # 1h
    b = open_ticket(app, clock, 2026, 11, 23, 16, 30, subject="Dois")
    agent_reply(app, clock, b, 2026, 11, 24, 9, 30)  # 1h Monday + 1h Tuesday = 2h
    c = open_ticket(app, clock, 2026, 11, 24, 9, 0, subject="Três")  # breached at 13:00
    run_due(app, at(clock, 2026, 11, 24, 13, 0))
    # b resolved by the agent, then rated 4 by the customer.
    at(clock, 2026, 11, 24, 11, 30)
    raw = mail(
        sender="ana@example.com",
        sender_name="Ana",
        subject=f"[#{b.number}] Re: x",
        body="#status resolved\nResolvido.\n",
    )
    assert ingest(app, raw).outcome == "appended"
    b = Ticket.get_by_id(b.id)
    assert rate_ticket(app, str(b.number), b.access_key, "4", "") is not None
    config = write_config(app)
    code, out, err = cli(app, config, "report", "--month", "2026-11", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["month"] == "2026-11"
    suporte = next(d for d in report["departments"] if d["department"] == "suporte")
    assert suporte["opened"] == 3 and suporte["resolved"] == 1
    assert suporte["first_response_hours"] == {"count": 2, "median": 1.5, "p90": 2.0}
    assert suporte["resolution_hours"] == {"count": 1, "median": 4.0, "p90": 4.0}
    assert suporte["sla_breached"] == 1
    assert suporte["sla_compliance_percent"] == 66.7
    assert suporte["ratings"] == {
        "count": 1,
        "mean": 4.0,
        "distribution": {"1": 0, "2": 0, "3": 0, "4": 1, "5": 0},
    }
    assert c.number  # opened, unanswered
    code, out, err = cli(app, config, "report", "--month", "2026-11")
    assert code == 0, err
    assert out.splitlines()[1].split()[:3] == ["DEPT", "OPENED", "RESOLVED"]
    assert "66.7%" in out
    code, out, err = cli(app, config, "report", "--department", "juridico")
    assert code == 1 and "no department" in err


def test_ticket_page_shows_due_times(app: App, clock: FrozenClock) -> None:
    from maild.web.data import load_page

    t = open_ticket(app, clock, 2026, 11, 24, 10, 0)
    page = load_page(app, str(t.number), t.access_key)
    assert page is not None
    assert page.first_response_due == datetime(2026, 11, 24, 14, 0, tzinfo=SP)
    assert page.resolution_due == datetime(2026, 12, 2, 10, 0, tzinfo=SP)
    agent_reply(app, clock, t, 2026, 11, 24, 11, 0)
    page = load_page(app, str(t.number), t.access_key)
    assert page is not None and page.first_response_due is None


def test_mails_show_the_due_times_still_ahead(app: App, clock: FrozenClock) -> None:
    t = open_ticket(app, clock, 2026, 11, 24, 10, 0)
    text, html = bodies(Outbox.get(Outbox.template == "confirmation"))
    assert "Resposta até: terça-feira, 24/11/2026 às 14:00" in text
    assert "Solução até:  quarta-feira, 02/12/2026 às 10:00" in text
    assert "quarta-feira, 02/12/2026 às 10:00" in html
    agent_reply(app, clock, t, 2026, 11, 24, 11, 0)
    customer_reply(app, clock, t, 2026, 11, 24, 12, 0)  # an hour waiting: one hour later
    notice = list(Outbox.select().where(Outbox.template == "agent_notification"))[-1]
    text, _html = bodies(notice)
    assert "Resposta até" not in text  # met by Ana's reply
    assert "Solução até:  quarta-feira, 02/12/2026 às 11:00" in text


def test_days_of_hourly_ticks_send_every_due_mail_once(
    make_app, database_url: str, clock: FrozenClock
) -> None:
    from collections import Counter
    from datetime import timedelta

    from maild.business_time import calendar_for, is_business_day

    app = make_app(database_url)
    silent = open_ticket(app, clock, 2026, 11, 24, 10, 0, subject="Ninguém responde")
    waiting = open_ticket(app, clock, 2026, 11, 24, 10, 0, subject="Cliente some")
    agent_reply(app, clock, waiting, 2026, 11, 24, 11, 0)
    now = at(clock, 2026, 11, 24, 11, 0)
    end = datetime(2026, 12, 12, 0, 0, tzinfo=SP)
    while now < end:
        run_due(app, now)
        clock.advance(hours=1)
        now = clock.now()
    per_ticket = Counter(
        (r.ticket_id, r.template) for r in Outbox.select().where(Outbox.ticket.is_null(False))
    )
    assert {k: v for k, v in per_ticket.items() if k[0] == silent.id} == {
        (silent.id, "confirmation"): 1,
        (silent.id, "agent_notification"): 1,
        (silent.id, "sla_warning"): 2,  # first response, resolution
        (silent.id, "sla_escalation"): 2,
    }
    assert {k: v for k, v in per_ticket.items() if k[0] == waiting.id} == {
        (waiting.id, "confirmation"): 1,
        (waiting.id, "agent_notification"): 1,
        (waiting.id, "agent_reply"): 1,
        (waiting.id, "customer_reminder"): 1,
        (waiting.id, "autoresolved"): 1,
        (waiting.id, "rating_reminder"): 1,
    }
    assert Ticket.get_by_id(silent.id).status == "open"
    assert Ticket.get_by_id(waiting.id).status == "closed"
    cal = calendar_for(app.settings)
    days = [datetime(2026, 11, 24) + timedelta(days=n) for n in range(18)]
    business_days = sum(1 for d in days if is_business_day(cal, d.date()))
    digests = Outbox.select().where(Outbox.template == "agent_digest").count()
    assert digests == business_days  # Ana's, every business day; Bruno has nothing open
    assert Event.select().where(Event.kind == "sla_breached").count() == 2
    exposition = app.metrics.exposition().decode()
    assert 'maild_scheduler_runs_total{job="autoclose"} 1.0' in exposition


def test_a_failing_ticket_does_not_stop_the_others(make_app, clock: FrozenClock, tmp_path) -> None:
    from structlog.testing import capture_logs

    broken = tmp_path / "templates" / "pt_BR"
    broken.mkdir(parents=True)
    # An admin override that fails at render time for one ticket only.
    (broken / "sla_warning.txt.j2").write_text(
        "{{ separator }}\n{% if 'Quebra' in ticket.subject %}{{ missing }}{% endif %}ok\n"
    )
    app = make_app(digest={"enabled": False}, daemon={"templates_dir": str(tmp_path / "templates")})
    bad = open_ticket(app, clock, 2026, 11, 24, 10, 0, subject="Quebra")
    good = open_ticket(app, clock, 2026, 11, 24, 10, 0, subject="Funciona")
    with capture_logs() as logs:
        assert tick(app, clock, 2026, 11, 24, 13, 0) == [("first_response_warning", good.number)]
    assert [e["ticket"] for e in logs if e["event"] == "scheduler.ticket_failed"] == [bad.number]
    assert not SchedulerMark.select().where(SchedulerMark.ticket == bad.id).exists()
