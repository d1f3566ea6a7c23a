"""Per-message cost of the pipeline alone: CPU ms and SQL statements per message.

No IMAP and no SMTP: generated messages (the mix of ``bench/ingest.py``) go through
``ingest_batch`` in batches of 50 on a fresh SQLite file, then the sender renders
and hands every queued mail to a Maildir. Prints CPU ms and statements per
message for each stage; ``--profile`` adds the top of a cProfile.

    .venv/bin/python bench/pipeline_profile.py --messages 600 [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import pstats
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import structlog

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest_corpus import make_message

from maild.app import build_app
from maild.config import load_settings
from maild.inbound_store import Incoming
from maild.pipeline import ingest_batch
from maild.sender import OutboxSender
from maild.transports import make_transport

SETTINGS = """
[daemon]
instance = "Bench Suporte"
data_dir = "{data}"
language = "pt_BR"

[listener]
enabled = false

[web]
enabled = false

[[departments]]
key = "suporte"
name = "Suporte"
addresses = ["suporte@example.com"]
default = true

[limits]
max_messages_per_sender_per_hour = 100000
max_auto_replies_per_recipient_per_hour = 100000
"""


class StatementCounter:
    def __init__(self, db) -> None:  # type: ignore[no-untyped-def]
        self.counts: Counter[str] = Counter()
        self.texts: Counter[str] = Counter()
        original = db.execute_sql

        def counted(sql, params=None, *args, **kwargs):  # type: ignore[no-untyped-def]
            self.counts[sql.split(" ", 1)[0].upper()] += 1
            self.texts[sql[:150]] += 1
            return original(sql, params, *args, **kwargs)

        db.execute_sql = counted

    def take(self) -> Counter[str]:
        counts, self.counts = self.counts, Counter()
        return counts


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=600)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--statements", action="store_true", help="the pipeline's SQL, by count")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "settings.toml"
        path.write_text(SETTINGS.format(data=Path(tmp) / "var"))
        settings = load_settings(path)
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
        app = build_app(settings)
        bound = app.bound()
        bound.__enter__()
        counter = StatementCounter(app.db)
        rng = random.Random(7)
        raws = [make_message(i, rng)[0] for i in range(args.messages)]
        profile = cProfile.Profile() if args.profile else None
        counter.take()
        started = time.process_time()
        if profile:
            profile.enable()
        for start in range(0, len(raws), args.batch):
            ingest_batch(app, [Incoming(raw, "bench") for raw in raws[start : start + args.batch]])
        pipeline_cpu = time.process_time() - started
        pipeline_sql = counter.take()
        pipeline_texts, counter.texts = counter.texts, Counter()
        started = time.process_time()
        sender = OutboxSender(app, make_transport(app), owner="bench")
        sent = 0
        while True:
            done = sender.run_once()
            if not done:
                break
            sent += done
        sender_cpu = time.process_time() - started
        sender_sql = counter.take()
        if profile:
            profile.disable()
        n = args.messages
        print(f"{n} messages, batches of {args.batch}, SQLite")
        print(
            f"pipeline: {pipeline_cpu / n * 1000:6.2f} ms CPU/message, "
            f"{sum(pipeline_sql.values()) / n:5.1f} statements/message {dict(pipeline_sql)}"
        )
        print(
            f"sender:   {sender_cpu / max(sent, 1) * 1000:6.2f} ms CPU/mail, {sent} mails, "
            f"{sum(sender_sql.values()) / max(sent, 1):5.1f} statements/mail {dict(sender_sql)}"
        )
        if args.statements:
            for text, count in pipeline_texts.most_common(40):
                print(f"{count / n:6.2f}  {text}")
        if profile:
            stats = pstats.Stats(profile).sort_stats("cumulative")
            stats.print_stats(25)
            stats.print_stats(r"/(maild|storage|parsers)/", 50)
        app.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
