"""docs/configuration.md is generated from the settings schema and kept in step."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from maild.config.docs import render
from maild.config.schema import OAuthKeys, keys
from maild.config.settings import SECTIONS

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_committed_reference_matches_the_schema() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), (
        "docs/configuration.md is stale: run `python -m maild.config.docs > docs/configuration.md`"
    )


def test_every_key_has_a_doc_line_and_appears_in_the_reference() -> None:
    text = render()
    for _, cls, _ in (*SECTIONS, ("oauth", OAuthKeys, "")):
        for name, spec, _ in keys(cls):
            assert spec.doc.strip(), f"{cls.__name__}.{name} has no doc line"
            assert f"`{name}" in text, name


def test_every_field_of_a_section_is_a_key_or_filled_by_a_hook() -> None:
    """Only the OAuth2 settings object is built from other keys (the OAuthKeys table)."""
    for _, cls, _ in SECTIONS:
        plain = {f.name for f in dataclasses.fields(cls)} - {name for name, _, _ in keys(cls)}
        assert plain <= {"oauth"}, (cls.__name__, plain)
