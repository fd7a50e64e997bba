"""The API's parsers: DRF's JSON parser with absurd nesting answered as a 400 instead of a 500,
and a multipart parser that stops a file part at its size limit while it streams in."""

from __future__ import annotations

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http.multipartparser import MultiPartParser as DjangoMultiPartParser
from django.http.multipartparser import MultiPartParserError
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


MSG_PART_TOO_LARGE = "The uploaded file {field!r} is larger than {limit} bytes."


class PartLimitHandler(FileUploadHandler):
    """First in the chain of upload handlers: passes each file's chunks on until the file passes
    ``limit`` bytes, then stops the upload. Without it Django spools a file part of any size to
    memory or to a temporary file before a view can look at its size."""

    def __init__(self, request, limit: int):
        super().__init__(request)
        self.limit = limit
        self.received = 0
        self.exceeded: str | None = None

    def new_file(self, field_name, *args, **kwargs):
        super().new_file(field_name, *args, **kwargs)
        self.received = 0

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > self.limit:
            self.exceeded = self.field_name
            # The parts read so far are closed (temporary files deleted); the rest of the body is
            # read and dropped, never stored, so the client gets its 413 rather than a reset.
            raise StopUpload(connection_reset=False)
        return raw_data

    def file_complete(self, file_size):
        return None  # the next handlers build the file


class MultiPartParser(parsers.MultiPartParser):
    """DRF's multipart parser with a size limit on every file part, enforced while it streams in.

    The limit is the view's ``upload_part_limit()`` when it has one (a zip import allows more than
    an image), else ``VF_MAX_IMAGE_BYTES``. A larger part answers 413 (with the view's
    ``upload_too_large_message`` when it has one) and leaves nothing stored.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        from .errors import PayloadTooLarge  # errors imports DRF, whose settings import this module

        parser_context = parser_context or {}
        request = parser_context["request"]
        view = parser_context.get("view")
        limiter = getattr(view, "upload_part_limit", None)
        limit = int(limiter() if callable(limiter) else settings.VF_MAX_IMAGE_BYTES)
        guard = PartLimitHandler(request, limit)
        meta = request.META.copy()
        meta["CONTENT_TYPE"] = media_type
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        handlers = [guard, *request.upload_handlers]
        try:
            data, files = DjangoMultiPartParser(meta, stream, handlers, encoding).parse()
        except MultiPartParserError as exc:
            raise exceptions.ParseError(f"Multipart form parse error - {exc}") from exc
        if guard.exceeded is not None:
            message = getattr(view, "upload_too_large_message", MSG_PART_TOO_LARGE)
            raise PayloadTooLarge(message.format(field=guard.exceeded, limit=limit))
        return parsers.DataAndFiles(data, files)
