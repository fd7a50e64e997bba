"""Where a row sits in a long list, kept by the database: blocks of about ``size`` consecutive rows.

A page number is a position (``?page=20000`` is row 499,975 of the list); an index can only skip
to it one entry at a time. Counts per minute of the sort key turn that into a seek while the rows'
times are spread, but a folder or a zip imported in a few minutes puts most of a million rows into
a few minutes, and the skip is back inside them. So the list is cut by row position instead: a
``ListBlocks`` installs triggers that keep a ``ListBlock`` (apps/core/models.py) per run of about
``size`` rows in the list's order, keyed by the first row's sort key, with the number of rows in
it. A deep page then sums the blocks' sizes up to its offset (a running sum over a thousand rows
per million) and skips fewer than ``2 * size`` index entries from the block's first key, however
the rows' times are spread (a burst, or a million rows in the same microsecond).

The list is a scope's rows (``scope``, e.g. a workspace) newest first: ``key`` descending, then
``id`` ascending, which one index of the source table must hold. A block holds the rows from its
first key (inclusive) to the next block's; the newest block's first key is ``TOP`` (after every
real key), so every row falls in one. An insert adds one to its block, which splits in two of
``size`` and the rest once it holds ``2 * size`` (the new block's first key is read from the
index, ``size`` entries from the old one's); a delete subtracts one, and a block left empty goes
(its range joins the block before it, which holds nothing of it). ``key`` and ``scope`` must never
change on an existing row.

SQLite has row-level triggers only (its writers take turns on one lock); the split is a trigger on
the blocks table, so it knows the block it splits. PostgreSQL counts per statement (a bulk insert
of a million rows is one pass, then one split of the grown block into a thousand); its triggers
take a transaction-level advisory lock per scope first, so each sees the blocks and the rows as
the previous writer of that scope committed them (under READ COMMITTED, Django's default: every
statement of a PL/pgSQL function takes a new snapshot). The rows another writer added but has not
counted yet are not visible, and that writer counts them later against the blocks it then finds.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
TABLE = "core_listblock"

# The first key of every scope's newest block: after every real key of the list (and still a
# value Python's datetime can hold), with the smallest id.
TOP = {
    "postgresql": (
        "'9999-12-31 23:59:59.999999+00'::timestamptz",
        "'00000000-0000-0000-0000-000000000000'::uuid",
    ),
    "sqlite": ("'9999-12-31 23:59:59.999999'", "'00000000000000000000000000000000'"),
}

# The block that holds row {row} (NEW, OLD, or an alias): the last block, in list order, whose
# first key is at or before the row's. Index (source, scope, created, first_id).
_BLOCK_OF = (
    "(SELECT id FROM core_listblock WHERE source = '{source}' AND scope = {row}.{scope} "
    "AND created >= {row}.{key} AND NOT (created = {row}.{key} AND first_id > {row}.id) "
    "ORDER BY created, first_id DESC LIMIT 1)"
)
# The first key of the rows of block {block} after its first ``size``: ``(key, id)`` at offset
# ``size`` from the block's first key, in the source table's list index.
_SPLIT_ROW = (
    "SELECT '{source}', {block}.scope, {key}, id, {block}.size - {size} FROM {source} "
    "WHERE {scope} = {block}.scope AND {key} <= {block}.created "
    "AND NOT ({key} = {block}.created AND id < {block}.first_id) "
    "ORDER BY {key} DESC, id LIMIT 1 OFFSET {size}"
)
# PostgreSQL's statements can add any number of rows to a block: it splits into blocks of
# ``size`` from its start, the last one keeping ``size`` to ``2 * size - 1``, in one pass over the
# block's rows (one read, whatever the plan: right after a bulk load into a fresh table the
# statistics say it is nearly empty, and a split by OFFSET per block then sorted the table each
# time). ``k = k / size * size``: k a multiple of size (no ``%``, which the driver would read).
_SPLIT_MANY = (
    "SELECT '{source}', b.scope, {key}, id, "
    "CASE WHEN k + 2 * {size} <= b.size THEN {size} ELSE b.size - k END FROM ("
    "SELECT {key}, id, row_number() OVER (ORDER BY {key} DESC, id) - 1 AS k FROM ("
    "SELECT {key}, id FROM {source} WHERE {scope} = b.scope AND {key} <= b.created "
    "AND NOT ({key} = b.created AND id < b.first_id) ORDER BY {key} DESC, id LIMIT b.size) AS r"
    ") AS numbered WHERE k >= {size} AND k = k / {size} * {size} AND k + {size} <= b.size"
)
_INSERT = "INSERT INTO core_listblock (source, scope, created, first_id, size) "

_LITE_ADDED = (
    "CREATE TRIGGER {name}_added AFTER INSERT ON {source} BEGIN "
    "INSERT OR IGNORE INTO core_listblock (source, scope, created, first_id, size) "
    "VALUES ('{source}', NEW.{scope}, {top}, {top_id}, 0); "
    "UPDATE core_listblock SET size = size + 1 WHERE id = {block_new}; END"
)
_LITE_REMOVED = (
    "CREATE TRIGGER {name}_removed AFTER DELETE ON {source} BEGIN "
    "UPDATE core_listblock SET size = size - 1 WHERE id = {block_old}; "
    "DELETE FROM core_listblock WHERE id = {block_old} AND size <= 0; END"
)
# Only the block an insert just counted can reach 2 * size, and it does so exactly (one at a time).
_LITE_SPLIT = (
    "CREATE TRIGGER {name}_split AFTER UPDATE OF size ON core_listblock "
    "WHEN NEW.source = '{source}' AND NEW.size >= 2 * {size} BEGIN "
    "{insert}{split_new}; UPDATE core_listblock SET size = {size} WHERE id = NEW.id; END"
)
_LITE_DROP = ["DROP TRIGGER IF EXISTS {name}_added", "DROP TRIGGER IF EXISTS {name}_removed",
              "DROP TRIGGER IF EXISTS {name}_split"]  # fmt: skip

# PostgreSQL: one function per event. ``changed`` is the statement's transition table.
_PG_LOCK = (
    "scopes := ARRAY(SELECT DISTINCT {scope} FROM changed ORDER BY 1); "
    "PERFORM pg_advisory_xact_lock(hashtext('{source}'), hashtext(s::text)) FROM unnest(scopes) AS s; "
)
# Rows newer than their scope's second block start (new images, nearly always) are the newest
# block's, found by one comparison; only the others look their block up in the index (a bulk
# insert of 200,000 rows took 2.5 times as long when every row did).
_PG_COUNT = (
    "UPDATE core_listblock AS t SET size = t.size {sign} d.n FROM ("
    "SELECT CASE WHEN h.head IS NOT NULL AND (h.c2 IS NULL OR c.{key} > h.c2 "
    "OR (c.{key} = h.c2 AND c.id < h.f2)) THEN h.head ELSE {block_c} END AS block, count(*) AS n "
    "FROM changed AS c JOIN ("
    "SELECT s AS scope, (SELECT id FROM core_listblock WHERE source = '{source}' AND scope = s "
    "AND created = {top} AND first_id = {top_id}) AS head, n.c2, n.f2 FROM unnest(scopes) AS s "
    "LEFT JOIN LATERAL (SELECT created AS c2, first_id AS f2 FROM core_listblock "
    "WHERE source = '{source}' AND scope = s AND created < {top} ORDER BY created DESC, first_id LIMIT 1"
    ") AS n ON true) AS h ON h.scope = c.{scope} GROUP BY 1) AS d WHERE t.id = d.block; "
)
_PG_ADDED = (
    "CREATE FUNCTION {name}_added() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "DECLARE scopes uuid[]; b record; BEGIN {lock}"
    "{insert}SELECT DISTINCT '{source}', {scope}, {top}, {top_id}, 0 FROM changed "
    "ON CONFLICT (source, scope, created, first_id) DO NOTHING; "
    "{count_add}"
    "FOR b IN SELECT id, scope, created, first_id, size FROM core_listblock "
    "WHERE source = '{source}' AND scope = ANY(scopes) AND size >= 2 * {size} LOOP "
    "{insert}{split_many}; "
    "UPDATE core_listblock SET size = {size} WHERE id = b.id; "
    "END LOOP; RETURN NULL; END $$"
)
_PG_REMOVED = (
    "CREATE FUNCTION {name}_removed() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "DECLARE scopes uuid[]; BEGIN {lock}"
    "{count_remove}"
    "DELETE FROM core_listblock WHERE source = '{source}' AND scope = ANY(scopes) AND size <= 0; "
    "RETURN NULL; END $$"
)
_PG_TRIGGER = (
    "CREATE TRIGGER {name}_{suffix} AFTER {event} ON {source} REFERENCING {rows} TABLE AS changed "
    "FOR EACH STATEMENT EXECUTE FUNCTION {name}_{suffix}()"
)
_PG_DROP = [
    "DROP TRIGGER IF EXISTS {name}_added ON {source}", "DROP FUNCTION IF EXISTS {name}_added()",
    "DROP TRIGGER IF EXISTS {name}_removed ON {source}", "DROP FUNCTION IF EXISTS {name}_removed()",
]  # fmt: skip

# Blocks for the rows already there: every ``size``-th row of each scope's list starts one (the
# first block starts at TOP). One pass over the list index.
_BACKFILL = (
    "{insert}SELECT '{source}', {scope}, CASE WHEN k = 0 THEN {top} ELSE {key} END, "
    "CASE WHEN k = 0 THEN {top_id} ELSE id END, "
    "CASE WHEN total - k < {size} THEN total - k ELSE {size} END FROM ("
    "SELECT {scope}, {key}, id, row_number() OVER (PARTITION BY {scope} ORDER BY {key} DESC, id) - 1 AS k, "
    "count(*) OVER (PARTITION BY {scope}) AS total FROM {source}) AS x WHERE k = k / {size} * {size}"
)


@dataclass(frozen=True)
class ListBlocks:
    """Keep ``ListBlock`` rows (``source`` = this table's name) over ``source``'s lists: per
    ``scope``, ``key`` descending then ``id``, blocks of ``size`` to ``2 * size - 1`` rows (fewer
    after deletes). ``name`` prefixes the triggers."""

    name: str
    source: str
    scope: str
    key: str = "created"
    size: int = 1000

    def __post_init__(self):
        names = {key: value for key, value in asdict(self).items() if key != "size"}
        if not all(_IDENTIFIER.match(value) for value in names.values()) or self.size < 2:
            raise ValueError(f"not SQL identifiers, or a block size below 2: {asdict(self)}")

    def _sql(self, template: str, vendor: str, **more) -> str:
        top, top_id = TOP[vendor]
        names = {**asdict(self), "top": top, "top_id": top_id, "insert": _INSERT}
        block = {f"block_{row.lower()}": _BLOCK_OF.format(**names, row=row) for row in ("NEW", "OLD", "c")}
        split = {
            "split_new": _SPLIT_ROW.format(**names, block="NEW"),
            "split_many": _SPLIT_MANY.format(**names),
        }
        return template.format(**names, **block, **split, **more)

    def sqlite(self) -> list[str]:
        return [self._sql(template, "sqlite") for template in (_LITE_ADDED, _LITE_REMOVED, _LITE_SPLIT)]

    def postgresql(self) -> list[str]:
        lock = self._sql(_PG_LOCK, "postgresql")
        counts = {
            f"count_{kind}": self._sql(_PG_COUNT, "postgresql", sign=sign)
            for kind, sign in (("add", "+"), ("remove", "-"))
        }
        statements = []
        for suffix, event, rows, function in (
            ("added", "INSERT", "NEW", _PG_ADDED),
            ("removed", "DELETE", "OLD", _PG_REMOVED),
        ):
            statements.append(self._sql(function, "postgresql", lock=lock, **counts))
            statements.append(self._sql(_PG_TRIGGER, "postgresql", suffix=suffix, event=event, rows=rows))
        return statements

    def replace_functions(self, apps, schema_editor) -> None:
        """Bring PostgreSQL trigger functions installed by older code up to this one's
        (migrations.RunPython); the triggers stay."""
        if schema_editor.connection.vendor == "postgresql":
            for sql in self.postgresql()[::2]:  # the functions (each trigger follows its function)
                schema_editor.execute(sql.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))

    def backfill(self, vendor: str) -> str:
        return self._sql(_BACKFILL, vendor)

    # --- migrations.RunPython(blocks.install, blocks.uninstall) ----------------------------------

    def install(self, apps, schema_editor) -> None:
        vendor = schema_editor.connection.vendor
        statements = self.postgresql() if vendor == "postgresql" else self.sqlite()
        for sql in [*statements, self.backfill(vendor)]:
            schema_editor.execute(sql)

    def uninstall(self, apps, schema_editor) -> None:
        vendor = schema_editor.connection.vendor
        for sql in _PG_DROP if vendor == "postgresql" else _LITE_DROP:
            schema_editor.execute(sql.format(**asdict(self)))
        # The table is a constant and the source a model's table name, never a request's value.
        schema_editor.execute(f"DELETE FROM {TABLE} WHERE source = %s", [self.source])  # noqa: S608  # nosec B608
