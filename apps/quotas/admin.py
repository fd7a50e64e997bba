from django.contrib import admin

from .models import StoredBytes, WorkspaceQuota


@admin.register(WorkspaceQuota)
class WorkspaceQuotaAdmin(admin.ModelAdmin):
    """The admin sets a workspace's limits here; an empty field is the settings default
    (VF_QUOTA_*). Every change is in the audit log (``quota.changed``)."""

    list_display = ["workspace", "images", "stored_bytes", "versions", "queued_trainings", "updated"]
    search_fields = ["workspace__name", "workspace__owner__username", "workspace__id"]
    autocomplete_fields = ["workspace"]
    readonly_fields = ["updated"]


@admin.register(StoredBytes)
class StoredBytesAdmin(admin.ModelAdmin):
    """Read only: the triggers on the images table keep it."""

    list_display = ["workspace", "bytes"]
    search_fields = ["workspace__name", "workspace__id"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
