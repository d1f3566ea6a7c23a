"""settings.toml -> Settings: one generic reader for every section of ``schema.py``,
collecting all problems before failing; each message names its key the way an admin
finds it in the file (``departments[1].addresses[0]: ...``). The hooks below add what
one key cannot say alone: defaults computed from other keys and cross-key checks.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from maild.config import checks as c
from maild.config.oauth2 import read_auth
from maild.config.schema import OAUTH_KEYS, keys, toml_names
from maild.config.settings import SECTIONS, Settings

DEFAULT_CONFIG_NAME = "settings.toml"
CONFIG_ENV = "MAILD_CONFIG"

Values = dict[str, Any]


class ConfigError(Exception):
    """settings.toml is unusable; ``errors`` holds one message per problem."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """--config, else $MAILD_CONFIG, else ./settings.toml."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(CONFIG_ENV)
    return Path(env) if env else Path(DEFAULT_CONFIG_NAME)


def load_settings(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate a settings file; raise ConfigError listing every problem."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read: {exc}"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
    return parse_settings(data, base_dir=path.resolve().parent, env=env, source_path=path)


def parse_settings(
    data: Mapping[str, Any],
    base_dir: Path,
    env: Mapping[str, str] | None = None,
    source_path: Path | None = None,
) -> Settings:
    """Validate a parsed TOML document; raise ConfigError with every problem found."""
    r = Reader(base_dir, os.environ if env is None else env)
    r.unknown(data, "", {name for name, _, _ in SECTIONS})
    parsed: dict[str, Any] = {}
    for name, cls, shape in SECTIONS:
        hook = _HOOKS.get(name)
        if shape == "array":
            tables = r.array_of_tables(data, name)
            rows: list[Values] = []
            parsed[name] = rows  # the rows read so far, for the hook
            for i, t in enumerate(tables):
                values = r.section(cls, t, f"{name}[{i}]")
                if hook:
                    hook(r, values, t, f"{name}[{i}]", parsed)
                rows.append(values)
            check_all = _ARRAY_CHECKS.get(name)
            if check_all:
                check_all(r, rows, tables)
            parsed[name] = tuple(cls(**values) for values in rows)
        elif shape == "optional" and name not in data:
            parsed[name] = None
        else:
            t = r.table(data, name)
            values = r.section(cls, t, name)
            if hook:
                hook(r, values, t, name, parsed)
            parsed[name] = cls(**values)
    if r.errors:
        raise ConfigError(r.errors)
    return Settings(**parsed, source_path=source_path)


class Reader:
    """Walks a TOML document, collecting errors instead of raising on the first."""

    def __init__(self, base_dir: Path, env: Mapping[str, str]) -> None:
        self.errors: list[str] = []
        self.base_dir = base_dir
        self.env = env

    def error(self, key: str, message: str) -> None:
        self.errors.append(f"{key}: {message}")

    def section(
        self, cls: type, t: Mapping[str, Any], prefix: str, check_unknown: bool = True
    ) -> Values:
        """Every key of ``cls`` read from table ``t``; keys ``cls`` lacks are errors, but
        for the OAuth2 keys in a table that has ``auth`` (they are read by ``_auth``)."""
        known = toml_names(cls)
        if "auth" in known:
            known |= OAUTH_KEYS
        if check_unknown:
            self.unknown(t, prefix, known)
        values: Values = {}
        for name, spec, default in keys(cls):
            if spec.secret:
                secret = self.secret(t, prefix, name)
                values[name] = default if secret is None else secret
                continue
            if spec.required and name not in t:
                self.error(_join(prefix, name), "is required")
                values[name] = None
                continue
            default = None if default is dataclasses.MISSING else default  # hook fills it
            if spec.kind is list:
                value = self.str_list(t, prefix, name, default, spec.check)
                if spec.lower and value is not None:
                    value = tuple(v.lower() for v in value)
            else:
                value = self.get(t, prefix, name, spec.kind, default, spec.check)
                if spec.lower and value is not None:
                    value = value.lower()
            if spec.path and value is not None:
                value = self.path(str(value))
            values[name] = value
        return values

    def table(self, data: Mapping[str, Any], name: str) -> dict[str, Any]:
        value = data.get(name, {})
        if not isinstance(value, dict):
            self.error(name, f"must be a table ([{name}]), got {_type_name(value)}")
            return {}
        return value

    def array_of_tables(self, data: Mapping[str, Any], name: str) -> list[dict[str, Any]]:
        value = data.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.error(name, f"must be an array of tables ([[{name}]])")
            return []
        return value

    def unknown(self, table: Mapping[str, Any], prefix: str, known: set[str]) -> None:
        for key in table:
            if key not in known:
                hint = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.75)
                suffix = f" (did you mean '{hint[0]}'?)" if hint else ""
                self.error(_join(prefix, key), f"unknown key{suffix}")

    def get(
        self,
        table: Mapping[str, Any],
        prefix: str,
        key: str,
        kind: type,
        default: Any,
        check: c.Check | None = None,
    ) -> Any:
        if key not in table:
            return default
        value = table[key]
        # TOML booleans are ints in Python; keep them apart.
        ok = False if isinstance(value, bool) and kind is not bool else isinstance(value, kind)
        if not ok:
            self.error(_join(prefix, key), f"must be {_type_label(kind)}, got {_type_name(value)}")
            return default
        problem = check(value) if check is not None else None
        if problem:
            self.error(_join(prefix, key), problem)
            return default
        return value

    def str_list(
        self,
        table: Mapping[str, Any],
        prefix: str,
        key: str,
        default: tuple[str, ...] | None,
        item_check: c.Check | None = None,
    ) -> tuple[str, ...] | None:
        value = self.get(table, prefix, key, list, None)
        if value is None:
            return default
        result: list[str] = []
        for i, item in enumerate(value):
            item_key = f"{_join(prefix, key)}[{i}]"
            if not isinstance(item, str):
                self.error(item_key, f"must be a string, got {_type_name(item)}")
                continue
            problem = item_check(item) if item_check else None
            if problem:
                self.error(item_key, problem)
                continue
            result.append(item)
        return tuple(result)

    def path(self, value: str | None) -> Path | None:
        if value is None:
            return None
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    def secret(self, table: Mapping[str, Any], prefix: str, stem: str) -> str | None:
        """Read ``<stem>_file`` or ``<stem>_env``; never ``<stem>`` itself."""
        if stem in table:
            self.error(
                _join(prefix, stem),
                f"secrets are not kept in settings.toml; use {stem}_file or {stem}_env",
            )
        file_key, env_key = f"{stem}_file", f"{stem}_env"
        file_value = self.get(table, prefix, file_key, str, None)
        env_value = self.get(table, prefix, env_key, str, None)
        if file_value and env_value:
            self.error(prefix or stem, f"set {file_key} or {env_key}, not both")
            return None
        if file_value:
            p = self.base_dir / Path(file_value).expanduser()
            try:
                return p.read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as exc:
                self.error(_join(prefix, file_key), f"cannot read {str(p)!r}: {exc.strerror}")
                return None
        if env_value:
            if env_value not in self.env:
                self.error(_join(prefix, env_key), f"environment variable {env_value} is not set")
                return None
            return self.env[env_value]
        return None


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _type_label(kind: type) -> str:
    labels = {str: "a string", int: "an integer", bool: "true or false", list: "a list"}
    return labels.get(kind, kind.__name__)


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    names = {str: "a string", int: "an integer", float: "a number", list: "a list", dict: "a table"}
    return names.get(type(value), type(value).__name__)


