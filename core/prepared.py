"""Querysets compiled once per process and run many times with new values.

Building and compiling a queryset costs most of a simple statement's CPU here (about
0.6 of the 0.9 ms of `Order.objects.get(pk=...)` on the benchmark machine; see
docs/BENCHMARKS.md): the pipeline runs the same few statements for every order, so it
compiles each once and binds the order's values per call. What comes back is what the
ORM would give: model instances (with `select_related` rows and annotations),
`values_list` tuples or flat values, converters applied; updates return their row count.

    _ORDER = Prepared(lambda: Order.objects.filter(pk=Bind("pk", Order._meta.pk)))
    order = _ORDER.get(pk=order_id)

Statements run through Django's cursor, so transactions, query counting in tests and the
database metrics see them as usual. Libraries for this exist (django-prepared-query,
django_pq), but their last releases predate Django 3; this is the part of them we need.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.db import connections, transaction
from django.db.models import Field, Model, QuerySet
from django.db.models.expressions import Expression
from django.db.models.query import (
    FlatValuesListIterable,
    ModelIterable,
    ValuesListIterable,
    get_related_populators,
)
from django.db.models.sql import UpdateQuery


class Bind(Expression):
    """A named value of a prepared queryset: one placeholder, prepared for `field` per call."""

    def __init__(self, name: str, field: Field) -> None:
        super().__init__(output_field=field)
        self.name = name

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        return "%s", [self]

    def prepare(self, value: Any, connection: Any) -> Any:
        return self.output_field.get_db_prep_value(value, connection, prepared=False)


class _Compiled:
    """One queryset's SQL for one database, where its values go, and how rows become
    results."""

    def __init__(self, queryset: QuerySet, using: str, update: dict[str, Any] | None) -> None:
        if update is None:
            compiler = queryset.query.get_compiler(using=using)
        else:
            query = queryset.query.chain(UpdateQuery)
            query.add_update_values(update)
            if query.related_updates:
                raise ValueError("a prepared update must change one table")
            compiler = query.get_compiler(using=using)
        self.sql, params = compiler.as_sql()
        if update is not None and len(compiler.query.alias_map) > 1:
            # The update compiler rewrote a join into literal ids it just selected.
            raise ValueError("a prepared update must filter on its own table only")
        self.params = list(params)
        self.binds = [(i, p) for i, p in enumerate(self.params) if isinstance(p, Bind)]
        self.names = frozenset(bind.name for _, bind in self.binds)
        self.using = using
        self.iterable = None if update is not None else queryset._iterable_class
        if self.iterable is None:
            return
        if self.iterable not in (ModelIterable, ValuesListIterable, FlatValuesListIterable):
            raise ValueError(
                f"prepared querysets return models or values_list, not {self.iterable}"
            )
        if compiler.has_extra_select or (
            self.iterable is not ModelIterable and queryset.query.annotation_select
        ):
            # values_list() reorders such columns by name; not worth supporting here.
            raise ValueError("prepared values_list() takes plain fields only, and no extra()")
        fields = [column[0] for column in compiler.select[: compiler.col_count]]
        self.converters = compiler.get_converters(fields)
        self.apply_converters = compiler.apply_converters
        if self.iterable is ModelIterable:
            klass_info, select = compiler.klass_info, compiler.select
            self.model = klass_info["model"]
            first, last = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
            self.model_slice = slice(first, last)
            self.init_list = [column[0].target.attname for column in select[first:last]]
            self.populators = get_related_populators(klass_info, select, using)
            self.annotations = dict(compiler.annotation_col_map or {})

    def bind(self, values: dict[str, Any], connection: Any) -> list[Any]:
        """The statement's parameters with `values` in place of its `Bind`s."""
        if values.keys() != self.names:
            raise TypeError(f"prepared statement takes {sorted(self.names)}, got {sorted(values)}")
        params = list(self.params)
        for index, bind in self.binds:
            params[index] = bind.prepare(values[bind.name], connection)
        return params

    def execute(self, values: dict[str, Any]) -> Any:
        # The calling thread's connection: a statement compiled in one thread runs in all.
        connection = connections[self.using]
        params = self.bind(values, connection)
        with connection.cursor() as cursor:
            cursor.execute(self.sql, params)
            if self.iterable is None:
                return cursor.rowcount
            rows = cursor.fetchall()
        if self.converters:
            rows = list(self.apply_converters(rows, self.converters))
        if self.iterable is FlatValuesListIterable:
            return [row[0] for row in rows]
        if self.iterable is ValuesListIterable:
            return [tuple(row) for row in rows]
        return [self._instance(row) for row in rows]

    def _instance(self, row: Any) -> Model:
        obj = self.model.from_db(self.using, self.init_list, row[self.model_slice])
        for populator in self.populators:
            populator.populate(row, obj)
        for name, position in self.annotations.items():
            setattr(obj, name, row[position])
        return obj


