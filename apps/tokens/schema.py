"""The scoped token in the OpenAPI schema: the same header as a user's token, its own scheme."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ScopedTokenScheme(OpenApiAuthenticationExtension):
    target_class = "apps.tokens.authentication.ScopedTokenAuthentication"
    name = "scopedTokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": 'A scoped token of one workspace: "Token vfs_<key>" '
            "(docs/api.md#scoped-api-tokens).",
        }
