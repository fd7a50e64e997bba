"""Import of COCO JSON and Pascal VOC XML: the management command and the zip upload endpoint."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from django.core.management import call_command

from apps.detection.formats import MSG_DTD, MSG_UNKNOWN_CATEGORY, parse_coco, parse_voc
from apps.detection.models import DetectionLabel, DetectionObject, NegativeImage
from apps.detection.services import MSG_BOX_OUTSIDE, MSG_IMAGE_FILE_MISSING
from apps.images.errors import MSG_DUPLICATE
from apps.images.models import TrainingImage
from apps.tasks.models import Task

from .scenes import png, scenes

pytestmark = pytest.mark.django_db


def _coco(names_boxes, extra_annotations=()):
    images, annotations = [], []
    for image_id, (name, boxes, size) in enumerate(names_boxes, start=1):
        images.append({"id": image_id, "file_name": name, "width": size[0], "height": size[1]})
        for x1, y1, x2, y2, category in boxes:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": category,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                }
            )
    annotations += list(extra_annotations)
    categories = [{"id": 1, "name": "square"}, {"id": 2, "name": "disc"}]
    return json.dumps({"images": images, "annotations": annotations, "categories": categories})


def _voc(name, size, boxes):
    objects = "".join(
        f"<object><name>{label}</name><bndbox><xmin>{x1 + 1}</xmin><ymin>{y1 + 1}</ymin>"
        f"<xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
        for x1, y1, x2, y2, label in boxes
    )
    return (
        f"<annotation><filename>{name}</filename><size><width>{size[0]}</width><height>{size[1]}</height>"
        f"<depth>3</depth></size>{objects}</annotation>"
    )


def test_coco_boxes_become_corner_boxes_and_bad_annotations_are_reported():
    text = _coco(
        [("a.png", [(10, 5, 30, 25, 1)], (96, 80))],
        extra_annotations=[
            {"image_id": 1, "category_id": 9, "bbox": [0, 0, 5, 5]},
            {"image_id": 1, "category_id": 1, "bbox": [0, "x", 5, 5]},
        ],
    )
    parsed = parse_coco(text)
    assert [(i.file_name, i.width, i.height, i.boxes) for i in parsed.images] == [
        ("a.png", 96, 80, [("square", [10, 5, 30, 25])])
    ]
    assert [s["reason"] for s in parsed.skipped][0] == MSG_UNKNOWN_CATEGORY.format(category_id=9)
    assert len(parsed.skipped) == 2
    assert parse_coco("{not json").skipped[0]["reason"].startswith("Not valid JSON")


def test_voc_one_based_pixels_become_zero_based_corners():
    parsed = parse_voc(_voc("b.jpg", (96, 80), [(0, 0, 96, 80, "disc")]))
    assert parsed.images[0].boxes == [("disc", [0.0, 0.0, 96.0, 80.0])]
    assert parse_voc("<annotation></annotation>").skipped[0]["reason"].startswith("Not a Pascal VOC")
    bomb = '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><annotation><filename>&x;</filename></annotation>'
    refused = parse_voc(bomb)  # no DTD, so no entity is ever expanded or read
    assert not refused.images and refused.skipped[0]["reason"] == MSG_DTD


def test_the_command_imports_coco_and_voc_with_a_report(tmp_path, workspace, user, capsys):
    task = Task.objects.create(workspace=workspace, owner=user, name="Shapes", type=Task.Type.DETECTION)
    data = scenes(3, seed=2)
    entries = []
    for i, (image, boxes, labels) in enumerate(data[:2]):
        (tmp_path / "images").mkdir(exist_ok=True)
        (tmp_path / "images" / f"s{i}.png").write_bytes(png(image))
        entries.append(
            (f"images/s{i}.png", [(*b, lab + 1) for b, lab in zip(boxes, labels, strict=True)], image.size)
        )
    entries.append(("images/missing.png", [(1, 1, 5, 5, 1)], (96, 80)))
    (tmp_path / "coco.json").write_text(_coco(entries))
    image, boxes, labels = data[2]
    (tmp_path / "voc").mkdir()
    (tmp_path / "voc" / "s2.png").write_bytes(png(image))
    voc_boxes = [(*b, ("square", "disc")[lab]) for b, lab in zip(boxes, labels, strict=True)] + [
        (0, 0, 200, 20, "disc")
    ]
    (tmp_path / "voc" / "s2.xml").write_text(_voc("s2.png", image.size, voc_boxes))
    (tmp_path / "voc" / "empty.png").write_bytes(png(scenes(1, seed=50)[0][0].copy().crop((0, 0, 40, 40))))
    (tmp_path / "voc" / "empty.xml").write_text(_voc("empty.png", (40, 40), []))

    call_command(
        "import_detections",
        str(tmp_path),
        workspace=str(workspace.pk),
        task=str(task.pk),
        json=True,
        no_progress=True,
    )
    report = json.loads(capsys.readouterr().out)
    total = sum(len(d[1]) for d in data)
    assert (report["images"], report["objects"], report["negative_images"]) == (4, total, 1)
    assert sorted(report["labels_created"]) == ["disc", "square"]
    reasons = {(s["file"], s["reason"]) for s in report["skipped"]}
    assert ("images/missing.png", MSG_IMAGE_FILE_MISSING) in reasons
    assert ("s2.png", MSG_BOX_OUTSIDE.format(data=[0.0, 0.0, 200.0, 20.0], width=96, height=80)) in reasons
    assert DetectionObject.objects.count() == total
    assert set(DetectionLabel.objects.filter(tasks=task).values_list("name", flat=True)) == {"square", "disc"}
    assert NegativeImage.objects.filter(task=task).count() == 1
    stored = DetectionObject.objects.filter(image__img_width=96).first()
    assert stored.data in [list(b) for d in data for b in d[1]]

    # Importing again: every image is a duplicate, nothing is stored twice.
    call_command("import_detections", str(tmp_path), workspace=str(workspace.pk), json=True, no_progress=True)
    again = json.loads(capsys.readouterr().out)
    assert again["images"] == 0 and DetectionObject.objects.count() == total
    assert any(s["reason"].startswith(MSG_DUPLICATE.split("{")[0]) for s in again["skipped"])


def test_the_zip_endpoint_imports_into_the_task(api, workspace):
    task = api.post("/detection/v2/task/", {"name": "Shapes"}, format="json").json()
    buffer = io.BytesIO()
    data = scenes(2, seed=6)
    with zipfile.ZipFile(buffer, "w") as archive:
        entries = []
        for i, (image, boxes, labels) in enumerate(data):
            archive.writestr(f"pics/{i}.png", png(image))
            entries.append(
                (f"{i}.png", [(*b, lab + 1) for b, lab in zip(boxes, labels, strict=True)], image.size)
            )
        archive.writestr("annotations/instances.json", _coco(entries))
    buffer.seek(0)
    buffer.name = "shapes.zip"
    response = api.post(f"/detection/v2/task/{task['id']}/import-zip/", {"zip": buffer}, format="multipart")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["images"], body["objects"]) == (2, sum(len(d[1]) for d in data))
    assert TrainingImage.objects.filter(workspace=workspace).count() == 2
    labels = api.get(f"/detection/v2/label/?task={task['id']}").json()
    assert {label["name"] for label in labels["results"]} <= {"square", "disc"}
    not_zip = io.BytesIO(b"plain text")
    not_zip.name = "x.zip"
    refused = api.post(f"/detection/v2/task/{task['id']}/import-zip/", {"zip": not_zip}, format="multipart")
    assert refused.status_code == 400
