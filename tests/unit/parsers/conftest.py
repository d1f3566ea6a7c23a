"""Shared helpers for the parser unit tests: read fixture mail as raw bytes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

MAIL_FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "mail"


@pytest.fixture
def fixture_bytes() -> Callable[[str], bytes]:
    """``fixture_bytes("gmail-en-alternative-qp.eml")`` -> the file's raw bytes."""

    def read(name: str) -> bytes:
        return (MAIL_FIXTURES / name).read_bytes()

    return read
