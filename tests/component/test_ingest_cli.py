"""``maild ingest``, ``maild quarantine`` and ``maild tickets show --json`` run
in-process against the same SQLite database and data dir as the test's App."""

from __future__ import annotations

import json
import mailbox
from datetime import datetime

from maild.storage.models import Inbound

from maild.policy import types as o
from tests.component.conftest import (
    ENTRY_FIELDS,
    TICKET_FIELDS,
    counts,
    inbound_count,
    mail,
    ticket,
)
from tests.conftest import MAIL_FIXTURES, read_fixture

EX_TEMPFAIL = 75


def lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def raw_files(app) -> set[str]:
    root = app.settings.daemon.data_dir / "raw"
    return {p.name for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def test_ingest_files_prints_one_json_line_each(app, write_config, cli, tmp_path):
    config = write_config(app)
    files = []
    for name in ("gmail-ptbr-alternative-base64.eml", "auto-list-mail.eml", "empty.eml"):
        path = tmp_path / name
        path.write_bytes(read_fixture(name))
        files.append(str(path))

    code, out, err = cli(app, config, "ingest", *files)

    assert code == 0, err
    got = lines(out)
    assert [r["outcome"] for r in got] == [o.CREATED, o.AUTO_REPLY_IGNORED, o.QUARANTINED]
    assert all(set(r) == {"outcome", "ticket", "message_id"} for r in got)
    assert (
        got[0]["message_id"] == "CAF+3kZp7Q2mYbU9=x1rV0aHq4nT2w8cLkEJQ6xN5mB9oYz7sDg@mail.gmail.com"
    )
    assert ticket(got[0]["ticket"]).requester == "joao.ribeiro.1987@gmail.com"
    assert got[1]["ticket"] is None
    assert "Traceback" not in err


def test_ingest_from_stdin(app, write_config, cli):
    config = write_config(app)
    code, out, _ = cli(app, config, "ingest", stdin=mail(message_id="stdin-1@c.example"))
    assert code == 0
    [line] = lines(out)
    assert line["outcome"] == o.CREATED and line["message_id"] == "stdin-1@c.example"


def test_rerunning_the_same_files_changes_nothing(app, write_config, cli, tmp_path):
    config = write_config(app)
    names = [
        "gmail-ptbr-alternative-base64.eml",
        "attachments-png-jpeg-gif-pdf.eml",
        "no-message-id.eml",
    ]
    files = []
    for name in names:
        (tmp_path / name).write_bytes(read_fixture(name))
        files.append(str(tmp_path / name))
    code, out, _ = cli(app, config, "ingest", *files)
    assert code == 0 and [r["outcome"] for r in lines(out)] == [o.CREATED] * 3
    before, stored = counts(), raw_files(app)

    code, out, _ = cli(app, config, "ingest", *files)

    assert code == 0
    assert [r["outcome"] for r in lines(out)] == [o.DUPLICATE_MESSAGE] * 3
    assert counts() == before
    assert raw_files(app) == stored


def test_dry_run_changes_nothing(app, write_config, cli, tmp_path):
    config = write_config(app)
    existing = tmp_path / "existing.eml"
    existing.write_bytes(read_fixture("no-message-id.eml"))
    cli(app, config, "ingest", str(existing))
    single = tmp_path / "one.eml"
    single.write_bytes(read_fixture("attachments-png-jpeg-gif-pdf.eml"))
    before, inbound, stored = counts(), inbound_count(), raw_files(app)

    code, out, err = cli(app, config, "ingest", "--dry-run", str(single), str(existing))

    assert code == 0, err
    got = lines(out)
    assert got[0]["outcome"] == o.CREATED and got[0]["dry_run"] is True
    assert got[1]["outcome"] == o.DUPLICATE_MESSAGE  # same bytes, no Message-ID: seen
    assert counts() == before and inbound_count() == inbound
    assert raw_files(app) == stored
    assert not (app.settings.daemon.data_dir / "attachments").exists()


def test_dry_run_on_an_mbox(app, write_config, cli, tmp_path):
    config = write_config(app)
    path = tmp_path / "caixa.mbox"
    box = mailbox.mbox(str(path))
    box.add(mail(subject="Primeiro", message_id="mbox-1@c.example"))
    box.add(mail(subject="Segundo", message_id="mbox-2@c.example", sender="b@outra.example"))
    box.close()
    before, inbound = counts(), inbound_count()

    code, out, _ = cli(app, config, "ingest", "--dry-run", str(path))

    assert code == 0
    got = lines(out)
    assert [r["message_id"] for r in got] == ["mbox-1@c.example", "mbox-2@c.example"]
    assert all(r["outcome"] == o.CREATED for r in got)
    assert counts() == before and inbound_count() == inbound

    code, out, _ = cli(app, config, "ingest", str(path))  # and for real, both stored
    assert [r["outcome"] for r in lines(out)] == [o.CREATED, o.CREATED]


def test_unwritable_data_dir_exits_75_and_the_message_can_be_retried(
    files_app, write_config, cli, tmp_path
):
    app = files_app
    # Tests run as root, where chmod does not stop writes: put a plain file
    # where the raw store's folder must be created.
    config = write_config(app)
    raw_dir = app.settings.daemon.data_dir / "raw"
    raw_dir.write_text("in the way")
    path = tmp_path / "m.eml"
    path.write_bytes(mail(message_id="retry-1@c.example"))

    code, out, err = cli(app, config, "ingest", str(path))

    assert code == EX_TEMPFAIL
    assert out == ""
    assert "try again" in err and "Traceback" not in err
    assert inbound_count() == 0 and counts()["tickets"] == 0

    raw_dir.unlink()  # the MTA retries once the disk is back
    code, out, _ = cli(app, config, "ingest", str(path))
    assert code == 0 and lines(out)[0]["outcome"] == o.CREATED


def test_data_dir_under_a_file_exits_75(app, write_config, cli, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    config = write_config(app)
    text = config.read_text().replace(str(app.settings.daemon.data_dir), str(blocker / "var"))
    config.write_text(text)

    code, out, err = cli(app, config, "ingest", stdin=mail())

    assert code == EX_TEMPFAIL
    assert out == "" and "Traceback" not in err


def test_tickets_show_json(app, write_config, cli, tmp_path):
    config = write_config(app)
    opening = mail(
        sender="maria.souza@example.org",
        subject="Não consigo emitir NF-e",
        cc=("contador@example.org",),
    )
    path = tmp_path / "open.eml"
    path.write_bytes(opening)
    _, out, _ = cli(app, config, "ingest", str(path))
    number = lines(out)[0]["ticket"]
    reply = read_fixture("reply-gmail-ptbr.eml").replace(b"592110", str(number).encode())
    cli(app, config, "ingest", stdin=reply)
    att = read_fixture("attachments-png-jpeg-gif-pdf.eml").replace(
        b"marcos.teixeira@example.com.br", b"maria.souza@example.org"
    )
    att = att.replace(b"Subject: ", f"Subject: Re: [#{number}] ".encode(), 1)
    cli(app, config, "ingest", stdin=att)

    code, out, _ = cli(app, config, "tickets", "show", str(number), "--json")

    assert code == 0
    data = json.loads(out)
    assert set(data) >= set(TICKET_FIELDS) | {"thread", "events"}
    assert data["number"] == number and data["cc"] == ["contador@example.org"]
    assert data["message_count"] == 3 == len(data["thread"])
    assert data["link"].endswith(f"/t/{number}/{ticket(number).access_key}")
    for key in ("created_at", "updated_at"):
        assert datetime.fromisoformat(data[key]).utcoffset() is not None
    for entry in data["thread"]:
        assert set(entry) == ENTRY_FIELDS
        assert datetime.fromisoformat(entry["created_at"]).utcoffset() is not None
    _, reply_e, att_e = data["thread"]
    assert [e["outcome"] for e in data["thread"]] == [o.CREATED, o.APPENDED, o.APPENDED]
    assert reply_e["text"].startswith("Bom dia,")
    assert "escreveu:" not in reply_e["text"] and ">" not in reply_e["text"]
    assert {a["filename"] for a in att_e["attachments"]} == {
        "tela1.png",
        "foto.JPEG",
        "animacao.gif",
        "boleto.pdf",
    }
    for a in att_e["attachments"]:
        assert set(a) == {"filename", "content_type", "size", "sha256"}
        assert len(a["sha256"]) == 64 and a["size"] > 0
    assert "created" in [e["kind"] for e in data["events"]]


def test_tickets_show_lists_refused_attachments(app, write_config, cli):
    config = write_config(app)
    _, out, _ = cli(app, config, "ingest", stdin=read_fixture("attachment-png-that-is-exe.eml"))
    number = lines(out)[0]["ticket"]
    _, out, _ = cli(app, config, "tickets", "show", str(number), "--json")
    [entry] = json.loads(out)["thread"]
    assert entry["attachments"] == []
    assert [r["filename"] for r in entry["refused_attachments"]] == ["comprovante.png"]
    assert entry["refused_attachments"][0]["reason"]


def test_quarantine_list_and_release_of_a_rate_limited_message(make_app, write_config, cli, clock):
    limits = {"max_messages_per_sender_per_hour": 2}
    app = make_app(limits=limits)
    config = write_config(app, limits=limits)
    from maild.pipeline import ingest

    for n in range(2):
        ingest(app, mail(subject=f"Pedido {n}"))
    held = ingest(app, mail(subject="Pedido retido"))
    assert held.outcome == o.RATE_LIMITED

    code, out, _ = cli(app, config, "quarantine", "list", "--json")
    assert code == 0
    [row] = json.loads(out)
    assert (row["id"], row["state"], row["outcome"]) == (held.inbound_id, "held", o.RATE_LIMITED)

    code, out, err = cli(app, config, "quarantine", "release", str(held.inbound_id))

    assert code == 0, err
    result = json.loads(out)
    assert result["outcome"] == o.CREATED
    assert ticket(result["ticket"]).subject == "Pedido retido"
    assert Inbound.get_by_id(held.inbound_id).state == "processed"
    code, out, _ = cli(app, config, "quarantine", "list", "--json")
    assert json.loads(out) == []


def test_every_fixture_through_the_cli_gets_an_outcome(app, write_config, cli):
    config = write_config(app)
    files = sorted(str(p) for p in MAIL_FIXTURES.glob("*.eml"))

    code, out, err = cli(app, config, "ingest", *files)

    assert code == 0, err
    got = lines(out)
    assert len(got) == len(files)
    assert all(r["outcome"] in o.OUTCOMES for r in got)
    assert "Traceback" not in err
