"""The JSON error contract in every mode.

With DEBUG on (``scripts/run.sh``'s development default) Django answers an unresolvable path or
an uncaught error with its HTML debug page before any handler of ours runs. API clients parse
JSON, so an HTML error page outside the admin, the API docs and the web console becomes a JSON
``detail`` with the same status; the traceback is still logged.

A view outside DRF (the console, the media files) that finds the database unavailable answers 503
with Retry-After, as the API's exception handler does (apps/core/errors.py), not an error page:
the request may simply be tried again once the database is back.
"""

from __future__ import annotations

from django.http import HttpResponse, JsonResponse

from .errors import (
    DATABASE_RETRY_AFTER_S,
    DATABASE_UNAVAILABLE,
    MSG_DATABASE_UNAVAILABLE,
    database_unavailable,
)

HTML_PAGES = ("/admin", "/api/docs", "/api/redoc", "/console")
DETAILS = {
    400: "Bad request.",
    403: "Forbidden.",
    404: "Not found.",
    405: "Method not allowed.",
    500: "Server error.",
}


class JsonErrorsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            response.status_code >= 400
            and response.get("Content-Type", "").startswith("text/html")
            and not request.path.startswith(HTML_PAGES)
        ):
            detail = DETAILS.get(response.status_code, "Error.")
            return JsonResponse({"detail": detail}, status=response.status_code)
        return response

    def process_exception(self, request, exception):
        if not isinstance(exception, DATABASE_UNAVAILABLE):
            return None  # Django's own handling (and the JSON rewrite above)
        database_unavailable(exception)
        if request.path.startswith(HTML_PAGES):
            response = HttpResponse(
                MSG_DATABASE_UNAVAILABLE, status=503, content_type="text/plain; charset=utf-8"
            )
        else:
            response = JsonResponse({"detail": MSG_DATABASE_UNAVAILABLE}, status=503)
        response["Retry-After"] = str(DATABASE_RETRY_AFTER_S)
        return response
