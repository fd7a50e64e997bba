"""drf-spectacular hooks."""

from __future__ import annotations

# Bodies of the error answers (apps/core/errors.py): request-level errors are
# {"detail": "..."}; a 400 may instead be DRF's {"field": ["message", ...]} (possibly nested).
ERROR_SCHEMA = {
    "type": "object",
    "description": "A request-level error.",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}
VALIDATION_ERROR_SCHEMA = {
    "type": "object",
    "description": '`{"detail": "..."}`, or DRF\'s `{"field": ["message", ...]}` for invalid fields.',
    "minProperties": 1,
    "additionalProperties": {},
}
ERROR_REFS = {
    "400": {"$ref": "#/components/schemas/ValidationError"},
    "default": {"$ref": "#/components/schemas/Error"},
}
DEFAULT_DESCRIPTIONS = {
    "400": "Invalid input; `{detail}` or `{field: [messages]}`",
    "401": "No or invalid token",
    "404": "No such object in the workspace, or not a member of the workspace",
    "413": "Request body larger than the limit",
}
METHODS = {"get", "put", "post", "patch", "delete"}


def drop_alias_paths(endpoints, **kwargs):
    """Describe each operation once.

    ``/v2/...`` repeats ``/recognition/v2/...`` and ``/account/v2/details`` repeats ``/user``; the
    schema lists the canonical path only (aliases would otherwise collide on operation ids).
    """
    return [
        (path, path_regex, method, callback)
        for path, path_regex, method, callback in endpoints
        if not path.startswith("/v2/") and not path.startswith("/account/v2/details")
    ]


def _is_public(operation: dict) -> bool:
    return "security" not in operation or {} in operation["security"]


def declare_error_responses(result, generator, request, public):
    """Declare, on every operation, the errors the framework can answer, with their bodies.

    Views declare their own errors; this fills in what any endpoint of its kind can answer, so the
    schema is complete even where a view forgot (the fuzzer, tests/test_fuzz.py, holds the service to
    it): 401 without a valid token; 404 for a path id or a ``workspace`` the caller cannot see; 400
    for a body or query parameters that do not validate; 413 for a body over
    ``DATA_UPLOAD_MAX_MEMORY_SIZE``. Every 4xx gets a JSON body schema: ``Error`` (``{detail}``)
    or, for 400, ``ValidationError``.
    """
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("Error", ERROR_SCHEMA)
    schemas.setdefault("ValidationError", VALIDATION_ERROR_SCHEMA)
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in METHODS:
                continue
            responses = operation.setdefault("responses", {})
            parameters = operation.get("parameters", [])
            wanted = set()
            if not _is_public(operation):
                wanted.add("401")
                if "{" in path or any(p.get("name") == "workspace" for p in parameters):
                    wanted.add("404")
            if "requestBody" in operation:
                wanted.update({"400", "413"})
            if any(p.get("in") == "query" for p in parameters):
                wanted.add("400")
            for code in sorted(wanted):  # a set: sorted, so the schema is the same every run
                responses.setdefault(code, {"description": DEFAULT_DESCRIPTIONS[code]})
            for code, response in responses.items():
                if code.startswith("4") and "content" not in response:
                    ref = ERROR_REFS.get(code, ERROR_REFS["default"])
                    response["content"] = {"application/json": {"schema": ref}}
    return result