class Prepared:
    """A queryset built by `build` (lazily: models need the app registry), compiled once
    per database alias. Pass `update` to make it an UPDATE of those fields (values may be
    `Bind`s too)."""

    def __init__(
        self,
        build: Callable[[], QuerySet],
        *,
        update: Callable[[], dict[str, Any]] | None = None,
        using: str = "default",
    ) -> None:
        self._build = build
        self._update = update
        self._using = using
        self._compiled: dict[tuple[str, str], _Compiled] = {}

    def _statement(self) -> _Compiled:
        connection = connections[self._using]
        key = (self._using, connection.vendor)
        compiled = self._compiled.get(key)
        if compiled is None:
            queryset = self._build()
            compiled = _Compiled(queryset, self._using, self._update() if self._update else None)
            self._compiled[key] = compiled
        return compiled

    def all(self, **values: Any) -> list[Any]:
        """The rows, as the queryset would give them."""
        return self._statement().execute(values)

    def first(self, **values: Any) -> Any:
        """The first row, or None (give the queryset its own ordering and [:1])."""
        rows = self._statement().execute(values)
        return rows[0] if rows else None

    def get(self, **values: Any) -> Any:
        """Exactly one row, raising the model's DoesNotExist or MultipleObjectsReturned."""
        statement = self._statement()
        rows = statement.execute(values)
        if len(rows) == 1:
            return rows[0]
        model = self._build().model
        if not rows:
            raise model.DoesNotExist(f"{model._meta.object_name} matching {values} does not exist")
        raise model.MultipleObjectsReturned(f"{len(rows)} {model._meta.object_name} rows match")

    def run(self, **values: Any) -> int:
        """Run a prepared update: the number of rows it changed."""
        if self._update is None:
            raise TypeError("run() is for prepared updates")
        return self._statement().execute(values)


class PreparedUpdates:
    """Prepared updates that belong together, in one round trip where the database allows:
    each changes its rows only if the one before it changed some, and all of it commits
    at once. On PostgreSQL that is one statement (data-modifying CTEs, each after the first
    guarded by `EXISTS` on its predecessor's rows), where a transaction around two updates
    costs four round trips (BEGIN, two UPDATEs, COMMIT); elsewhere the updates run in one
    transaction, stopping at the first that changes nothing. `run` returns each update's
    row count (0 for those that did not run)."""

    def __init__(self, *updates: Prepared) -> None:
        if len(updates) < 2 or any(u._update is None for u in updates):
            raise ValueError("PreparedUpdates takes two or more prepared updates")
        if len({u._using for u in updates}) != 1:
            raise ValueError("prepared updates run together on one database")
        self._updates = updates
        self._using = updates[0]._using
        self._sql: dict[tuple[str, str], str] = {}

    def _chained_sql(self, statements: list[_Compiled]) -> str:
        # Built from the compiled statements (placeholders only) and CTE names: no value
        # is ever formatted into it.
        parts = []
        for n, statement in enumerate(statements):
            if " WHERE " not in statement.sql:
                raise ValueError("each prepared update must filter its rows")
            guard = f" AND EXISTS (SELECT 1 FROM u{n - 1})" if n else ""  # noqa: S608
            parts.append(f"u{n} AS ({statement.sql}{guard} RETURNING 1)")
        counts = ", ".join(
            f"(SELECT count(*) FROM u{n})"  # noqa: S608
            for n in range(len(statements))
        )
        return f"WITH {', '.join(parts)} SELECT {counts}"

    def run(self, *values: dict[str, Any]) -> list[int]:
        if len(values) != len(self._updates):
            raise TypeError(f"{len(self._updates)} updates take {len(self._updates)} value sets")
        connection = connections[self._using]
        statements = [update._statement() for update in self._updates]
        if connection.vendor != "postgresql":
            counts = [0] * len(statements)
            with transaction.atomic(using=self._using):
                for n, (statement, given) in enumerate(zip(statements, values, strict=True)):
                    counts[n] = statement.execute(given)
                    if not counts[n]:
                        break
            return counts
        key = (self._using, connection.vendor)
        sql = self._sql.get(key)
        if sql is None:
            sql = self._sql[key] = self._chained_sql(statements)
        params = [
            param
            for statement, given in zip(statements, values, strict=True)
            for param in statement.bind(given, connection)
        ]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return [int(count) for count in cursor.fetchone()]


