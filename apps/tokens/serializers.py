"""Serializers of the token endpoints. The key is in the create answer only."""

from __future__ import annotations

from rest_framework import serializers

from .models import ScopedToken
from .services import MAX_NAME_LENGTH

SCOPE_HELP = (
    "`read-only`: GET on the workspace's tasks, labels, images, models, objects, suggestions; "
    "`classify-only`: POST classify/ and detect/ only; `full`: everything in the workspace (webhooks "
    "included) but the account (workspaces, members, tokens, the audit log)."
)


class ScopedTokenSerializer(serializers.ModelSerializer):
    workspace = serializers.UUIDField(source="workspace_id", read_only=True)
    scope = serializers.ChoiceField(choices=ScopedToken.Scope.choices, help_text=SCOPE_HELP)
    prefix = serializers.CharField(help_text="The key's first characters, to tell tokens apart.")
    created_by = serializers.SerializerMethodField(help_text="Username of who issued it")
    expires = serializers.DateTimeField(allow_null=True, help_text="Refused from then on; null: never")
    last_used = serializers.DateTimeField(allow_null=True, help_text="To the minute; null: never used")

    class Meta:
        model = ScopedToken
        fields = [
            "id",
            "workspace",
            "name",
            "scope",
            "prefix",
            "created",
            "created_by",
            "expires",
            "last_used",
        ]
        read_only_fields = fields

    def get_created_by(self, token: ScopedToken) -> str:
        return token.created_by.username if token.created_by is not None else ""


class ScopedTokenCreatedSerializer(ScopedTokenSerializer):
    key = serializers.CharField(
        read_only=True,
        help_text="The token: send it as `Authorization: Token <key>`. Shown in this answer only "
        "(only its hash is stored): keep it now.",
    )

    class Meta(ScopedTokenSerializer.Meta):
        fields = [*ScopedTokenSerializer.Meta.fields, "key"]
        read_only_fields = fields


class ScopedTokenInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=MAX_NAME_LENGTH, help_text="What the token is for")
    scope = serializers.ChoiceField(choices=ScopedToken.Scope.choices, help_text=SCOPE_HELP)
    expires = serializers.DateTimeField(
        required=False,
        allow_null=True,
        help_text="When it stops working (in the future); null or absent: never",
    )
