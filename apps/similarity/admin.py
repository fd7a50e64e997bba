from django.contrib import admin

from .models import DescriptorRun


@admin.register(DescriptorRun)
class DescriptorRunAdmin(admin.ModelAdmin):
    list_display = ["task", "version", "status", "progress", "done", "total", "created"]
    list_filter = ["status"]
    raw_id_fields = ["task", "workspace", "version"]
