"""The training-image serializer's written-out ``to_representation`` answers exactly what DRF's
field-by-field walk answers (keys, their order, values and value types), alone and in lists."""

from __future__ import annotations

import json
import time
from unittest import mock

import pytest
from django.db.models import Prefetch
from rest_framework import serializers
from rest_framework.test import APIRequestFactory

from apps.images import selectors
from apps.images.models import ImageLabel, TrainingImage
from apps.images.serializers import SignedImagePathsMixin, TrainingImageSerializer
from apps.labels.models import Label

pytestmark = pytest.mark.django_db

BASE = "/recognition/v2/training-image/"


def drf_walk(self, instance):
    """DRF's generic ``Serializer.to_representation``, the reference."""
    return serializers.ModelSerializer.to_representation(self, instance)


class PlainImageLabelSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="label.id", read_only=True)
    name = serializers.CharField(source="label.name", read_only=True)
    type = serializers.CharField(source="label.type", read_only=True)
    value = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = ImageLabel
        fields = ["id", "name", "type", "value"]


class PlainTrainingImageSerializer(SignedImagePathsMixin, serializers.ModelSerializer):
    """The serializer as it was declared before it was written out, for DRF to walk: the labels
    from the ``image_labels`` manager, prefetched there by ``plain_images``."""

    img_path = serializers.SerializerMethodField()
    thumb_img_path = serializers.SerializerMethodField()
    verifyCount = serializers.IntegerField(source="verify_count", read_only=True)  # noqa: N815
    labels = PlainImageLabelSerializer(source="image_labels", many=True, read_only=True)

    class Meta:
        model = TrainingImage
        fields = TrainingImageSerializer.Meta.fields
        read_only_fields = fields


def plain_images(workspace):
    links = Prefetch("image_labels", queryset=selectors.image_labels_queryset())
    return TrainingImage.objects.filter(workspace=workspace).prefetch_related(links)


@pytest.fixture
def images(workspace, make_image, make_label):
    """Images with every kind of label (a value with and without a value), both flags, meta data,
    and one with no label at all."""
    cat, tag, value = (
        make_label("cat"),
        make_label("outdoor", type=Label.Type.TAG),
        make_label("size", type=Label.Type.VALUE),
    )
    first = make_image(
        labels=[cat.id, tag.id], test_image=True, meta_data={"source": "camera", "n": [1, 2.5]}
    )
    second = make_image(real=True)
    ImageLabel.objects.create(image=second, label=value, value=0.25)
    third = make_image(labels=[cat.id], test_image=True, real=True)
    ImageLabel.objects.create(image=third, label=value, value=None)
    TrainingImage.objects.filter(pk=third.pk).update(verify_count=3)
    return [first, second, third, make_image()]


@pytest.fixture
def frozen_signatures():
    # The links carry a timestamp; both answers must be made in the same second.
    with mock.patch("django.core.signing.time.time", return_value=time.time()):
        yield


def test_it_answers_what_drfs_walk_answers_for_each_image(workspace, images, frozen_signatures):
    request = APIRequestFactory().get(BASE, HTTP_HOST="testserver")
    for image in selectors.training_image_list(workspace=workspace):
        serializer = TrainingImageSerializer(image, context={"request": request})
        fast, reference = serializer.to_representation(image), drf_walk(serializer, image)
        assert list(fast) == list(reference)
        assert fast == reference
        assert [type(value) for value in fast.values()] == [type(value) for value in reference.values()]
        assert [list(link) for link in fast["labels"]] == [list(link) for link in reference["labels"]]
        assert json.dumps(fast, default=str) == json.dumps(reference, default=str)
    assert {
        len(image.image_labels.all()) for image in selectors.training_image_list(workspace=workspace)
    } == {
        0,
        1,
        2,
    }


def test_it_answers_what_the_declared_serializer_answered_before(workspace, images, frozen_signatures):
    request = APIRequestFactory().get(BASE, HTTP_HOST="testserver")
    context = {"request": request}
    fast = TrainingImageSerializer(
        selectors.training_image_list(workspace=workspace), many=True, context=context
    )
    plain = PlainTrainingImageSerializer(plain_images(workspace), many=True, context=context)
    assert json.dumps(fast.data, default=str) == json.dumps(plain.data, default=str)
    assert [[type(v) for v in row.values()] for row in fast.data] == [
        [type(v) for v in row.values()] for row in plain.data
    ]


def test_the_list_answers_the_same_json_as_with_drfs_walk(api, images, frozen_signatures):
    fast = api.get(f"{BASE}?page_size=3")
    with mock.patch.object(TrainingImageSerializer, "to_representation", drf_walk):
        reference = api.get(f"{BASE}?page_size=3")
    assert fast.status_code == reference.status_code == 200
    assert fast.content == reference.content  # byte for byte: order, links, numbers
    assert fast.json()["count"] == 4
    for image in images[1:]:
        detail = api.get(f"{BASE}{image.id}/")
        with mock.patch.object(TrainingImageSerializer, "to_representation", drf_walk):
            assert api.get(f"{BASE}{image.id}/").content == detail.content


def test_the_links_follow_the_host_and_stay_empty_without_a_name(
    workspace, images, frozen_signatures, settings
):
    settings.ALLOWED_HOSTS = ["images.example.com"]
    image = images[0]
    image.thumbnail = ""
    request = APIRequestFactory().get(BASE, HTTP_HOST="images.example.com")
    data = TrainingImageSerializer(image, context={"request": request}).data
    assert data["img_path"].startswith("http://images.example.com/media/")
    assert data["thumb_img_path"] == ""
    assert data == drf_walk(TrainingImageSerializer(image, context={"request": request}), image)


def test_a_subclass_takes_drfs_walk(workspace, images):
    class WithHash(TrainingImageSerializer):
        content_hash = serializers.CharField(read_only=True)

        class Meta(TrainingImageSerializer.Meta):
            fields = [*TrainingImageSerializer.Meta.fields, "content_hash"]

    data = WithHash(images[0], context={"request": None}).data
    assert data["content_hash"] == images[0].content_hash
