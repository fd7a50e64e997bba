"""Domain errors and the one place that turns them into HTTP answers.

Services raise these with messages kept as constants, so tests can assert the exact text.
"""

from __future__ import annotations

import errno
import logging

from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)

MSG_DATABASE_UNAVAILABLE = "The database is unavailable; try again in a few seconds."
MSG_STORAGE_FULL = "The storage is full; nothing was stored. Free space on the media volume and try again."
# Seconds a client is asked to wait (Retry-After) when the database is unavailable: a restart or a
# fail-over takes a few seconds, and clients that retry at once only add to the queue.
DATABASE_RETRY_AFTER_S = 5
# A database that cannot be reached or dropped the connection (a restart, a fail-over, the network);
# on SQLite also a write lock held past the busy timeout. Retryable, so 503 rather than 500.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)
# The filesystem (or quota) under a storage is full: 507 Insufficient Storage.
STORAGE_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class DomainError(Exception):
    """A request that breaks a business rule: answered as 400 with ``{"detail": message}``."""

    status_code = status.HTTP_400_BAD_REQUEST

    def __init__(self, message: str, **extra):
        super().__init__(message)
        self.message = message
        self.extra = extra


class NotFoundError(DomainError):
    status_code = status.HTTP_404_NOT_FOUND


class PermissionDeniedError(DomainError):
    status_code = status.HTTP_403_FORBIDDEN


class ConflictError(DomainError):
    """The request is well formed, but the state of what it names forbids it: the resource is busy
    (a training runs on it), or it is one the service keeps (a user's default workspace, a task's
    negative label). 409 says so; a 400 would tell a client its request was malformed."""

    status_code = status.HTTP_409_CONFLICT


class QuotaExceededError(DomainError):
    """A write that would take a workspace past one of its quotas (apps/quotas): 403, with the
    quota's name, its limit and the current use beside the message, so a client can tell which
    limit it hit and by how much without parsing text. Nothing was stored."""

    status_code = status.HTTP_403_FORBIDDEN

    def __init__(self, message: str, *, quota: str, limit: int, used: int):
        super().__init__(message, quota=quota, limit=limit, used=used)


class ServiceUnavailableError(DomainError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE


class StorageFullError(DomainError):
    """A write found the storage full: 507, and nothing was stored."""

    status_code = status.HTTP_507_INSUFFICIENT_STORAGE


def is_storage_full(exc: BaseException) -> bool:
    """True for an OSError saying the disk or the quota is full (ENOSPC, EDQUOT)."""
    return isinstance(exc, OSError) and exc.errno in STORAGE_FULL_ERRNOS


def database_unavailable(exc: BaseException) -> None:
    """Log a request the database could not serve: one line, not a traceback per request while
    the database restarts."""
    logger.warning("database unavailable: %s: %s", type(exc).__name__, str(exc).strip()[:300])


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body is too large."
    default_code = "payload_too_large"


def exception_handler(exc, context):
    if isinstance(exc, DomainError):
        return Response({"detail": exc.message, **exc.extra}, status=exc.status_code)
    if isinstance(exc, DATABASE_UNAVAILABLE):
        database_unavailable(exc)
        return Response(
            {"detail": MSG_DATABASE_UNAVAILABLE},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
        )
    if is_storage_full(exc):
        logger.error("storage full: %s", exc)
        return Response({"detail": MSG_STORAGE_FULL}, status=status.HTTP_507_INSUFFICIENT_STORAGE)
    if isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    elif isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(detail=exc.messages)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    return drf_exception_handler(exc, context)
