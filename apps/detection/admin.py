from django.contrib import admin

from .models import DetectionLabel, DetectionObject


@admin.register(DetectionLabel)
class DetectionLabelAdmin(admin.ModelAdmin):
    list_display = ["name", "output_name", "color", "workspace", "created"]
    search_fields = ["name", "output_name", "description", "id", "workspace__name"]
    list_select_related = ["workspace"]
    autocomplete_fields = ["workspace"]
    raw_id_fields = ["tasks", "recognition_tasks"]
    readonly_fields = ["id", "created"]


@admin.register(DetectionObject)
class DetectionObjectAdmin(admin.ModelAdmin):
    list_display = ["id", "detection_label", "image", "data", "workspace", "created"]
    search_fields = ["id", "detection_label__name", "image__id", "workspace__name"]
    list_select_related = ["workspace", "detection_label", "image"]
    raw_id_fields = ["workspace", "detection_label", "image"]
    readonly_fields = ["id", "created"]
