"""Counts the database keeps itself: triggers that add and subtract as rows come and go.

A list of a million rows cannot count them on every request; a counter column can answer instead,
if every insert and delete moves it. Services are not enough for that: rows also go in cascades (a
workspace or user deleted, the admin) and in bulk SQL. So a migration installs a ``RowCounter``:
on PostgreSQL one statement-level trigger per insert and per delete adds up the rows the statement
touched per group (a delete of 500 rows is one UPDATE per group, not 500); SQLite has row-level
triggers only. The grouping column must never change on an existing row. A ``BucketCounter``
(PostgreSQL only) counts the same way per group and per minute or hour of a timestamp.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")

# Templates over the counter's identifiers (checked: lower-case SQL names only, never input).
_COUNTED = "SELECT {group} AS grp, {measure} AS n FROM changed GROUP BY {group} ORDER BY 1"
_PG_UPSERT = (
    "INSERT INTO {target} ({key}, {column}) {counted} ON CONFLICT ({key}) DO UPDATE "
    "SET {column} = {target}.{column} + EXCLUDED.{column}"
)
_PG_UPDATE = (
    "UPDATE {target} AS t SET {column} = t.{column} {sign} d.n FROM ({counted}) AS d WHERE t.{key} = d.grp"
)
_PG_FUNCTION = (
    "CREATE FUNCTION {trigger}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body}; RETURN NULL; END $$"
)
_PG_TRIGGER = (
    "CREATE TRIGGER {trigger} AFTER {event} ON {source} REFERENCING {rows} TABLE AS changed "
    "FOR EACH STATEMENT EXECUTE FUNCTION {trigger}()"
)
_PG_DROP = ["DROP TRIGGER IF EXISTS {trigger} ON {source}", "DROP FUNCTION IF EXISTS {trigger}()"]
_LITE_UPSERT = (
    "INSERT INTO {target} ({key}, {column}) VALUES (NEW.{group}, {step}) "
    "ON CONFLICT ({key}) DO UPDATE SET {column} = {column} + {step}"
)
_LITE_UPDATE = "UPDATE {target} SET {column} = {column} {sign} {step} WHERE {key} = {rows}.{group}"
_LITE_TRIGGER = "CREATE TRIGGER {trigger} AFTER {event} ON {source} BEGIN {body}; END"
_LITE_DROP = ["DROP TRIGGER IF EXISTS {trigger}"]
_BACKFILL_UPSERT = (
    "INSERT INTO {target} ({key}, {column}) SELECT {group}, {measure} FROM {source} GROUP BY {group}"
)
_BACKFILL_UPDATE = (
    "UPDATE {target} SET {column} = (SELECT {measure} FROM {source} WHERE {source}.{group} = {target}.{key})"
)
# (trigger name suffix, event, transition rows, sign)
_EVENTS = (("added", "INSERT", "NEW", "+"), ("removed", "DELETE", "OLD", "-"))


@dataclass(frozen=True)
class RowCounter:
    """Keep ``target.column`` = the number of ``source`` rows whose ``group`` is ``target.key``.

    With ``upsert`` the target row is created by the first source row of its group (a table of
    counters); without, it must exist already (a counter column on the group's own row). With
    ``summed`` (a column of ``source``) it keeps the sum of that column instead of the count (a
    null adds nothing); the column must never change on an existing row either.
    """

    name: str
    source: str
    group: str
    target: str
    key: str
    column: str
    upsert: bool = False
    summed: str = ""

    def __post_init__(self):
        names = {key: value for key, value in asdict(self).items() if key != "upsert"}
        if not self.summed:
            names.pop("summed")
        if not all(_IDENTIFIER.match(value) for value in names.values()):
            raise ValueError(f"not SQL identifiers: {names}")

    def _sql(self, template: str, **more) -> str:
        names = asdict(self)
        measure = f"coalesce(sum({self.summed}), 0)" if self.summed else "count(*)"
        counted = _COUNTED.format(**names, measure=measure)
        rows = more.get("rows", "NEW")
        step = f"coalesce({rows}.{self.summed}, 0)" if self.summed else "1"
        return template.format(**names, counted=counted, measure=measure, step=step, **more)

    def postgresql(self) -> list[str]:
        statements = []
        for suffix, event, rows, sign in _EVENTS:
            body = _PG_UPSERT if self.upsert and sign == "+" else _PG_UPDATE
            trigger = f"{self.name}_{suffix}"
            statements.append(self._sql(_PG_FUNCTION, trigger=trigger, body=self._sql(body, sign=sign)))
            statements.append(self._sql(_PG_TRIGGER, trigger=trigger, event=event, rows=rows))
        return statements

    def sqlite(self) -> list[str]:
        statements = []
        for suffix, event, rows, sign in _EVENTS:
            body = _LITE_UPSERT if self.upsert and sign == "+" else _LITE_UPDATE
            body = self._sql(body, sign=sign, rows=rows)
            statements.append(
                self._sql(_LITE_TRIGGER, trigger=f"{self.name}_{suffix}", event=event, body=body)
            )
        return statements

    def backfill(self) -> str:
        """Set every counter from the rows already there (when the triggers are installed)."""
        return self._sql(_BACKFILL_UPSERT if self.upsert else _BACKFILL_UPDATE)

    # --- migrations.RunPython(counter.install, counter.uninstall) ---------------------------------

    def install(self, apps, schema_editor) -> None:
        postgresql = schema_editor.connection.vendor == "postgresql"
        for sql in [*(self.postgresql() if postgresql else self.sqlite()), self.backfill()]:
            schema_editor.execute(sql)

    def uninstall(self, apps, schema_editor) -> None:
        drops = _PG_DROP if schema_editor.connection.vendor == "postgresql" else _LITE_DROP
        for sql in _drops(self, drops):
            schema_editor.execute(sql)


def _drops(counter: RowCounter | BucketCounter, templates: list[str]) -> list[str]:
    """The statements that remove ``counter``'s triggers (and functions), one event after another."""
    return [counter._sql(t, trigger=f"{counter.name}_{suffix}") for suffix, *_ in _EVENTS for t in templates]


# Counts per group and per unit of time (a timestamp truncated in UTC), PostgreSQL only.
_PG_BUCKET = "date_trunc('{unit}', {stamp} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
_PG_BUCKET_UPSERT = (
    "INSERT INTO {target} ({group}, {unit}, {column}) SELECT {group}, {bucket}, count(*) FROM changed "
    "GROUP BY 1, 2 ORDER BY 1, 2 "
    "ON CONFLICT ({group}, {unit}) DO UPDATE SET {column} = {target}.{column} + EXCLUDED.{column}"
)
_PG_BUCKET_UPDATE = (
    "UPDATE {target} AS t SET {column} = t.{column} - d.n FROM (SELECT {group} AS g, {bucket} AS b, "
    "count(*) AS n FROM changed GROUP BY 1, 2) AS d WHERE t.{group} = d.g AND t.{unit} = d.b"
)
_PG_BUCKET_BACKFILL = (
    "INSERT INTO {target} ({group}, {unit}, {column}) SELECT {group}, {bucket}, count(*) FROM {source} "
    "GROUP BY 1, 2"
)
_UNITS = ("minute", "hour", "day")


@dataclass(frozen=True)
class BucketCounter:
    """Keep ``target.column`` = the number of ``source`` rows of each ``group`` whose ``stamp``
    falls in each ``unit`` (UTC), in a target row keyed by (``group``, ``unit``) that the first
    such row creates. The target's columns are named ``group``, ``unit`` and ``column``; neither
    ``group`` nor ``stamp`` may change on an existing row. PostgreSQL only: on SQLite the target
    stays empty, and nothing may read it there.
    """

    name: str
    source: str
    group: str
    stamp: str
    unit: str
    target: str
    column: str

    def __post_init__(self):
        names = asdict(self)
        if not all(_IDENTIFIER.match(value) for value in names.values()) or self.unit not in _UNITS:
            raise ValueError(f"not SQL identifiers, or not a unit of {_UNITS}: {names}")

    def _sql(self, template: str, **more) -> str:
        names = asdict(self)
        return template.format(**names, bucket=_PG_BUCKET.format(**names), **more)

    def postgresql(self) -> list[str]:
        statements = []
        for suffix, event, rows, sign in _EVENTS:
            trigger = f"{self.name}_{suffix}"
            body = self._sql(_PG_BUCKET_UPSERT if sign == "+" else _PG_BUCKET_UPDATE)
            statements.append(self._sql(_PG_FUNCTION, trigger=trigger, body=body))
            statements.append(self._sql(_PG_TRIGGER, trigger=trigger, event=event, rows=rows))
        return statements

    # --- migrations.RunPython(counter.install, counter.uninstall) ---------------------------------

    def install(self, apps, schema_editor) -> None:
        if schema_editor.connection.vendor == "postgresql":
            for sql in [*self.postgresql(), self._sql(_PG_BUCKET_BACKFILL)]:
                schema_editor.execute(sql)

    def uninstall(self, apps, schema_editor) -> None:
        if schema_editor.connection.vendor == "postgresql":
            for sql in _drops(self, _PG_DROP):
                schema_editor.execute(sql)