# ---------------------------------------------------------------------------
# Hooks: defaults from other keys, cross-key checks (run after a section is read)
# ---------------------------------------------------------------------------

Hook = Callable[[Reader, Values, Mapping[str, Any], str, dict[str, Any]], None]


def _daemon(r: Reader, v: Values, t: Mapping[str, Any], p: str, parsed: dict[str, Any]) -> None:
    v["base_url"] = v["base_url"].rstrip("/")
    if v["templates_dir"] is not None and not v["templates_dir"].is_dir():
        r.error("daemon.templates_dir", f"{str(v['templates_dir'])!r} is not a directory")


def _database(r: Reader, v: Values, t: Mapping[str, Any], p: str, parsed: dict[str, Any]) -> None:
    url = v["url"]
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        rel = url[len("sqlite:///") :]
        if rel and rel != ":memory:":
            v["url"] = f"sqlite:///{r.path(rel)}"


def _imap(r: Reader, v: Values, t: Mapping[str, Any], p: str, parsed: dict[str, Any]) -> None:
    names = {source["name"] for source in parsed["imap"]}
    if v["name"] is not None and v["name"] in names:
        r.error(f"{p}.name", f"{v['name']!r} is used by another [[imap]] source")
    if "port" not in t:
        v["port"] = 993 if v["security"] == "tls" else 143
    v["oauth"] = read_auth(r, v, t, p)
    if v["auth"] == "xoauth2" and v["name"] == "smtp":
        r.error(f"{p}.name", "'smtp' names the [smtp] tokens; choose another name")
    if v["auth"] == "password" and not any(k in t for k in ("password_file", "password_env")):
        r.error(f"{p}.password_file", "is required (or password_env)")


