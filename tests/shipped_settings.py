"""A copy of the shipped settings.toml with a few keys changed, for tests that run ``maild``.

The copy keeps the shipped file's comments and every other value, so a test on it
also checks that the example admins start from still works. Keys are replaced in
their own table (``("web", "enabled")``); a key the file does not set is added
right under the table's header, and a table it lacks is appended.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "settings.toml"

_HEADER = re.compile(r"^\s*\[(\[)?\s*([A-Za-z0-9_.-]+)\s*\]")


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value))
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def patch_settings(text: str, changes: dict[tuple[str, str], Any]) -> str:
    """Set ``table.key = value`` for each change; only single (not array) tables."""
    pending = dict(changes)
    out: list[str] = []
    table = ""
    for line in text.splitlines():
        header = _HEADER.match(line)
        if header:
            table = "" if header.group(1) else header.group(2)
            out.append(line)
            continue
        for (t, key), value in list(pending.items()):
            if t == table and re.match(rf"^\s*{re.escape(key)}\s*=", line):
                line = f"{key} = {toml_value(value)}"
                del pending[(t, key)]
        out.append(line)
    # Keys the file does not set: under their table's header, or in a new table.
    for (t, key), value in pending.items():
        for i, line in enumerate(out):
            header = _HEADER.match(line)
            if header and not header.group(1) and header.group(2) == t:
                out.insert(i + 1, f"{key} = {toml_value(value)}")
                break
        else:
            out += ["", f"[{t}]", f"{key} = {toml_value(value)}"]
    return "\n".join(out) + "\n"


def write_settings(
    folder: Path,
    *,
    listener_port: int | None = None,
    web_port: int | None = None,
    extra: dict[tuple[str, str], Any] | None = None,
    name: str = "settings.toml",
) -> Path:
    """The shipped settings with data_dir (and so the SQLite database) under ``folder``.

    The listener and the web view are disabled unless given a port.
    """
    changes: dict[tuple[str, str], Any] = {
        ("daemon", "data_dir"): str(folder / "var"),
        ("listener", "enabled"): listener_port is not None,
        ("web", "enabled"): web_port is not None,
    }
    if listener_port is not None:
        changes[("listener", "port")] = listener_port
    if web_port is not None:
        changes[("web", "port")] = web_port
    changes.update(extra or {})
    path = folder / name
    path.write_text(patch_settings(SHIPPED.read_text(encoding="utf-8"), changes), "utf-8")
    return path