M = TypeVar("M", bound=Model)


@dataclass(frozen=True)
class _InsertSQL:
    """One model's INSERT for one database: the fields it writes, in column order, and its
    parts. Names come from the model's own metadata, never from input."""

    fields: list[Field]
    auto_attname: str | None  # the auto-increment key RETURNING gives back, if any
    auto_column: str | None  # quoted
    head: str  # INSERT INTO t (columns) VALUES
    row: str  # (%s, ...)

    @property
    def returning(self) -> str:
        return f" RETURNING {self.auto_column}" if self.auto_column else ""


class PreparedInsert(Generic[M]):
    """An INSERT of whole rows of one model, written once per database: what `save()`,
    `objects.create()` and `bulk_create()` send, without building and compiling the
    statement per call (that work cost more CPU than the statement). Values go through
    each field's `pre_save` (auto_now, auto_now_add) and `get_db_prep_save`, as the ORM's
    do; an auto-increment primary key comes back from RETURNING, and the instances come
    out saved (`_state.adding` False). Unlike `save()` it sends no pre_save/post_save
    signals: use it for models nobody listens to. Nor does it resolve expressions
    (`F()`, `Now()`), `db_default` or generated columns, or multi-table inheritance:
    plain fields only, as the pipeline's models have."""

    def __init__(self, model: type[M], *, using: str = "default") -> None:
        self.model = model
        self._using = using
        self._sql: dict[tuple[str, str], _InsertSQL] = {}

    def _statement(self, connection: Any) -> _InsertSQL:
        key = (self._using, connection.vendor)
        statement = self._sql.get(key)
        if statement is None:
            meta = self.model._meta
            auto = meta.pk if meta.pk.db_returning else None
            fields = [f for f in meta.concrete_fields if f is not auto]
            quote = connection.ops.quote_name
            columns = ", ".join(quote(f.column) for f in fields)
            statement = self._sql[key] = _InsertSQL(
                fields=fields,
                auto_attname=auto.attname if auto else None,
                auto_column=quote(auto.column) if auto else None,
                head=f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES ",  # noqa: S608
                row="({})".format(", ".join(["%s"] * len(fields))),
            )
        return statement

    def insert(self, objs: list[M]) -> list[M]:
        """Insert `objs` (unsaved instances of the model) in one statement; returns them."""
        if not objs:
            return objs
        connection = connections[self._using]
        statement = self._statement(connection)
        params: list[Any] = []
        for obj in objs:
            params += _values(obj, statement.fields, connection)
        with connection.cursor() as cursor:
            sql = statement.head + ", ".join([statement.row] * len(objs)) + statement.returning
            cursor.execute(sql, params)
            ids = [found[0] for found in cursor.fetchall()] if statement.returning else []
        _saved(objs, statement.auto_attname, ids, connection.alias)
        return objs

    def create(self, **values: Any) -> M:
        """`Model.objects.create(**values)` in one prepared statement."""
        [obj] = self.insert([self.model(**values)])
        return obj


def _values(obj: Model, fields: list[Field], connection: Any) -> list[Any]:
    return [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]


def _saved(objs: list[Model], auto_attname: str | None, ids: list[Any], alias: str) -> None:
    # Several rows come back in the order of VALUES (bulk_create relies on it too).
    for n, obj in enumerate(objs):
        if auto_attname:
            setattr(obj, auto_attname, ids[n])
        obj._state.adding = False
        obj._state.db = alias


