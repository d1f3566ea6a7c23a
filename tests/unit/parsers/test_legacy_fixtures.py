"""Table-driven: mail from legacy clients (Outlook 2000, Exchange 5.5, Eudora, Pine,
Netscape 4.7, Outlook Express, Mac mailers) parses to the values next to it.

Each ``name.eml`` under tests/fixtures/legacy/ has ``name.expected.json``: subject,
sender address, exact body text and the attachment names in order. Every file in
the mail must be listed (saved or refused later), never dropped. The test prints
the folder's rate of fully right mails and holds the issue's goal.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from maild.parsers.message import parse_message

FOLDER = Path(__file__).resolve().parents[2] / "fixtures" / "legacy"
CASES = sorted(FOLDER.glob("*.eml"))
GOAL = 0.95


def _actual(path: Path) -> dict[str, object]:
    msg = parse_message(path.read_bytes())
    return {
        "subject": msg.subject,
        "from": msg.from_addr,
        "text": msg.text,
        "attachments": [a.filename for a in msg.attachments],
    }


def _expected(path: Path) -> dict[str, object]:
    return json.loads(path.with_suffix(".expected.json").read_text(encoding="utf-8"))


def test_rate(capsys: pytest.CaptureFixture[str]) -> None:
    assert len(CASES) >= 10
    misses = []
    for path in CASES:
        got, want = _actual(path), _expected(path)
        wrong = {k: (want[k], got[k]) for k in want if got[k] != want[k]}
        if wrong:
            misses.append(f"{path.name}: {wrong}")
    rate = (len(CASES) - len(misses)) / len(CASES)
    with capsys.disabled():
        print(f"\nlegacy fixtures: {len(CASES) - len(misses)}/{len(CASES)} right ({rate:.1%})")
    assert rate >= GOAL, "\n".join(misses)


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_every_file_is_kept_with_its_bytes(path: Path) -> None:
    msg = parse_message(path.read_bytes())
    assert len(msg.attachments) == len(_expected(path)["attachments"])  # type: ignore[arg-type]
    assert all(part.payload for part in msg.attachments)
