"""The official ``ximilar-client`` 1.39.0 ``DetectionClient`` against a live server: its own
detection workflow test and every call of shared/DETECTION.md, unchanged."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from PIL import Image
from ximilar.client import DetectionClient

from apps.detection.models import DetectionLabel, DetectionObject, NegativeImage
from apps.images.models import TrainingImage
from apps.inference import cache
from apps.tasks.models import Task
from apps.training.models import ModelVersion

from .scenes import png, scenes

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def client(live_server, token):
    return DetectionClient(token=token, endpoint=live_server.url + "/")


def _big_png(tmp_path, size=(1600, 1200)):
    path = tmp_path / "big.png"
    image, _, _ = scenes(1, seed=3, size=(160, 120))[0]
    image.resize(size, Image.Resampling.NEAREST).save(path)
    return str(path)


def test_the_clients_own_detection_workflow(client, tmp_path):
    """``tests/client.py::test_13_detection_workflow`` of ximilar-client, step by step."""
    task, status = client.create_task("Test-Detection-Task-API")
    assert status["status"] == "OK"
    label1, _ = client.create_label("Test-Detection-Label-1")
    label2, _ = client.create_label("Test-Detection-Label-2")
    images, status = client.upload_images([{"_file": _big_png(tmp_path), "noresize": True}])
    assert status["status"] == "OK"
    image = images[0]
    stored = TrainingImage.objects.get(pk=image.id)
    assert (stored.img_width, stored.img_height) == (1600, 1200)
    object1, _ = client.create_object(label1.id, image.id, [0, 0, 100, 100])
    task.add_label(label1.id)
    labels, _ = task.get_labels()
    assert len(labels) == 1
    all_labels, _ = client.get_all_labels()
    assert len(all_labels) != len(labels)
    objects, _ = client.get_objects_of_image(image.id)
    assert len(objects) == 1

    task.remove()  # the client returns nothing here
    assert not Task.objects.filter(pk=task.id).exists()
    assert label1.remove().status_code == 204  # takes its objects with it
    assert not DetectionObject.objects.exists()
    assert label2.remove().status_code == 204
    assert image.remove().status_code == 204
    gone = object1.remove()  # already gone: a JSON 404
    assert gone["detail"]


def test_every_call_of_the_contract(client, user, workspace):
    task, _ = client.create_task("Shapes", description="squares and discs")
    assert (client.get_task(task.id)[0].name, task.workspace) == ("Shapes", str(workspace.pk))
    assert [t.id for t in client.get_all_tasks()[0]] == [task.id]
    assert client.get_tasks_by_name("Shapes")[0][0].id == task.id
    square, _ = client.create_label("square", description="red", color="#FF0000", output_name="Square")
    disc, _ = client.create_label("disc")
    assert (square.color, disc.color) == ("#FF0000", "#FFFFFF")
    assert client.get_label(square.id)[0].name == "square"
    assert client.get_label_by_name("disc")[0].id == disc.id
    for label in (square, disc):
        task.add_label(label.id)
    task.detach_label(disc.id)
    assert [label.id for label in task.get_labels()[0]] == [square.id]
    task.add_label(disc.id)

    # Recognition task linked to a label.
    from ximilar.client import RecognitionClient

    recognition = RecognitionClient(token=client.token, endpoint=client.endpoint)
    brand_task, _ = recognition.create_task("Brands")
    square.add_recognition_task(brand_task.id)
    linked = DetectionLabel.objects.get(pk=square.id).recognition_tasks.values_list("id", flat=True)
    assert [str(pk) for pk in linked] == [brand_task.id]
    square.detach_recognition_task(brand_task.id)
    assert DetectionLabel.objects.get(pk=square.id).recognition_tasks.count() == 0

    # The detection flavour of upload_images: image, then its objects.
    records = []
    for image, boxes, labels in scenes(4, seed=5):
        objects = [
            {"detection_label": (square, disc)[label].id, "data": box, "meta_data": {"n": i}}
            for i, (box, label) in enumerate(zip(boxes, labels, strict=True))
        ]
        # upload_images calls .decode() on _base64: the client wants bytes here.
        records.append({"_base64": base64.b64encode(png(image)), "objects": objects})
    images, status = client.upload_images(records)
    assert status["status"] == "OK" and len(images) == 4
    assert DetectionObject.objects.count() == sum(len(r["objects"]) for r in records)
    with_squares, _ = square.get_images()
    assert {i.id for i in with_squares} <= {i.id for i in images}
    assert with_squares
    page, next_page, count = square.get_training_images()
    assert {i.id for i in page} == {i.id for i in with_squares}
    assert (next_page, count["count"]) == (None, len(with_squares))

    objects, _ = client.get_objects_of_image(images[0].id)
    obj, _ = client.get_object(objects[0].id)
    assert obj.image["img_path"] and obj.detection_label["name"] in ("square", "disc")
    assert obj.meta_data == {"n": 0} and obj.recognition_labels == []
    listed, _, _ = client.get_objects(detection_label=square.id)
    assert {o.detection_label["id"] for o in listed} == {square.id}
    created, _ = client.create_object(disc.id, images[0].id, [1, 2, 20, 30], meta_data={"by": "hand"})
    created.change_label(square.id, data=[2, 3, 21, 31])
    changed = DetectionObject.objects.get(pk=created.id)
    assert (str(changed.detection_label_id), changed.data) == (square.id, [2, 3, 21, 31])
    fresh, _ = client.get_object(created.id)
    fresh.add_meta_data({"checked": True})
    assert DetectionObject.objects.get(pk=created.id).meta_data == {"by": "hand", "checked": True}
    fresh.clear_meta_data()
    assert DetectionObject.objects.get(pk=created.id).meta_data == {}
    colour, _ = recognition.create_label("redness", label_type="value")
    fresh.add_recognition_label(colour.id, value=0.25)
    fresh.update_label(colour.id, value=0.75)
    assert client.get_object(created.id)[0].recognition_labels[0]["value"] == 0.75
    fresh.detach_recognition_label(colour.id)
    assert client.get_object(created.id)[0].recognition_labels == []
    assert client.remove_object(created.id).status_code == 204

    task.add_negative_image(images[-1].id)
    assert NegativeImage.objects.filter(task_id=task.id).count() == 1
    assert client.remove_task(task.id).status_code == 204


def test_train_and_detect_through_the_client(client, fast_training, settings, tmp_path):
    settings.VF_TRAIN_PRETRAINED = "auto"
    settings.VF_MIN_DETECTION_IMAGES_PER_LABEL = 1
    settings.VF_DETECTION_INPUT_SIZE = 64
    settings.VF_DETECTION_EPOCHS = 1
    cache.model_cache().clear()
    task, _ = client.create_task("Shapes")
    square, _ = client.create_label("square", output_name="Square")
    task.add_label(square.id)
    records = []
    for image, boxes, _labels in scenes(6, seed=9):
        objects = [{"detection_label": square.id, "data": box, "meta_data": None} for box in boxes]
        records.append({"_base64": base64.b64encode(png(image)), "objects": objects})
    client.upload_images(records)
    answer = task.train()
    assert answer["train_status"] in ("QUEUED", "TRAINED")
    assert ModelVersion.objects.get(task_id=task.id).train_status == "TRAINED"

    # Both sides over 1024 and a file over 0.1 MB (smaller files are sent as they are): the client
    # shrinks it to 1365 x 1024 and never maps boxes back, so the answer is in that frame.
    big = tmp_path / "big.jpg"
    noise = np.random.default_rng(0).integers(0, 255, size=(1500, 2000, 3), dtype=np.uint8)
    Image.fromarray(noise).save(big, quality=90)
    assert big.stat().st_size > 0.1 * 1024 * 1024
    big = str(big)
    scene = records[0]["_base64"].decode()
    result = task.detect([{"_file": big}, {"_base64": scene}])
    assert result["status"]["code"] == 200
    first, second = result["records"]
    assert (first["_width"], first["_height"]) == (1365, 1024)  # the frame the client sent
    for record in (first, second):
        assert record["_status"]["code"] == 200
        for obj in record["_objects"]:
            assert obj["name"] == "Square" and obj["id"] == square.id
            x1, y1, x2, y2 = obj["bound_box"]
            assert 0 <= x1 < x2 <= record["_width"] and 0 <= y1 < y2 <= record["_height"]
    strict = client.detect_on_task([{"_base64": scene}], task_id=task.id, keep_prob=0.99)
    assert all(o["prob"] >= 0.99 for o in strict["records"][0]["_objects"])
