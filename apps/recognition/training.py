"""Image recognition (multi_class, multi_label, regression) as a kind of training.

What is particular to it: which labels and images a task trains on, the checks before training,
ml's recipe, and the per-image evaluation. The lifecycle around it (queue, claim, heartbeat,
artifacts, deploy, sweep, e-mails) is apps/training/services.py; the split and the fit's budget
are apps/training/fitting.py, shared with detection.
"""

from __future__ import annotations

import logging
import tempfile

from django.conf import settings

from apps.core.errors import DomainError
from apps.core.kinds import Trainer, TrainOutcome
from apps.tasks.models import Task
from apps.training.fitting import fit_budget, image_sources, split_and_record
from apps.training.models import ModelVersion

from .selectors import (
    TrainingExample,
    label_image_counts,
    task_training_examples,
    task_training_labels,
)

logger = logging.getLogger(__name__)

MSG_TOO_FEW_LABELS = "A {type} task needs at least 2 labels to train; it has {count}."
MSG_NO_VALUE_LABEL = "A regression task needs a value label to train."
MSG_TOO_FEW_IMAGES = "Each label needs at least {minimum} training images; too few on: {labels}."
MSG_TOO_FEW_VALUES = "A regression task needs at least {minimum} images with a value; {labels}."
MSG_NO_IMAGES = "No training images could be read."

REGRESSION_BINS = 5  # regression targets are stratified by quantile bins of the value


def _label_list(labels, counts) -> str:
    return ", ".join(f"{label.name} ({counts[label.id]})" for label in labels)


def task_validate_trainable(*, task: Task) -> None:
    """Raise DomainError naming what is missing when the task cannot train yet."""
    minimum = settings.VF_MIN_IMAGES_PER_LABEL
    outputs, negative = task_training_labels(task=task)
    if task.type == Task.Type.REGRESSION:
        if not outputs:
            raise DomainError(MSG_NO_VALUE_LABEL)
        counts = label_image_counts(task=task, labels=outputs[:1])
        if counts[outputs[0].id] < minimum:
            raise DomainError(
                MSG_TOO_FEW_VALUES.format(minimum=minimum, labels=_label_list(outputs[:1], counts))
            )
        return
    if len(outputs) < 2:
        raise DomainError(MSG_TOO_FEW_LABELS.format(type=task.type, count=len(outputs)))
    counts = label_image_counts(task=task, labels=outputs)
    short = [label for label in outputs if counts[label.id] < minimum]
    if short:
        raise DomainError(MSG_TOO_FEW_IMAGES.format(minimum=minimum, labels=_label_list(short, counts)))


