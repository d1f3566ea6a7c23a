"""The shipped dashboard and alert rules name only series that /metrics exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from maild.storage.models import Ticket

from maild.app import App

ROOT = Path(__file__).resolve().parents[3]
SERIES = re.compile(r"\bmaild_[a-z_]+")


def exposed_names(app: App) -> set[str]:
    app.metrics.set_source_state("suporte", "connected")
    app.metrics.delivery("sent", 1.0)
    text = app.metrics.exposition().decode()
    samples = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}
    # A family with no sample yet (no IMAP source in the database) still has its TYPE line.
    families = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}
    return samples | families


def test_dashboard_and_alerts_use_only_exposed_series(app: App, ticket: Ticket) -> None:
    names = exposed_names(app)
    dashboard = json.loads((ROOT / "contrib/grafana/maild-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    rules = (ROOT / "contrib/prometheus/maild-alerts.yml").read_text()

    used = {n for e in exprs for n in SERIES.findall(e)} | set(SERIES.findall(rules))

    assert used, "no maild series found in contrib/"
    assert used - names == set()


def test_panels_do_not_overlap() -> None:
    dashboard: dict[str, Any] = json.loads(
        (ROOT / "contrib/grafana/maild-dashboard.json").read_text()
    )
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        g = panel["gridPos"]
        mine = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & mine, panel["title"]
        cells |= mine
