"""The API's JSON parser: DRF's, with absurd nesting answered as a 400 instead of a 500."""

from __future__ import annotations

from rest_framework import exceptions, parsers

MSG_JSON_TOO_DEEP = "JSON parse error - nested too deeply."


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        # Python's json raises RecursionError (not ValueError) past ~1000 nested levels; DRF lets
        # that through as a 500. A body of "[[[[..." must be the client's 400.
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError(MSG_JSON_TOO_DEEP) from None
