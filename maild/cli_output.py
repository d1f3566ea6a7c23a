"""How the command line prints: JSON, and plain tables that fit a terminal."""

from __future__ import annotations

import json
from typing import Any, TextIO


def print_json(data: Any, out: TextIO, compact: bool = False) -> None:
    if compact:
        out.write(json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n")
    else:
        out.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def cell(value: Any, width: int = 48) -> str:
    if value is None:
        text = "-"
    elif isinstance(value, list):
        text = ", ".join(str(v) for v in value) or "-"
    else:
        text = str(value)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def print_table(
    rows: list[dict[str, Any]], columns: list[tuple[str, str]], out: TextIO, empty: str
) -> None:
    if not rows:
        print(empty, file=out)
        return
    cells = [[cell(r.get(key)) for key, _ in columns] for r in rows]
    widths = [max(len(title), *(len(c[i]) for c in cells)) for i, (_, title) in enumerate(columns)]
    print(
        "  ".join(t.ljust(w) for (_, t), w in zip(columns, widths, strict=True)).rstrip(), file=out
    )
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)).rstrip(), file=out)
