"""Group commit (SPEC §2.3): a batch's raw rows commit together, then one transaction
processes them with a savepoint per message. One failing message is quarantined
alone; messages of one batch see each other's effects in order."""

from __future__ import annotations

import json
from pathlib import Path

from maild.storage.models import Inbound, Ticket

from maild.inbound_store import Incoming
from maild.pipeline import ingest_batch
from maild.policy import types as outcomes
from tests.component.conftest import counts, mail, outbox

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"


def test_a_batch_keeps_order_and_one_failing_message_is_quarantined_alone(files_app) -> None:
    app = files_app
    # A real failure path: the attachment store cannot be created (a file is in the way).
    (app.settings.daemon.data_dir / "attachments").write_text("not a folder")
    raws = [
        mail(subject="Primeiro pedido", sender="a@cliente.example"),
        mail(subject="Segundo pedido", sender="b@cliente.example"),
        mail(subject="Com anexo", attachments=[("tela.png", "image/png", PNG)]),
        mail(subject="Quarto pedido", sender="d@cliente.example"),
    ]

    results = ingest_batch(app, [Incoming(raw, "test") for raw in raws])

    assert [r.outcome for r in results] == [
        outcomes.CREATED,
        outcomes.CREATED,
        outcomes.QUARANTINED,
        outcomes.CREATED,
    ]
    assert Ticket.select().count() == 3
    assert len(outbox("confirmation")) == 3
    quarantined = Inbound.get_by_id(results[2].inbound_id)
    assert quarantined.state == "quarantined" and quarantined.detail


def test_messages_of_one_batch_see_each_other(app_any_db) -> None:
    app = app_any_db
    opening = mail(subject="Impressora parada", message_id="open-1@cliente.example")
    same_again = mail(subject="Impressora parada", message_id="open-2@cliente.example")

    results = ingest_batch(
        app,
        [Incoming(opening, "test"), Incoming(opening, "test"), Incoming(same_again, "test")],
    )

    assert [r.outcome for r in results] == [
        outcomes.CREATED,
        outcomes.DUPLICATE_MESSAGE,
        outcomes.DUPLICATE_SUBJECT_REJECTED,
    ]
    assert counts()["tickets"] == 1
    assert app.metrics.batch_size._sum.get() >= 3  # observed once, with the batch's size


def test_maild_ingest_of_many_files_answers_each_in_order(app, write_config, cli, tmp_path) -> None:
    config = write_config(app)
    files = []
    for n in range(7):
        path = Path(tmp_path) / f"m{n}.eml"
        path.write_bytes(mail(subject=f"Pedido {n}", message_id=f"file-{n}@cliente.example"))
        files.append(str(path))

    code, out, err = cli(app, config, "ingest", *files)

    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["message_id"] for line in lines] == [f"file-{n}@cliente.example" for n in range(7)]
    assert {line["outcome"] for line in lines} == {outcomes.CREATED}
