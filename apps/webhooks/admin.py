from django.contrib import admin

from .models import Webhook, WebhookAttempt, WebhookDelivery


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    list_display = ["url", "workspace", "is_active", "created"]
    list_filter = ["is_active"]
    raw_id_fields = ["workspace", "created_by"]
    # The signing secret is shown once, to the owner who creates the webhook; not here.
    exclude = ["secret"]

    def has_add_permission(self, request) -> bool:
        return False  # made through the API or the console, which make its secret and show it


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    extra = 0
    can_delete = False
    readonly_fields = ["number", "status_code", "error", "duration_ms", "created"]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ["event", "webhook", "status", "attempts", "response_status", "created"]
    list_filter = ["status", "event"]
    raw_id_fields = ["workspace", "webhook"]
    readonly_fields = ["body"]
    inlines = [WebhookAttemptInline]
