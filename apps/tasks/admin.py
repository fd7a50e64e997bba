from django.contrib import admin

from .models import ModelVersion, Task


class TaskLabelInline(admin.TabularInline):
    model = Task.labels.through
    extra = 0
    autocomplete_fields = ["label"]
    verbose_name = "label"
    verbose_name_plural = "labels"


class ModelVersionInline(admin.TabularInline):
    model = ModelVersion
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ["version", "train_status", "accuracy", "progress", "created", "finished"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


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
    inlines = [TaskLabelInline, ModelVersionInline]


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    """Read-only: versions are made and changed by training, never by hand."""

    list_display = [
        "task",
        "version",
        "train_status",
        "accuracy",
        "progress",
        "created",
        "finished",
        "workspace",
    ]
    list_filter = ["train_status", "created"]
    search_fields = ["task__name", "id", "task__id"]
    list_select_related = ["task", "workspace"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