class PreparedInsertWithChildren:
    """A row and rows that point to it by a foreign key, inserted together. On PostgreSQL
    that is one statement (data-modifying CTEs: the parent's INSERT ... RETURNING feeds
    each child's key), where a transaction around three INSERTs costs five round trips;
    elsewhere the INSERTs run in one transaction. Both ways it is all or nothing: a row
    that breaks a constraint raises IntegrityError, none is written, and a caller's
    transaction around it goes on (a savepoint guards it).

        together = PreparedInsertWithChildren(shipments, (items, "shipment"))
        together.insert(shipment, items_of_it)
    """

    def __init__(self, parent: PreparedInsert, *children: tuple[PreparedInsert, str]) -> None:
        meta = parent.model._meta
        if not meta.pk.db_returning:
            raise ValueError("the parent needs an auto-increment key for its children")
        for child, name in children:
            field = child.model._meta.get_field(name)
            if not (field.many_to_one and field.related_model is parent.model):
                raise ValueError(f"{child.model.__name__}.{name} does not point to the parent")
            if child._using != parent._using:
                raise ValueError("the rows are inserted together on one database")
        self._parent = parent
        self._children = [(child, child.model._meta.get_field(name)) for child, name in children]
        self._sql: dict[tuple[str, str, tuple[int, ...]], str] = {}

    def _together_sql(self, connection: Any, counts: tuple[int, ...]) -> str:
        key = (self._parent._using, connection.vendor, counts)
        sql = self._sql.get(key)
        if sql is not None:
            return sql
        parent = self._parent._statement(connection)
        parent_key = f"(SELECT {parent.auto_column} FROM parent)"  # noqa: S608
        ctes = [f"parent AS ({parent.head}{parent.row}{parent.returning})"]
        rows = [f"SELECT -1, {parent.auto_column} FROM parent"]  # noqa: S608
        for n, ((child, key_field), count) in enumerate(zip(self._children, counts, strict=True)):
            if not count:
                continue
            statement = child._statement(connection)
            row = "({})".format(
                ", ".join(parent_key if f is key_field else "%s" for f in statement.fields)
            )
            ctes.append(f"c{n} AS ({statement.head}{', '.join([row] * count)}")
            if statement.returning:
                ctes[-1] += statement.returning
                rows.append(f"SELECT {n}, {statement.auto_column} FROM c{n}")  # noqa: S608
            ctes[-1] += ")"
        sql = self._sql[key] = f"WITH {', '.join(ctes)} {' UNION ALL '.join(rows)}"
        return sql

    def insert(self, parent_obj: Model, *children_objs: list[Model]) -> None:
        """Insert `parent_obj` and, for each child model in the order given, its unsaved
        rows (their key to the parent is set here)."""
        if len(children_objs) != len(self._children):
            raise TypeError(f"{len(self._children)} kinds of children, got {len(children_objs)}")
        connection = connections[self._parent._using]
        if connection.vendor != "postgresql":
            with transaction.atomic(using=self._parent._using):
                self._parent.insert([parent_obj])
                for (child, key_field), objs in zip(self._children, children_objs, strict=True):
                    for obj in objs:
                        setattr(obj, key_field.name, parent_obj)
                    child.insert(objs)
            return
        counts = tuple(len(objs) for objs in children_objs)
        parent = self._parent._statement(connection)
        params = _values(parent_obj, parent.fields, connection)
        for (child, key_field), objs in zip(self._children, children_objs, strict=True):
            fields = [f for f in child._statement(connection).fields if f is not key_field]
            for obj in objs:
                params += _values(obj, fields, connection)
        # In a caller's transaction a savepoint, so that a row breaking a constraint does
        # not break the caller's transaction; on its own the statement is atomic already.
        nested = connection.in_atomic_block
        with (
            transaction.atomic(using=self._parent._using) if nested else contextlib.nullcontext(),
            connection.cursor() as cursor,
        ):
            cursor.execute(self._together_sql(connection, counts), params)
            returned = cursor.fetchall()
        parent_id = next(found for tag, found in returned if tag == -1)
        _saved([parent_obj], parent.auto_attname, [parent_id], connection.alias)
        for n, ((child, key_field), objs) in enumerate(
            zip(self._children, children_objs, strict=True)
        ):
            for obj in objs:
                setattr(obj, key_field.name, parent_obj)
            ids = [found for tag, found in returned if tag == n]
            _saved(objs, child._statement(connection).auto_attname, ids, connection.alias)