def _smtp(r: Reader, v: Values, t: Mapping[str, Any], p: str, parsed: dict[str, Any]) -> None:
    if "port" not in t:
        v["port"] = {"tls": 465, "starttls": 587, "none": 25}.get(v["security"], 587)
    v["oauth"] = read_auth(r, v, t, p)
    if v["auth"] == "xoauth2" and not v["username"]:
        r.error("smtp.username", "is required when smtp.auth = 'xoauth2'")
    has_secret = "password_file" in t or "password_env" in t
    if v["auth"] == "password" and v["username"] and v["password"] is None and not has_secret:
        r.error("smtp.password_file", "is required when smtp.username is set")


def _department(r: Reader, v: Values, t: Mapping[str, Any], p: str, parsed: dict[str, Any]) -> None:
    if v["name"] is None:
        v["name"] = (v["key"] or "").capitalize()
    if isinstance(t.get("addresses"), list) and not t["addresses"]:
        r.error(f"{p}.addresses", "must list at least one address")
    v["addresses"] = v["addresses"] or ()


def _departments(r: Reader, rows: list[Values], tables: list[dict[str, Any]]) -> None:
    if not tables:
        r.error("departments", "at least one [[departments]] table is required")
    seen_keys: set[str] = set()
    seen_addresses: dict[str, str] = {}
    for i, v in enumerate(rows):
        key = v["key"] or f"department{i}"
        if key in seen_keys:
            r.error(f"departments[{i}].key", f"{key!r} is used by another department")
        seen_keys.add(key)
        for j, address in enumerate(v["addresses"]):
            if address in seen_addresses:
                r.error(
                    f"departments[{i}].addresses[{j}]",
                    f"{address!r} is already an address of department {seen_addresses[address]!r}",
                )
            seen_addresses.setdefault(address, key)
    defaults = [v["key"] for v in rows if v["default"]]
    if len(defaults) > 1:
        r.error("departments", f"only one department may be default, got {', '.join(defaults)}")


def _agent(r: Reader, v: Values, t: Mapping[str, Any], p: str, parsed: dict[str, Any]) -> None:
    departments = parsed["departments"]
    email = v["email"] or ""
    v["email"] = email
    if email and email in {a for d in departments for a in d.addresses}:
        r.error(f"{p}.email", f"{email!r} is a department address, not an agent's")
    if v["name"] is None:
        v["name"] = email.split("@")[0]
    if not isinstance(t.get("departments"), list):
        # No list: every department, in file order (a set's order changes per run).
        v["departments"] = tuple(d.key for d in departments)
    keys_ = {d.key for d in departments}
    for j, dep in enumerate(v["departments"]):
        if dep not in keys_:
            known = ", ".join(sorted(keys_)) or "none"
            r.error(f"{p}.departments[{j}]", f"unknown department {dep!r} (known: {known})")


def _agents(r: Reader, rows: list[Values], tables: list[dict[str, Any]]) -> None:
    seen: set[str] = set()
    for i, v in enumerate(rows):
        if v["email"] and v["email"] in seen:
            r.error(f"agents[{i}].email", f"{v['email']!r} is listed twice")
        seen.add(v["email"])


def _agents_auth(
    r: Reader, v: Values, t: Mapping[str, Any], p: str, parsed: dict[str, Any]
) -> None:
    if v["require"] == "authentication-results" and not v["trusted_authserv_id"]:
        r.error(
            "agents_auth.trusted_authserv_id",
            "is required when agents_auth.require = 'authentication-results'",
        )


def _business_hours(
    r: Reader, v: Values, t: Mapping[str, Any], p: str, parsed: dict[str, Any]
) -> None:
    if v["open"] >= v["close"]:
        r.error("business_hours.close", "must be later than business_hours.open")
        return
    last = v["open"]
    for start, end in sorted(b.split("-") for b in v["breaks"]):
        if not last < start < end < v["close"]:
            r.error(
                "business_hours.breaks",
                "each break must lie between open and close without overlapping another",
            )
            return
        last = end


_HOOKS: dict[str, Hook] = {
    "daemon": _daemon,
    "database": _database,
    "imap": _imap,
    "smtp": _smtp,
    "departments": _department,
    "agents": _agent,
    "agents_auth": _agents_auth,
    "business_hours": _business_hours,
}
_ARRAY_CHECKS: dict[str, Callable[[Reader, list[Values], list[dict[str, Any]]], None]] = {
    "departments": _departments,
    "agents": _agents,
}
