"""Object detection as a kind of training (apps/core/kinds.py).

What is particular to it: the checks before training (labels, images with objects per label), the
images and boxes a task trains on, the split stratified by the labels present on each image, and
the fit and evaluation of ml's detector (ml/detection/). Queue, claim, heartbeat, budget,
artifacts, deploy, sweep and e-mails are the shared lifecycle of apps/training/services.py.
"""

from __future__ import annotations

import logging
import tempfile
from collections import Counter

from django.conf import settings

from apps.core.errors import DomainError
from apps.core.kinds import Trainer, TrainOutcome
from apps.tasks.models import Task
from apps.training.fitting import fit_budget, image_sources, split_and_record
from apps.training.models import ModelVersion

from .selectors import task_training_objects

logger = logging.getLogger(__name__)

MSG_NO_LABELS = "A detection task needs at least 1 detection label to train; it has none."
MSG_TOO_FEW_IMAGES = "Each detection label needs objects on at least {minimum} images; too few on: {labels}."
NEGATIVE_STRATUM = "negative"


def _images_per_label(labels, boxes) -> Counter:
    counts: Counter = Counter()
    for objects in boxes.values():
        for index in {label for label, _ in objects}:
            counts[labels[index].pk] += 1
    return counts


def task_validate_trainable(*, task: Task) -> None:
    """Raise DomainError naming what is missing when the detection task cannot train yet."""
    labels, boxes, _ = task_training_objects(task=task)
    if not labels:
        raise DomainError(MSG_NO_LABELS)
    minimum = settings.VF_MIN_DETECTION_IMAGES_PER_LABEL
    counts = _images_per_label(labels, boxes)
    short = [label for label in labels if counts[label.pk] < minimum]
    if short:
        names = ", ".join(f"{label.name} ({counts[label.pk]})" for label in short)
        raise DomainError(MSG_TOO_FEW_IMAGES.format(minimum=minimum, labels=names))


def _evaluation(records: list[dict], images: list, labels) -> list[dict]:
    """ml's per-image results (worst first) with image ids and label ids and names."""

    def named(box: dict) -> dict:
        label = labels[box["label"]]
        return {
            "id": str(label.pk),
            "name": label.answer_name,
            **{k: v for k, v in box.items() if k != "label"},
        }

    return [
        {
            "image_id": str(images[record["index"]].pk),
            "true_objects": [named(box) for box in record["true"]],
            "predicted_objects": [named(box) for box in record["predicted"]],
            "false_positives": record["false_positives"],
            "false_negatives": record["false_negatives"],
            "correct": record["correct"],
        }
        for record in records
    ]


def train(*, version: ModelVersion, out_dir: str, progress) -> TrainOutcome:
    """Fit a claimed detection version into ``out_dir``.

    The task's images with objects of its labels, and its negative images, are split 80/20
    (stratified by the set of labels on each image, seeded by task and version, ``test_image``
    always test) and the split is recorded on the version; ml.detection.detector trains FCOS within
    the task's time budget and evaluates it on the test side.
    """
    from ml.detection.detector import DetectConfig, DetectionExample, fit_detector

    task = version.task
    labels, boxes, negatives = task_training_objects(task=task)
    images = list(boxes) + negatives
    strata = [
        ",".join(str(i) for i in sorted({label for label, _ in boxes[image]}))
        if image in boxes
        else NEGATIVE_STRATUM
        for image in images
    ]
    test_mask, seed = split_and_record(
        version=version,
        image_ids=[str(image.pk) for image in images],
        strata=strata,
        test_images=[image.test_image for image in images],
    )
    config = DetectConfig(
        input_size=settings.VF_DETECTION_INPUT_SIZE,
        epochs=settings.VF_DETECTION_EPOCHS,
        time_budget_s=fit_budget(version),
        seed=seed,
        num_threads=settings.VF_TRAIN_THREADS or None,
        pretrained=settings.VF_TRAIN_PRETRAINED != "none",
    )
    label_list = [{"id": str(label.pk), "name": label.answer_name} for label in labels]
    # Local files for ml to decode (a remote storage's images are streamed to a spool folder).
    with tempfile.TemporaryDirectory(prefix="vf-images-") as spool_dir:
        sources = image_sources([image.file for image in images], spool_dir)
        examples = [
            DetectionExample(
                image=source,
                boxes=[box for _, box in boxes.get(image, [])],
                labels=[label for label, _ in boxes.get(image, [])],
                size=(image.img_width, image.img_height),
            )
            for image, source in zip(images, sources, strict=True)
        ]
        result = fit_detector(
            examples, test_mask, label_list, config=config, out_dir=out_dir, progress=progress
        )
    result.metrics["serving"] = _export(out_dir)
    return TrainOutcome(
        metrics=result.metrics,
        warnings=list(result.warnings),
        evaluation=_evaluation(result.predictions, images, labels),
    )


def _export(out_dir: str) -> dict:
    """The served model.onnx (ml/detection/export.py): the version is TRAINED either way, served by
    torch when the export fails."""
    from ml.detection.export import export_detector

    try:
        return export_detector(out_dir)
    except Exception as exc:
        logger.exception("could not export the detector to ONNX")
        return {"runtime": "torch", "precision": "fp32", "reason": f"ONNX export failed: {exc}"[:500]}


TRAINER = Trainer(validate=task_validate_trainable, train=train)
