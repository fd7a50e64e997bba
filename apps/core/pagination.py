"""Paged lists: ``{count, next, previous, results}`` with ``page`` and ``page_size`` (at most 100).

``PageNumberPagination`` serves the small lists (tasks, labels, models). ``KeysetPagination``
serves lists that grow to millions of rows (a workspace's training images): the ``next`` and
``previous`` links it hands out carry a signed keyset ``cursor`` (the sort key of the last or first
row shown), so following them reads one page of an index however deep the page is. The links keep
``page`` too, and ``?page=N`` without a cursor still works: it skips rows in the index alone (ids
only, from whichever end of the list is nearer), then reads the page's rows by id.

A view may also say where a deep offset starts (``list_seek(offset) -> (key, pk, newer)``: the
sort key and primary key of a position in the list, at or before the offset's row, with ``newer``
rows before it): the skip then starts there, inside one small group of rows, however deep the page
(training images: the blocks of about a thousand rows that apps/core/positions.py keeps, so the
group stays small however the rows' times are spread).

Counts come from the view when it knows them without counting (``list_count``: a maintained
counter), else from one ``COUNT`` on the first page, carried in the cursor for the pages after it
(bound to the filters and the workspace it was counted for).
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from django.core import signing
from django.utils.dateparse import parse_datetime
from rest_framework import exceptions, pagination
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

# Below this many rows, skipping in the index (about 0.1 µs a row) is cheaper than seeking.
SEEK_FROM = 10_000
MSG_BAD_CURSOR = "Invalid cursor: follow the next and previous links as they are given."
CURSOR_SALT = "apps.core.pagination.cursor"


MSG_BAD_PAGE_SIZE = "page_size must be a whole number from 1 (larger than 100 counts as 100)."


class PageNumberPagination(pagination.PageNumberPagination):
    """``{count, next, previous, results}`` with ``page`` and ``page_size`` (at most 100)."""

    page_size_query_param = "page_size"
    max_page_size = 100

    def get_page_size(self, request):
        """``page_size`` as asked, at most 100; one that is not a positive whole number is a 400
        (DRF would fall back to the default silently)."""
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        # ASCII digits only: int() would also take " 5", "+5", "1_0" and other scripts' digits.
        if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
            raise exceptions.ValidationError({self.page_size_query_param: [MSG_BAD_PAGE_SIZE]})
        return min(int(raw), self.max_page_size)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"]["minimum"] = 1
                parameter["description"] = "Results per page, at most 100 (a larger number counts as 100)."
            elif parameter["name"] == self.page_query_param:
                parameter["schema"]["minimum"] = 1
        return parameters


class KeysetPagination(PageNumberPagination):
    """Page numbers on the outside, keyset cursors in the links (see the module docstring).

    The queryset must be ordered by ``ordering``: a descending timestamp, then the primary key
    ascending as the tie-breaker (one index covers both, with the scoping field in front). A view
    may define ``list_count(queryset) -> int | None`` to answer the count without counting.
    """

    cursor_query_param = "cursor"
    ordering = ("-created", "id")
    # Query parameters that do not change which rows a list holds.
    not_filters = frozenset({"page", "page_size", "cursor", "format"})

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        self.view = view
        self.page_size_now = self.get_page_size(request)
        self.filters_digest = self._digest(request, view)
        key_field = self.key_field = self.ordering[0].lstrip("-")
        raw_cursor = request.query_params.get(self.cursor_query_param)
        if raw_cursor:
            cursor = self._decode(raw_cursor)
            self.page_number = cursor["p"]
            carried = cursor["c"] if cursor.get("f") == self.filters_digest else None
            self.count = self._count(queryset, view, carried)
            rows, self.has_next = self._rows_after(queryset, cursor, key_field)
        else:
            self.page_number = self._page_number(request)
            self.count = self._count(queryset, view, None)
            offset = (self.page_number - 1) * self.page_size_now
            if offset and offset >= self.count:  # past the end (and past what SQL can offset by)
                raise exceptions.NotFound("Invalid page.")
            rows, self.has_next = self._rows_at_offset(queryset, offset)
            if not rows and self.page_number != 1:
                raise exceptions.NotFound("Invalid page.")
        self.rows = rows
        return self.rows

    # --- reading rows ---------------------------------------------------------------------------

    def _page_number(self, request) -> int:
        raw = request.query_params.get(self.page_query_param, 1)
        try:
            number = int(raw)
        except (TypeError, ValueError):
            raise exceptions.NotFound("Invalid page.") from None
        if number < 1:
            raise exceptions.NotFound("Invalid page.")
        return number

    def _rows_at_offset(self, queryset, offset: int) -> tuple[list, bool]:
        """The page's rows at ``offset``, and whether rows follow them."""
        size = self.page_size_now
        if offset == 0:
            rows = list(queryset[: size + 1])
            return rows[:size], len(rows) > size
        # Deep pages: skip rows in the index (ids only), from where the view says the offset
        # starts, else from the nearer end of the list.
        seek = getattr(self.view, "list_seek", None)
        found = seek(offset) if seek is not None and min(offset, self.count - offset) >= SEEK_FROM else None
        if found is not None:
            key, pk, newer = found
            skip = offset - newer
            # From (key, pk) on in list order: the index range starts there (see _rows_after).
            start = queryset.filter(**{f"{self.key_field}__lte": key}).exclude(
                **{self.key_field: key, "pk__lt": pk}
            )
            ids = list(start.values_list("pk", flat=True)[skip : skip + size + 1])
            more = len(ids) > size
            ids = ids[:size]
        elif offset > self.count // 2 and offset < self.count:
            end = self.count - offset  # rows from this page's first to the list's last
            take = min(size, end)
            ids = list(queryset.reverse().values_list("pk", flat=True)[end - take : end])[::-1]
            more = offset + take < self.count
        else:
            ids = list(queryset.values_list("pk", flat=True)[offset : offset + size + 1])
            more = len(ids) > size
            ids = ids[:size]
        # A row deleted between the two reads leaves the page one short; the next link still
        # follows the cursor from the last row shown, which is always right.
        return (list(queryset.filter(pk__in=ids)) if ids else []), more

    def _rows_after(self, queryset, cursor: dict, key_field: str) -> tuple[list, bool]:
        """One page after (or, backwards, before) the cursor's row in list order, and whether rows
        follow it. ``key <= k AND NOT (key = k AND pk <= i)``: the index range starts at the
        cursor, and only the rows of its own timestamp are filtered."""
        key, pk, size = cursor["k"], cursor["i"], self.page_size_now
        if cursor["d"] == "n":  # rows after (key, pk) in "key desc, pk asc" order
            rows = queryset.filter(**{f"{key_field}__lte": key}).exclude(**{key_field: key, "pk__lte": pk})
            rows = list(rows[: size + 1])
            return rows[:size], len(rows) > size
        rows = queryset.filter(**{f"{key_field}__gte": key}).exclude(**{key_field: key, "pk__gte": pk})
        # Backwards, the page after this one is the one the caller came from.
        return list(rows.reverse()[:size])[::-1], True

    def _count(self, queryset, view, carried: int | None) -> int:
        known = getattr(view, "list_count", None)
        count = known(queryset) if known is not None else None
        if count is not None:
            return count
        return carried if carried is not None else queryset.count()

    # --- cursors --------------------------------------------------------------------------------

    def _digest(self, request, view) -> str:
        """What a carried count depends on: the workspace and the filters, not the page."""
        params = sorted(
            (key, value)
            for key, values in request.query_params.lists()
            if key not in self.not_filters
            for value in values
        )
        scope = getattr(getattr(view, "workspace", None), "pk", "")
        return hashlib.sha256(repr((str(scope), params)).encode()).hexdigest()[:16]

    def _encode(self, row, direction: str, page: int) -> str:
        key = getattr(row, self.key_field)
        payload = {
            "k": key.isoformat() if isinstance(key, datetime) else key,
            "i": str(row.pk),
            "d": direction,
            "p": page,
            "c": self.count,
            "f": self.filters_digest,
        }
        return signing.dumps(payload, salt=CURSOR_SALT, compress=True)

    def _decode(self, raw: str) -> dict:
        try:
            cursor = signing.loads(raw, salt=CURSOR_SALT)
            key = parse_datetime(cursor["k"])
            valid = (
                key is not None
                and cursor["d"] in ("n", "p")
                and isinstance(cursor["p"], int)
                and cursor["p"] >= 1
                and isinstance(cursor["c"], int)
            )
        except (signing.BadSignature, KeyError, TypeError, ValueError):
            valid = False
        if not valid:
            # A 404 like an invalid page (and DRF's CursorPagination): the position names no page.
            raise exceptions.NotFound(MSG_BAD_CURSOR)
        return {**cursor, "k": key}

    # --- the answer -----------------------------------------------------------------------------

    def get_next_link(self):
        rows = self.rows
        if not rows or not self.has_next:
            return None
        url = self.request.build_absolute_uri()
        url = replace_query_param(url, self.page_query_param, self.page_number + 1)
        cursor = self._encode(rows[-1], "n", self.page_number + 1)
        return replace_query_param(url, self.cursor_query_param, cursor)

    def get_previous_link(self):
        rows = self.rows
        if self.page_number <= 1:
            return None
        url = self.request.build_absolute_uri()
        if self.page_number == 2 or not rows:
            url = remove_query_param(url, self.cursor_query_param)
            return remove_query_param(url, self.page_query_param) if self.page_number == 2 else url
        url = replace_query_param(url, self.page_query_param, self.page_number - 1)
        cursor = self._encode(rows[0], "p", self.page_number - 1)
        return replace_query_param(url, self.cursor_query_param, cursor)

    def get_paginated_response(self, data):
        return Response(
            {
                "count": self.count,
                "next": self.get_next_link(),
                "previous": self.get_previous_link(),
                "results": data,
            }
        )

    def get_schema_operation_parameters(self, view):
        return [
            *super().get_schema_operation_parameters(view),
            {
                "name": self.cursor_query_param,
                "required": False,
                "in": "query",
                "description": "Opaque position from a `next` or `previous` link; it takes precedence "
                "over `page`.",
                "schema": {"type": "string"},
            },
        ]
