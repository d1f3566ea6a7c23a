"""Table-driven: every mail under tests/fixtures/replies/ strips to the text next to it.

Each ``name.eml`` has ``name.expected.txt`` beside it: the exact new text the
customer or agent wrote, as agents see it (parse -> ``strip_message``). The test
prints the folder's exact-match rate and holds it at the issue's goal; each
mismatch is listed with a diff so the failing class is visible at once.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest
from maild.parsers.message import parse_message
from maild.parsers.strip import strip_message

FOLDER = Path(__file__).resolve().parents[2] / "fixtures" / "replies"
CASES = sorted(FOLDER.glob("*.eml"))
GOAL = 0.98


def _expected(path: Path) -> str:
    return path.with_suffix(".expected.txt").read_text(encoding="utf-8").rstrip("\n")


def _stripped(path: Path) -> str:
    return strip_message(parse_message(path.read_bytes()))


def test_every_fixture_has_its_expected_text() -> None:
    assert len(CASES) >= 40
    for path in CASES:
        assert path.with_suffix(".expected.txt").is_file(), path.name


def test_exact_match_rate(capsys: pytest.CaptureFixture[str]) -> None:
    misses: list[str] = []
    for path in CASES:
        got, want = _stripped(path), _expected(path)
        if got != want:
            diff = "\n".join(difflib.unified_diff(want.split("\n"), got.split("\n"), lineterm=""))
            misses.append(f"--- {path.name}\n{diff}")
    rate = (len(CASES) - len(misses)) / len(CASES)
    with capsys.disabled():
        print(f"\nreply fixtures: {len(CASES) - len(misses)}/{len(CASES)} exact ({rate:.1%})")
    assert rate >= GOAL, "\n\n".join(misses)


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_never_empty_and_no_history(path: Path) -> None:
    stripped = _stripped(path)
    assert stripped.strip()
    for ours in ("Responda acima", "Please type your reply", "Ref: MAILD", "opened ticket"):
        assert ours not in stripped
