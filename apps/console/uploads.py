"""The console's file uploads stop at the image size limit while they stream in, as the API's do.

Django parses a multipart body the first time ``request.POST`` or ``request.FILES`` is read, and
the CSRF check reads ``request.POST`` before the view runs; so the size guard
(``apps.core.parsers.PartLimitHandler``) goes in first, outside the CSRF check, which then runs as
usual. A larger file is never spooled whole to memory or disk: the view answers 413 instead.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from apps.core.parsers import PartLimitHandler
from apps.images.errors import MSG_TOO_LARGE

GUARD = "_vf_upload_guard"


def upload_limited(too_large: Callable):
    """Decorate a view taking uploaded images: ``too_large(request, message)`` answers (413) when a
    file part passes ``VF_MAX_IMAGE_BYTES``; the view itself runs under the usual CSRF check."""

    def decorate(view):
        @wraps(view)
        def checked(request, *args, **kwargs):
            request.FILES  # noqa: B018 - parse the body now (the CSRF check may not have)
            if getattr(request, GUARD).exceeded is not None:
                return too_large(request, MSG_TOO_LARGE.format(limit=settings.VF_MAX_IMAGE_BYTES))
            return view(request, *args, **kwargs)

        protected = csrf_protect(checked)

        @csrf_exempt  # the CSRF check runs in ``protected``, after the guard is in place
        @wraps(view)
        def guarded(request, *args, **kwargs):
            guard = PartLimitHandler(request, settings.VF_MAX_IMAGE_BYTES)
            setattr(request, GUARD, guard)
            request.upload_handlers.insert(0, guard)
            return protected(request, *args, **kwargs)

        return guarded

    return decorate