def _examples_and_targets(task: Task, outputs, negative):
    """(examples, targets, strata, warnings) in the terms of ml's recipe for the task's type."""
    warnings: list[str] = []
    if task.type == Task.Type.REGRESSION:
        if len(outputs) > 1:
            warnings.append(
                f"The task has {len(outputs)} value labels; the model learns the first, {outputs[0].name}."
            )
        examples = [
            e
            for e in task_training_examples(task=task, outputs=outputs[:1], negative=[])
            if e.value is not None
        ]
        targets = [float(e.value) for e in examples]
        # Quantile bins of the value, so both sides span the whole range.
        order = sorted(range(len(examples)), key=lambda i: (targets[i], examples[i].image_id))
        bins = max(1, min(REGRESSION_BINS, len(examples) // 5))
        strata = [0] * len(examples)
        for rank, i in enumerate(order):
            strata[i] = rank * bins // max(len(examples), 1)
        return examples, targets, strata, warnings
    index = {label.id: i for i, label in enumerate(outputs)}
    examples = task_training_examples(task=task, outputs=outputs, negative=negative)
    if task.type == Task.Type.MULTI_CLASS:
        ambiguous = [e for e in examples if len(e.label_ids) > 1]
        if ambiguous:
            warnings.append(
                f"{len(ambiguous)} images carry more than one category of this task and were left out."
            )
        examples = [e for e in examples if len(e.label_ids) == 1]
        return (
            examples,
            [index[e.label_ids[0]] for e in examples],
            [str(e.label_ids[0]) for e in examples],
            warnings,
        )
    targets = [[index[label_id] for label_id in e.label_ids] for e in examples]
    strata = [",".join(str(label_id) for label_id in e.label_ids) for e in examples]
    return examples, targets, strata, warnings


def _evaluation(
    task_type: str, predictions: list[dict], examples: list[TrainingExample], outputs
) -> list[dict]:
    """Test-side predictions per image, what the model gets wrong first."""
    labels = [{"id": str(label.id), "name": label.name} for label in outputs]
    records = []
    for p in predictions:
        example = examples[p["index"]]
        if task_type == Task.Type.REGRESSION:
            true, predicted = p["true"], p["predicted"]
            error = abs(predicted - true) if true is not None and predicted is not None else None
            records.append(
                {
                    "image_id": example.image_id,
                    "true_labels": [{**labels[0], "value": true}],
                    "predicted_labels": [{**labels[0], "value": predicted}],
                    "error": error,
                    "correct": None,
                }
            )
            continue
        probs = p["probs"] or []
        true = [p["true"]] if task_type == Task.Type.MULTI_CLASS else list(p["true"])
        chosen = [p["predicted"]] if task_type == Task.Type.MULTI_CLASS else list(p["predicted"])
        records.append(
            {
                "image_id": example.image_id,
                "true_labels": [labels[j] for j in true],
                "predicted_labels": [{**labels[j], "prob": probs[j]} for j in chosen],
                "labels": sorted(
                    ({**labels[j], "prob": prob} for j, prob in enumerate(probs)),
                    key=lambda r: -(r["prob"] or 0),
                ),
                "correct": sorted(true) == sorted(chosen),
            }
        )
    records.sort(key=lambda r: (r["correct"] is not False, -(r.get("error") or 0.0), r["image_id"]))
    return records


def train(*, version: ModelVersion, out_dir: str, progress) -> TrainOutcome:
    """Fit a claimed image-recognition version into ``out_dir``.

    Split the task's images 80/20 (stratified, seeded by task and version, ``test_image`` always
    test) and record it on the version; fit with ml.recognition.recipe.fit, reporting ``progress``.
    Raises on failure: the lifecycle fails the version.
    """
    from ml.config import TrainConfig
    from ml.recognition.recipe import fit

    task = version.task
    outputs, negative = task_training_labels(task=task)
    examples, targets, strata, warnings = _examples_and_targets(task, outputs, negative)
    if not examples:
        raise ValueError(MSG_NO_IMAGES)
    test_mask, seed = split_and_record(
        version=version,
        image_ids=[e.image_id for e in examples],
        strata=strata,
        test_images=[e.test_image for e in examples],
    )
    config = TrainConfig(
        architecture=task.architecture or settings.VF_TRAIN_ARCHITECTURE,
        input_size=task.input_size or None,
        epochs=settings.VF_TRAIN_EPOCHS,
        time_budget_s=fit_budget(version),
        pretrained=settings.VF_TRAIN_PRETRAINED,
        seed=seed,
        num_threads=settings.VF_TRAIN_THREADS or None,
        final_refit=task.final_refit,
        int8=settings.VF_INT8,
        int8_min_agreement=settings.VF_INT8_MIN_AGREEMENT,
        int8_max_prob_diff=settings.VF_INT8_MAX_PROB_DIFF,
    )
    labels = [
        {"id": str(label.id), "name": label.name}
        for label in outputs[: 1 if task.type == "regression" else None]
    ]
    with tempfile.TemporaryDirectory(prefix="vf-images-") as spool_dir:
        sources = image_sources([e.file for e in examples], spool_dir)
        items = list(zip(sources, targets, strict=True))
        result = fit(items, test_mask, labels, task.type, config=config, out_dir=out_dir, progress=progress)
    return TrainOutcome(
        metrics=result.metrics,
        warnings=warnings + list(result.warnings),
        evaluation=_evaluation(task.type, result.predictions, examples, outputs),
    )


TRAINER = Trainer(validate=task_validate_trainable, train=train)
