from django.contrib import admin

from .models import ScopedToken


@admin.register(ScopedToken)
class ScopedTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "workspace", "scope", "prefix", "created", "expires", "last_used"]
    list_filter = ["scope"]
    raw_id_fields = ["workspace", "created_by"]
    readonly_fields = ["prefix", "key_hash", "last_used"]

    def has_add_permission(self, request) -> bool:
        return False  # issued through the API or the console, which make the key and show it once
