from __future__ import annotations

from django.contrib.auth import get_user_model
from rest_framework import serializers

from apps.core.fields import MetaDataField

from .models import Membership, Workspace


class WorkspaceSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    is_default = serializers.SerializerMethodField()

    class Meta:
        model = Workspace
        fields = ["id", "name", "created", "owner", "meta_data", "is_default"]
        read_only_fields = ["id", "created", "owner", "is_default"]

    def get_is_default(self, workspace: Workspace) -> bool:
        # Default for the caller: only the owner's own Default workspace.
        request = self.context.get("request")
        return bool(workspace.is_default and request and workspace.owner_id == request.user.pk)


class WorkspaceInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=255)
    meta_data = MetaDataField(required=False)


class WorkspaceUpdateSerializer(WorkspaceInputSerializer):
    name = serializers.CharField(max_length=255, required=False)


class MembershipSerializer(serializers.ModelSerializer):
    user_id = serializers.IntegerField(source="user.id", read_only=True)
    username = serializers.CharField(source="user.username", read_only=True)
    email = serializers.EmailField(source="user.email", read_only=True)

    class Meta:
        model = Membership
        fields = ["user_id", "username", "email", "role", "created"]
        read_only_fields = fields


class MembershipInputSerializer(serializers.Serializer):
    username = serializers.CharField(required=False, allow_blank=False)
    email = serializers.CharField(required=False, allow_blank=False)

    # One of the two, said in the schema too (apps/core/schema.py).
    schema_refinements = {"anyOf": [{"required": ["username"]}, {"required": ["email"]}]}

    def validate(self, attrs):
        if not attrs.get("username") and not attrs.get("email"):
            raise serializers.ValidationError("Give the member's username or email.")
        return attrs


class UserDetailSerializer(serializers.ModelSerializer):
    default_workspace = serializers.SerializerMethodField()

    class Meta:
        model = get_user_model()
        fields = ["id", "email", "first_name", "last_name", "default_workspace"]
        read_only_fields = fields

    def get_default_workspace(self, user) -> str:
        return str(self.context["default_workspace"].id)


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField()
    password = serializers.CharField(style={"input_type": "password"}, trim_whitespace=False)


class TokenResponseSerializer(serializers.Serializer):
    token = serializers.CharField()
