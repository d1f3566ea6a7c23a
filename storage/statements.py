"""INSERT, UPDATE and single-row SELECT statements built once per shape, then reused.

peewee builds the SQL text of every query from its node tree, which cost about a
third of the pipeline's CPU (bench/README.md): a message inserts a dozen rows
whose statements differ only in their values. ``insert_row`` asks peewee for the
text the first time a model inserts a given set of columns, checks that it can
reproduce peewee's parameters itself, and from then on only converts the values
(``Field.db_value``) and executes the remembered text. ``update_row`` does the
same for ``save()`` of a row's changed columns, and ``select_by_field`` for
``Model.get(Model.field == value)`` (``get_or_none``, ``get_by_id``). Anything unusual (SQL
expressions as values, an unsaved related row, a parameter mismatch) goes
peewee's own way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import peewee as pw

# (model, columns, placeholder, returning) -> (sql, fields in parameter order), or
# None when peewee's parameters could not be reproduced for that shape.
_Shape = tuple[str, type, tuple[str, ...], str, bool]
_Statement = tuple[str, tuple[pw.Field, ...]]
_CACHE: dict[_Shape, _Statement | None] = {}
_LOCK = threading.Lock()


def _statement(shape: _Shape, build: Callable[[], _Statement | None]) -> _Statement | None:
    """The statement remembered for ``shape``, built (or found unbuildable) once."""
    entry = _CACHE.get(shape, False)
    if entry is False:
        entry = build()
        with _LOCK:
            _CACHE[shape] = entry
    return entry


def _columns(model: type[pw.Model], data: dict[str, Any]) -> tuple[pw.Field, ...]:
    """The fields of ``data`` in the order peewee writes their columns."""
    return tuple(sorted((model._meta.fields[name] for name in data), key=lambda f: f._sort_key))


def _values(fields: tuple[pw.Field, ...], data: dict[str, Any]) -> list[Any]:
    return [field.db_value(data[field.name]) for field in fields]


def _plain(instance: pw.Model, data: dict[str, Any]) -> bool:
    """Values a remembered statement can take: no SQL expressions, and no related
    row given as an object that was unsaved when assigned (its key is missing from
    the data, even if it was saved since): peewee fills those in itself."""
    if any(isinstance(value, pw.Node) for value in data.values()):
        return False
    return not any(
        (name in data and data[name] is None) or getattr(rel, "_pk", 0) is None
        for name, rel in instance.__rel__.items()
    )


def insert_row(instance: pw.Model) -> bool:
    """Insert ``instance`` (a new row with an auto-increment key) with a cached
    statement; False when it must go peewee's way (``save(force_insert=True)``)."""
    meta = instance._meta
    if not meta.auto_increment or instance._pk is not None:
        return False
    data = {
        name: value for name, value in instance.__data__.items() if name != meta.primary_key.name
    }
    if not data or not _plain(instance, data):
        return False
    db = meta.database
    returning = bool(db.returning_clause)
    shape: _Shape = ("insert", type(instance), tuple(sorted(data)), db.param, returning)
    entry = _statement(shape, lambda: _build_insert(instance, data))
    if entry is None:
        return False
    sql, fields = entry
    cursor = db.execute_sql(sql, _values(fields, data))
    instance._pk = cursor.fetchone()[0] if returning else cursor.lastrowid
    instance._dirty.clear()
    return True


def _build_insert(instance: pw.Model, data: dict[str, Any]) -> _Statement | None:
    model = type(instance)
    sql, params = model.insert(**data).sql()
    fields = _columns(model, data)
    return (sql, fields) if list(params) == _values(fields, data) else None


def update_row(instance: pw.Model) -> int | None:
    """``save()`` of an existing row's changed columns with a cached statement:
    the number of rows updated, or None when it must go peewee's way."""
    meta = instance._meta
    pk = instance._pk
    if pk is None or meta.composite_key or not meta.only_save_dirty:
        return None
    names = tuple(sorted(instance._dirty - {meta.primary_key.name}))
    if not names:
        return None  # peewee's own answer for "nothing to save"
    data = {name: instance.__data__.get(name) for name in names}
    if isinstance(pk, pw.Node) or not _plain(instance, data):
        return None
    db = meta.database
    shape: _Shape = ("update", type(instance), names, db.param, False)
    entry = _statement(shape, lambda: _build_update(instance, data))
    if entry is None:
        return None
    sql, fields = entry
    cursor = db.execute_sql(sql, [*_values(fields, data), meta.primary_key.db_value(pk)])
    instance._dirty -= set(names)
    return cursor.rowcount


def _build_update(instance: pw.Model, data: dict[str, Any]) -> _Statement | None:
    model = type(instance)
    sql, params = model.update(**data).where(instance._pk_expr()).sql()
    fields = _columns(model, data)
    mine = [*_values(fields, data), model._meta.primary_key.db_value(instance._pk)]
    return (sql, fields) if list(params) == mine else None


NOT_CACHED = object()  # select_by_field: "ask peewee"


def select_by_field(model: type[pw.Model], query: tuple[Any, ...], filters: dict[str, Any]) -> Any:
    """``model.get(*query, **filters)`` for one ``field == value`` (or a bare key):
    the row as peewee builds it, None when there is none, or NOT_CACHED for any
    other query."""
    if filters or len(query) != 1:
        return NOT_CACHED
    term = query[0]
    meta = model._meta
    if isinstance(term, int) and not isinstance(term, bool) and meta.auto_increment:
        field, value = meta.primary_key, term
    elif (
        isinstance(term, pw.Expression)
        and term.op == pw.OP.EQ
        and isinstance(term.lhs, pw.Field)
        and term.lhs.model is model
        and not isinstance(term.rhs, pw.Node)
        and term.rhs is not None
    ):
        field, value = term.lhs, term.rhs
    else:
        return NOT_CACHED
    db = meta.database
    shape: _Shape = ("get", model, (field.name,), db.param, False)
    entry = _statement(shape, lambda: _build_select(model, field, value))
    if entry is None:
        return NOT_CACHED
    sql, fields = entry
    cursor = db.execute_sql(sql, [field.db_value(value), 1, 0])
    row = cursor.fetchone()
    if row is None:
        return None
    instance = model(
        __no_default__=1, **{f.name: f.python_value(v) for f, v in zip(fields, row, strict=True)}
    )
    instance._dirty.clear()
    return instance


def _build_select(model: type[pw.Model], field: pw.Field, value: Any) -> _Statement | None:
    query = model.select().where(field == value).paginate(1, 1)
    sql, params = query.sql()
    if list(params) != [field.db_value(value), 1, 0]:
        return None
    fields = tuple(model._meta.sorted_fields)
    if len(query._returning) != len(fields):
        return None
    return sql, fields


def cached_shapes() -> int:
    """How many statements are remembered (for tests)."""
    return sum(1 for entry in _CACHE.values() if entry is not None)
