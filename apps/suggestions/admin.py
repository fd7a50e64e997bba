from django.contrib import admin

from .models import PoolImage, SuggestionRun


@admin.register(SuggestionRun)
class SuggestionRunAdmin(admin.ModelAdmin):
    list_display = ["task", "version", "status", "progress", "created"]
    list_filter = ["status"]
    raw_id_fields = ["task", "workspace"]


@admin.register(PoolImage)
class PoolImageAdmin(admin.ModelAdmin):
    list_display = ["image", "task", "created"]
    raw_id_fields = ["task", "image"]
