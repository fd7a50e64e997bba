"""Shapes of the training-image API (field names as the Ximilar API spells them)."""

from __future__ import annotations

import json

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.core.fields import MetaDataField
from apps.core.ids import WORKSPACE_PATTERN

from . import selectors, storage
from .models import ImageLabel, TrainingImage

MSG_LABEL_IDS = "labels must be a list of label ids."
MSG_TOO_MANY_IDS = "At most {limit} ids per call; split the update into several calls."
# Ids one list of a call may name (bulk update, labels of an upload): one call stays one bounded
# query and one bounded transaction; the client's modify_images sends far fewer.
MAX_IDS_PER_CALL = 1000


class ImageLabelListSerializer(serializers.ListSerializer):
    """An image's label links, given the image (``source="*"``): read where
    ``selectors.training_image_list`` prefetched them."""

    def to_representation(self, data):
        if isinstance(data, TrainingImage):
            data = selectors.training_image_label_links(data)
        return super().to_representation(data)


class ImageLabelSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="label.id", read_only=True)
    name = serializers.CharField(source="label.name", read_only=True)
    type = serializers.CharField(source="label.type", read_only=True)
    value = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = ImageLabel
        fields = ["id", "name", "type", "value"]
        list_serializer_class = ImageLabelListSerializer


# ``created`` as the ModelSerializer field renders it (ISO 8601 in the current time zone, "Z" for UTC).
_CREATED = serializers.DateTimeField(read_only=True)


class SignedImagePathsMixin:
    """``img_path`` and ``thumb_img_path`` of a ``TrainingImage`` as signed, expiring URLs."""

    @extend_schema_field(OpenApiTypes.URI)
    def get_img_path(self, obj) -> str:
        return storage.signed_url(obj.file, self.context.get("request"))

    @extend_schema_field(OpenApiTypes.URI)
    def get_thumb_img_path(self, obj) -> str:
        return storage.signed_url(obj.thumbnail, self.context.get("request"))


class TrainingImageSerializer(SignedImagePathsMixin, serializers.ModelSerializer):
    img_path = serializers.SerializerMethodField(
        help_text="Signed, expiring URL of the image (no token needed)."
    )
    thumb_img_path = serializers.SerializerMethodField(help_text="Signed, expiring URL of the thumbnail.")
    verifyCount = serializers.IntegerField(source="verify_count", read_only=True)  # noqa: N815 - API name
    # The whole image: its list serializer picks the links the selector prefetched.
    labels = ImageLabelSerializer(source="*", many=True, read_only=True)

    class Meta:
        model = TrainingImage
        fields = [
            "id",
            "img_path",
            "thumb_img_path",
            "img_width",
            "img_height",
            "meta_data",
            "test_image",
            "real",
            "verifyCount",
            "workspace",
            "labels",
            "created",
        ]
        read_only_fields = fields

    def to_representation(self, instance):
        """The dict DRF's field-by-field walk builds, written out.

        A list page serialises up to 100 images with their labels; DRF's generic walk (twelve
        fields, each with its attribute lookup, None check and conversion, then a nested serializer
        per label) was about a third of the page's CPU time. The declared fields above still
        describe the answer for the schema and for subclasses, which take DRF's walk;
        tests/images/test_serializers.py holds this equal to it, key order and value types
        included.
        """
        if type(self) is not TrainingImageSerializer:
            return super().to_representation(instance)
        request = self.context.get("request")
        width, height, created = instance.img_width, instance.img_height, instance.created
        return {
            "id": str(instance.id),
            "img_path": storage.signed_url(instance.file, request),
            "thumb_img_path": storage.signed_url(instance.thumbnail, request),
            "img_width": None if width is None else int(width),
            "img_height": None if height is None else int(height),
            "meta_data": instance.meta_data,
            "test_image": bool(instance.test_image),
            "real": bool(instance.real),
            "verifyCount": int(instance.verify_count),
            "workspace": instance.workspace_id,  # a UUID, as PrimaryKeyRelatedField gives it
            "labels": [
                {
                    "id": str(link.label.id),
                    "name": str(link.label.name),
                    "type": str(link.label.type),
                    "value": None if link.value is None else float(link.value),
                }
                for link in selectors.training_image_label_links(instance)
            ],
            "created": None if created is None else _CREATED.to_representation(created),
        }


@extend_schema_field(
    {"type": "array", "items": {"type": "string", "format": "uuid"}, "maxItems": MAX_IDS_PER_CALL}
)
class LabelIdsField(serializers.Field):
    """Label ids as a JSON list, a JSON-list string, a comma-separated string or repeated form fields.

    At most ``MAX_IDS_PER_CALL`` of them.
    """

    def get_value(self, dictionary):
        if hasattr(dictionary, "getlist") and self.field_name in dictionary:
            return dictionary.getlist(self.field_name)
        return super().get_value(dictionary)

    def to_internal_value(self, data):
        items = data if isinstance(data, list | tuple) else [data]
        ids = []
        for item in items:
            if isinstance(item, str):
                text = item.strip()
                if text.startswith("["):
                    try:
                        parsed = json.loads(text)
                    except ValueError:
                        raise serializers.ValidationError(MSG_LABEL_IDS) from None
                    if not isinstance(parsed, list):
                        raise serializers.ValidationError(MSG_LABEL_IDS)
                    ids.extend(str(value) for value in parsed)
                else:
                    ids.extend(part.strip() for part in text.split(",") if part.strip())
            elif item is not None:
                ids.append(str(item))
        if len(ids) > MAX_IDS_PER_CALL:
            raise serializers.ValidationError(MSG_TOO_MANY_IDS.format(limit=MAX_IDS_PER_CALL))
        uuid_field = serializers.UUIDField()
        return [uuid_field.to_internal_value(value) for value in ids]

    def to_representation(self, value):
        return [str(item) for item in value]


