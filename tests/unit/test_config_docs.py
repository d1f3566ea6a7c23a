"""docs/configuration.md is generated from the settings schema and kept in step."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from maild.config import ConfigError, parse_settings
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


def _wrong(kind: type) -> object:
    return 1.5 if kind is not int else "1"


def test_every_table_key_of_the_wrong_type_is_named_by_the_reader() -> None:
    """The generic reader checks each declared key: one wrong value, one message naming it."""
    base = {"departments": [{"key": "suporte", "addresses": ["suporte@example.com"]}]}
    for section, cls, shape in SECTIONS:
        if shape != "table":
            continue
        for name, spec, _ in keys(cls):
            if spec.secret:
                continue
            data = {**base, section: {name: _wrong(spec.kind)}}
            try:
                parse_settings(data, base_dir=Path("/srv/maild"), env={})
            except ConfigError as exc:
                assert exc.errors == [
                    f"{section}.{name}: must be {_label(spec.kind)}, got a "
                    f"{'number' if spec.kind is not int else 'string'}"
                ]
            else:
                raise AssertionError(f"{section}.{name} accepted a wrong value")


def _label(kind: type) -> str:
    return {str: "a string", int: "an integer", bool: "true or false", list: "a list"}[kind]
