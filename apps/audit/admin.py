from django.contrib import admin

from .models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Every workspace's events, read-only: the log is a record, not something to edit."""

    list_display = ["created", "actor_name", "action", "target_type", "target_name", "workspace_name", "ip"]
    list_filter = ["action", "target_type"]
    search_fields = ["actor_name", "target_name", "workspace_name", "target_id"]
    date_hierarchy = "created"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
