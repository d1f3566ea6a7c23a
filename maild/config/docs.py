"""Write docs/configuration.md from the schema: ``python -m maild.config.docs >
docs/configuration.md`` (tests/unit/test_config_docs.py fails when the file is stale)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from maild.config.schema import OAuthKeys, keys
from maild.config.settings import SECTIONS

INTRO = """\
# settings.toml reference

<!-- Generated from maild/config/schema.py by `python -m maild.config.docs`; edit the
schema, not this file. -->

One file configures maild. `maild check-config` validates it; unknown keys are errors
(with a "did you mean" hint), and every error names its key. Relative paths are
relative to the settings file's folder. Secrets are never written in the file: every
secret (`password`, `client_secret`) is given as `<key>_file` (a file whose content is
the secret; works with systemd `LoadCredential=`) or `<key>_env` (the name of an
environment variable).
"""

_TITLES = {
    "table": "`[{name}]`",
    "optional": "`[{name}]` (optional)",
    "array": "`[[{name}]]` (zero or more)",
}
_NOTES = {
    "imap": "Sources of inbound mail, read with IMAP IDLE or polling.",
    "smtp": "Outbound SMTP; without the table mail is written to the Maildir `data_dir/outbox/`.",
    "departments": "At least one.",
}


def shown_default(spec: Any, default: Any) -> str:
    """A default as the docs show it."""
    if spec.shown is not None:
        return spec.shown
    if spec.required:
        return "— (required)"
    if default is None:
        return "none"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, tuple):
        return "`[" + ", ".join(f'"{item}"' for item in default) + "]`"
    if isinstance(default, str | Path):
        return f'`"{default}"`'
    return f"`{default}`"


def _rows(cls: type) -> list[str]:
    rows = []
    for name, spec, default in keys(cls):
        key = f"`{name}_file` / `{name}_env`" if spec.secret else f"`{name}`"
        rows.append(f"| {key} | {shown_default(spec, default)} | {spec.doc} |")
    return rows


def _table(title: str, note: str, cls: type) -> list[str]:
    lines = ["", f"## {title}", ""]
    if note:
        lines += [note, ""]
    lines += ["| key | default | meaning |", "| --- | --- | --- |", *_rows(cls)]
    return lines


def render() -> str:
    lines = [INTRO.rstrip("\n")]
    for name, cls, shape in SECTIONS:
        lines += _table(_TITLES[shape].format(name=name), _NOTES.get(name, ""), cls)
    lines += _table(
        'OAuth2 keys (per `[[imap]]` and `[smtp]` with `auth = "xoauth2"`)',
        "SPEC §14 and [oauth.md](oauth.md); with `xoauth2` no password is read and "
        "`smtp.username` is required. Elsewhere these keys are errors.",
        OAuthKeys,
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
