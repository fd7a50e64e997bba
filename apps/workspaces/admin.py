from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from . import services
from .models import Membership, Workspace


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ["user"]


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "is_default", "created", "id"]
    list_filter = ["is_default", "created"]
    search_fields = ["name", "owner__username", "owner__email", "id"]
    autocomplete_fields = ["owner"]
    readonly_fields = ["id", "created"]
    inlines = [MembershipInline]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        # The owner is always a member with the owner role.
        Membership.objects.update_or_create(
            workspace=obj, user=obj.owner, defaults={"role": Membership.Role.OWNER}
        )


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["workspace", "user", "role", "created"]
    list_filter = ["role"]
    search_fields = ["workspace__name", "user__username", "user__email"]
    autocomplete_fields = ["workspace", "user"]


User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    actions = ["create_default_workspace_and_token"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        services.workspace_ensure_default(user=obj)

    @admin.action(description="Ensure default workspace and API token")
    def create_default_workspace_and_token(self, request, queryset):
        for user in queryset:
            services.workspace_ensure_default(user=user)
            services.token_get_or_create(user=user)
        messages.success(request, f"{queryset.count()} user(s) have a default workspace and a token.")
