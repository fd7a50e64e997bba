from django.contrib import admin
from django.utils.html import format_html

from . import storage
from .models import ImageLabel, TrainingImage
from .selectors import image_labels_queryset
from .services import training_image_delete_many


class ImageLabelInline(admin.TabularInline):
    model = ImageLabel
    extra = 0
    raw_id_fields = ["label"]

    def get_queryset(self, request):
        return image_labels_queryset()


@admin.register(TrainingImage)
class TrainingImageAdmin(admin.ModelAdmin):
    list_display = [
        "preview",
        "id",
        "workspace",
        "label_names",
        "img_width",
        "img_height",
        "test_image",
        "real",
        "created",
    ]
    list_filter = ["test_image", "real", "workspace", "labels", "created"]
    search_fields = ["=id", "content_hash", "labels__name", "workspace__name", "meta_data"]
    list_select_related = ["workspace"]
    readonly_fields = [
        "id",
        "large_preview",
        "file",
        "thumbnail",
        "img_width",
        "img_height",
        "content_hash",
        "created",
    ]
    fields = [*readonly_fields, "workspace", "meta_data", "test_image", "real", "verify_count"]
    raw_id_fields = ["workspace"]
    inlines = [ImageLabelInline]
    actions = ["delete_with_files"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("labels")

    def get_actions(self, request):
        # The stock bulk delete would leave the files in storage.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    @admin.display(description="image")
    def preview(self, image):
        return format_html(
            '<img src="{}" style="max-height:64px;max-width:96px">', storage.signed_link(image.thumbnail)
        )

    @admin.display(description="image")
    def large_preview(self, image):
        return format_html(
            '<img src="{}" style="max-height:512px;max-width:100%">', storage.signed_link(image.file)
        )

    @admin.display(description="labels")
    def label_names(self, image):
        return ", ".join(label.name for label in image.labels.all())

    @admin.action(description="Delete the selected images and their files", permissions=["delete"])
    def delete_with_files(self, request, queryset):
        count = training_image_delete_many(queryset=queryset)
        self.message_user(request, f"Deleted {count} images.")

    def delete_model(self, request, obj):
        training_image_delete_many(queryset=TrainingImage.objects.filter(pk=obj.pk))

    def delete_queryset(self, request, queryset):
        training_image_delete_many(queryset=queryset)
