from django.contrib import admin

from .models import Label
from .selectors import label_annotate_counts


@admin.register(Label)
class LabelAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "type",
        "workspace",
        "images_count",
        "tasks_count",
        "negative_for_task",
        "created",
    ]
    list_filter = ["type", "created", ("negative_for_task", admin.EmptyFieldListFilter)]
    search_fields = ["name", "output_name", "description", "id", "workspace__name"]
    list_select_related = ["workspace", "negative_for_task"]
    autocomplete_fields = ["workspace"]
    raw_id_fields = ["negative_for_task"]
    readonly_fields = ["id", "created"]

    def get_queryset(self, request):
        # One query for the change list, counts included (images_count is a kept column).
        return label_annotate_counts(super().get_queryset(request))

    @admin.display(ordering="tasks_count")
    def tasks_count(self, label):
        return label.tasks_count
