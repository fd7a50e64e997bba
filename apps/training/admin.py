from django.contrib import admin

from apps.tasks.admin import TaskAdmin
from apps.tasks.models import Task

from .models import ModelVersion


class ModelVersionInline(admin.TabularInline):
    model = ModelVersion
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ["version", "train_status", "accuracy", "progress", "created", "finished"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


# The task page lists its versions: this app extends the tasks app's admin instead of the tasks app
# knowing about training.
admin.site.unregister(Task)


@admin.register(Task)
class TaskWithVersionsAdmin(TaskAdmin):
    inlines = [*TaskAdmin.inlines, ModelVersionInline]


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    """Read-only: versions are made and changed by training, never by hand; finished ones may be
    deleted (with their files)."""

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
        # A version a worker may be training cannot go (nor its task, workspace or owner, which
        # would take it in a cascade): its artifacts would land after the delete, orphaned.
        # Finished versions go with their files (apps/training/signals.py).
        if obj is not None and obj.train_status in (
            ModelVersion.Status.QUEUED,
            ModelVersion.Status.IN_TRAINING,
        ):
            return False
        return super().has_delete_permission(request, obj)
