from django.contrib import admin

from .models import Task


class TaskLabelInline(admin.TabularInline):
    model = Task.labels.through
    extra = 0
    autocomplete_fields = ["label"]
    verbose_name = "label"
    verbose_name_plural = "labels"


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "type",
        "workspace",
        "owner",
        "production_version",
        "last_train_status",
        "created",
    ]
    list_filter = ["type", "last_train_status", "keep_deployed_version", "labels__type", "created"]
    search_fields = ["name", "description", "id", "workspace__name", "labels__name"]
    list_select_related = ["workspace", "owner"]
    autocomplete_fields = ["workspace", "owner"]
    readonly_fields = ["id", "created", "production_version", "last_train_status"]
    exclude = ["labels"]  # edited in the inline, which searches labels instead of listing them all
    inlines = [TaskLabelInline]  # apps/training/admin.py adds the model versions