class TrainingImageUploadSerializer(serializers.Serializer):
    """``POST training-image/``: exactly one of ``img_path``, ``base64``, ``url``."""

    # The one source, said in the schema too (apps/core/schema.py).
    schema_refinements = {"oneOf": [{"required": [source]} for source in ("img_path", "base64", "url")]}

    img_path = serializers.FileField(required=False, help_text="The image file (multipart).")
    base64 = serializers.CharField(
        required=False,
        trim_whitespace=True,
        help_text="Base64 image, bare or `data:image/...;base64,` prefixed.",
    )
    url = serializers.CharField(
        required=False, help_text="http(s) URL of a public image; the server fetches it."
    )
    meta_data = MetaDataField(required=False)
    noresize = serializers.BooleanField(required=False, default=False, help_text="Keep the original size.")
    test_image = serializers.BooleanField(required=False, default=False)
    real = serializers.BooleanField(required=False, default=False)
    labels = LabelIdsField(required=False, help_text="Label ids to attach at once.")
    workspace = serializers.UUIDField(required=False, help_text="Workspace to upload into.")


class TrainingImageUpdateSerializer(serializers.Serializer):
    """``PUT``/``PATCH training-image/{id}``: the fields given are changed, the others stay."""

    meta_data = MetaDataField(required=False)
    test_image = serializers.BooleanField(required=False)
    real = serializers.BooleanField(required=False)
    workspace = serializers.UUIDField(required=False)


class ImageLabelIdSerializer(serializers.Serializer):
    label_id = serializers.UUIDField()
    workspace = serializers.UUIDField(required=False)


class ImageLabelValueSerializer(ImageLabelIdSerializer):
    value = serializers.FloatField(required=False, allow_null=True, help_text="Required for a `value` label.")


class ImageLabelRequiredValueSerializer(ImageLabelIdSerializer):
    value = serializers.FloatField()


class BulkUpdateSerializer(serializers.Serializer):
    """``POST training-image/update``, as the client's ``modify_images`` sends it."""

    images = LabelIdsField(required=False, help_text="Image ids to update.")
    labels = LabelIdsField(required=False, help_text="Also update every image carrying one of these labels.")
    locals()["labels-add"] = LabelIdsField(required=False, help_text="Label ids to attach.")
    locals()["labels-remove"] = LabelIdsField(required=False, help_text="Label ids to detach.")
    locals()["mark-test"] = serializers.BooleanField(required=False, default=False)
    locals()["unmark-test"] = serializers.BooleanField(required=False, default=False)
    locals()["mark-real"] = serializers.BooleanField(required=False, default=False)
    locals()["unmark-real"] = serializers.BooleanField(required=False, default=False)
    # The client sends its workspace: an id, or "Default" (apps/workspaces/tenancy.py reads it).
    workspace = serializers.RegexField(WORKSPACE_PATTERN, required=False)

    # What validate() asks for, said in the schema too (apps/core/schema.py).
    schema_refinements = {
        "anyOf": [
            {"required": ["images"], "properties": {"images": {"minItems": 1}}},
            {"required": ["labels"], "properties": {"labels": {"minItems": 1}}},
        ]
    }

    def validate(self, attrs):
        if not attrs.get("images") and not attrs.get("labels"):
            raise serializers.ValidationError({"images": ["Give images or labels to select the images."]})
        return attrs


class BulkUpdateResultSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="How many images were selected and updated.")


class ZipImportSerializer(serializers.Serializer):
    """``POST training-image/import-zip/``: a zip archive of images, all given the same labels."""

    zip = serializers.FileField(help_text="Zip archive of JPEG/PNG/WebP/GIF/BMP images.")
    labels = LabelIdsField(required=False, help_text="Label ids to attach to every image (e.g. the class).")
    test_image = serializers.BooleanField(required=False, default=False)
    real = serializers.BooleanField(required=False, default=False)
    workspace = serializers.UUIDField(required=False)


class SkippedFileSerializer(serializers.Serializer):
    name = serializers.CharField()
    detail = serializers.CharField()


class ZipImportResultSerializer(serializers.Serializer):
    images = TrainingImageSerializer(many=True)
    skipped = SkippedFileSerializer(many=True, help_text="Archive members not imported, with the reason.")


class UploadWarningSerializer(serializers.Serializer):
    """Something an upload's receiver noticed (apps/images/signals.py, ``upload_checks``)."""

    code = serializers.CharField(help_text="`near_duplicate`: the image looks like a stored one.")
    text = serializers.CharField()
    image_id = serializers.UUIDField(required=False, help_text="The stored image it looks like.")
    distance = serializers.FloatField(required=False, help_text="Cosine distance of their descriptors.")


class TrainingImageUploadedSerializer(TrainingImageSerializer):
    """An upload's answer: the stored image, and ``warnings`` when a check found something (the
    near-duplicates by descriptor once the workspace has computed descriptors); never a refusal."""

    # Not read_only: the schema would then list it as always present (it is there only with
    # something to say); the serializer describes the answer and never reads a request.
    warnings = UploadWarningSerializer(many=True, required=False)

    class Meta(TrainingImageSerializer.Meta):
        fields = [*TrainingImageSerializer.Meta.fields, "warnings"]
        read_only_fields = TrainingImageSerializer.Meta.fields
