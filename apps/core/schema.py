"""drf-spectacular hooks."""

from __future__ import annotations

import copy

from rest_framework import serializers

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
    refine_serializer_schemas(result, generator)
    return json_request_bodies(result)


FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _has_file_field(schema: dict, components: dict) -> bool:
    if "$ref" in schema:
        schema = components.get(schema["$ref"].rsplit("/", 1)[-1], {})
    return any(
        field.get("format") == "binary" or field.get("items", {}).get("format") == "binary"
        for field in schema.get("properties", {}).values()
    )


def json_request_bodies(result):
    """Declare JSON request bodies, and multipart only where a body carries a file.

    The parsers still read forms everywhere (the browsable API posts them), but a form cannot say
    what the JSON says: ``meta_data`` an object, ``labels`` a list, a number or null. A client built
    from the schema, as the Ximilar client does, sends JSON, and uploads files as multipart."""
    components = result.get("components", {}).get("schemas", {})
    for operations in result.get("paths", {}).values():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content") if method in METHODS else None
            if not content or "application/json" not in content:
                continue
            # A body whose schema requires something is itself required (DRF's actions leave it
            # optional, and "no body" then reads as valid).
            json_schema = content["application/json"].get("schema", {})
            if "$ref" in json_schema:
                json_schema = components.get(json_schema["$ref"].rsplit("/", 1)[-1], {})
            if any(json_schema.get(key) for key in ("required", "anyOf", "oneOf")):
                operation["requestBody"]["required"] = True
            for media_type in FORM_TYPES:
                schema = content.get(media_type)
                if schema is not None and not _has_file_field(schema.get("schema", {}), components):
                    del content[media_type]
            content.pop("application/x-www-form-urlencoded", None)  # it cannot carry a file either
    return result


def _merge(target: dict, extra: dict) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


def refine_serializer_schemas(result, generator) -> None:
    """Merge a serializer's ``schema_refinements`` into its request components: all of them into
    the full one, only ``properties`` into a ``Patched`` one (where every field is optional).

    For the rules a serializer checks in ``validate()`` that no field can state alone: one of two
    fields required (``anyOf``), a list's length the service checks itself. The schema then says
    what the server refuses, so a client built from it never sends what is refused."""
    schemas = result.get("components", {}).get("schemas", {})
    for component in generator.registry._components.values():
        name = component.name
        if not name.endswith("Request") or name not in schemas:
            continue
        _not_blank(schemas[name], component.object)
        refinements = getattr(type(component.object), "schema_refinements", None)
        if not refinements:
            continue
        if name.startswith("Patched"):
            refinements = {"properties": refinements.get("properties", {})}
        _merge(schemas[name], copy.deepcopy(refinements))


# A character that is not whitespace to Python (``str.isspace``, what ``str.strip()`` removes),
# spelt out: a schema's patterns are ECMA-262 regexes, whose ``\S`` takes the separators
# U+001C-U+001F and U+0085 that Python strips (a name of "\x1e" was schema-valid and a 400; found by
# the contract test's stateful phase).
NOT_BLANK = r"[^\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"


def _not_blank(schema: dict, serializer) -> None:
    """A ``CharField`` that trims whitespace and refuses blanks takes no string of whitespace only
    (``" "`` is a 400); ``minLength: 1`` alone would allow it. The pattern says "a character that
    ``str.strip()`` keeps" (``NOT_BLANK``)."""
    fields = serializer.fields if isinstance(serializer, serializers.BaseSerializer) else {}
    properties = schema.get("properties", {})
    for field_name, field in fields.items():
        prop = properties.get(field_name)
        if (
            isinstance(field, serializers.CharField)
            and field.trim_whitespace
            and not field.allow_blank
            and prop is not None
            and prop.get("type") == "string"
            and "pattern" not in prop
        ):
            prop["pattern"] = NOT_BLANK
