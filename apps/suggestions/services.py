"""The labelling loop's writes: the pool, scoring runs (active learning) and pre-labels.

- ``pool_image_upload``: an image uploaded to a task joins its pool until it gets one of the task's
  labels (``training-image/?pool=<task id>`` lists the pool; apps/images/selectors.py says which
  images are in it).
- ``suggestion_run_start`` queues a scoring of the pool by the task's deployed version (on demand;
  and after each training that deployed a version, through apps/training's ``version_trained``);
  the job calls ``suggestion_run_execute``, which scores every pool image in one forward pass per
  batch (probabilities or boxes, and descriptors), ranks them by uncertainty and diversity
  (``ml.active``) and keeps the first ``SUGGESTIONS_KEPT`` with the model's guess.
- ``prelabel_guess`` is the deployed model's answer for one image; ``prelabel_accept`` stores it,
  or a person's correction, as real labels or boxes through the images' and detection's services.
  Nothing is stored before a person accepts.
"""

from __future__ import annotations

import logging
from functools import partial

import numpy as np
from django.db import transaction
from django.utils import timezone

from apps.core.broker import broker_reachable, job_enqueue
from apps.core.errors import ConflictError, DomainError, NotFoundError, ServiceUnavailableError
from apps.core.kinds import KINDS
from apps.detection import services as detection_services
from apps.detection.models import DetectionLabel
from apps.images import services as image_services
from apps.images.errors import MSG_IMAGE_NOT_FOUND
from apps.images.models import ImageLabel, TrainingImage
from apps.images.storage import read_bytes
from apps.inference.cache import TORCH_LOCK, predictor_get
from apps.inference.services import prediction_version_get
from apps.labels.models import Label
from apps.tasks.models import Task
from apps.training.models import ModelVersion
from ml import active

from .job_names import SCORE_JOB
from .models import PoolImage, Suggestion, SuggestionRun
from .selectors import pool_images, suggestion_run_active
from .signals import suggestions_ready

logger = logging.getLogger(__name__)

MSG_NO_SUGGESTIONS_FOR_REGRESSION = (
    "Suggestions rank images by how unsure a classifier or detector is; a regression task has none."
)
MSG_QUEUE_DOWN = "The job queue is unreachable, so the scoring cannot start; nothing was queued."
MSG_LABEL_NOT_IN_TASK = "Label {label_id} is not a label of this task."
MSG_ONE_LABEL = "A multi_class image takes exactly one label of the task."
MSG_NO_GUESS = "The model found none of the task's labels on this image; pick the labels to store."
MSG_IMAGE_UNREADABLE = "The image's file cannot be read."
MSG_ENQUEUE_FAILED = "The scoring job could not be queued."

SUGGESTIONS_KEPT = 200  # ranked suggestions stored per run: many labelling sessions' worth
BATCH = 16  # images per forward pass while scoring (bounded memory on a 512 px store)


# --------------------------------------------------------------------------- the pool


@transaction.atomic
def pool_image_upload(*, task: Task, data: bytes, test_image: bool = False) -> TrainingImage:
    """Store an uploaded image (same checks as ``training-image/``) in the task's pool."""
    image = image_services.training_image_ingest(workspace=task.workspace, data=data, test_image=test_image)
    PoolImage.objects.get_or_create(task=task, image=image)
    return image


# --------------------------------------------------------------------------- predicting


def _check_kind(task: Task) -> None:
    if task.type == Task.Type.REGRESSION:
        raise ConflictError(MSG_NO_SUGGESTIONS_FOR_REGRESSION)


def _deployed_version(task: Task, number: int | None = None) -> ModelVersion:
    """The version to score with. Nothing deployed is the task's state, not a malformed request:
    a 409 here (classify keeps its 400, which shared/API.md names)."""
    try:
        return prediction_version_get(task=task, version=number)
    except DomainError as exc:
        raise ConflictError(exc.message) from None


def _guess(task: Task, prediction: dict, predictor, names: dict) -> dict:
    """The model's answer for one image as the suggestions endpoints show it: ``labels`` (and
    ``best_label``, ``best_labels`` for multi_label) as classify answers, or ``objects``."""
    answer = KINDS.get(task.type).predictor.answer(prediction, predictor, names, None)
    if task.type == Task.Type.DETECTION:
        return {"objects": answer["_objects"]}
    return answer


def _uncertainty(task: Task, predictions: list[dict], predictor) -> np.ndarray:
    if task.type == Task.Type.DETECTION:
        return active.uncertainty_boxes([[o["prob"] for o in p["objects"]] for p in predictions])
    probs = np.asarray([p["probs"] for p in predictions], dtype=np.float64)
    if task.type == Task.Type.MULTI_LABEL:
        thresholds = getattr(predictor, "thresholds", None)
        return active.uncertainty_multi_label(probs, np.asarray(thresholds) if thresholds else None)
    return active.uncertainty_margin(probs)


def _predict(task: Task, predictor, images: list[TrainingImage]) -> tuple[list, list[dict], list]:
    """One forward pass over ``images``: the images that could be read, their predictions and their
    descriptors (the version's penultimate features for recognition; a coarse colour layout for
    detection, whose predictor has no descriptor)."""
    kept, inputs, coarse = [], [], []
    for image in images:
        data = read_bytes(image.file, who="suggestions")
        if data is None:
            continue
        try:
            inputs.append(predictor.preprocess(data))
        except Exception:  # noqa: BLE001 - an unreadable picture is skipped, the others scored
            logger.warning("suggestions: image %s cannot be decoded; skipped", image.pk)
            continue
        kept.append(image)
        if task.type == Task.Type.DETECTION:
            coarse.append(active.coarse_descriptor(data))
    if not kept:
        return [], [], []
    with TORCH_LOCK:
        predictions = predictor.predict_batch(inputs, descriptor=task.type != Task.Type.DETECTION)
    descriptors = coarse if task.type == Task.Type.DETECTION else [p["descriptor"] for p in predictions]
    return kept, predictions, descriptors


def _deployed(task: Task, number: int | None = None) -> tuple[ModelVersion, object]:
    version = _deployed_version(task, number)
    return version, predictor_get(version)


def prelabel_guess(*, task: Task, image: TrainingImage) -> dict:
    """The deployed version's answer for ``image``: ``{version, labels, best_label[, best_labels]}``
    or ``{version, objects}``. Stores nothing."""
    _check_kind(task)
    version, predictor = _deployed(task)
    kept, predictions, _ = _predict(task, predictor, [image])
    if not kept:
        raise DomainError(MSG_IMAGE_UNREADABLE)
    names = KINDS.get(task.type).predictor.names(labels=predictor.labels)
    return {"version": version.version, **_guess(task, predictions[0], predictor, names)}


# --------------------------------------------------------------------------- accepting


def _task_label_ids(task: Task) -> set[str]:
    if task.type == Task.Type.DETECTION:
        return {str(pk) for pk in DetectionLabel.objects.filter(tasks=task).values_list("pk", flat=True)}
    return {str(pk) for pk in Label.objects.filter(tasks=task).values_list("pk", flat=True)}


def _accept_labels(task: Task, image: TrainingImage, label_ids: list[str] | None) -> dict:
    if label_ids is None:
        guess = prelabel_guess(task=task, image=image)
        if task.type == Task.Type.MULTI_LABEL:
            label_ids = [item["id"] for item in guess.get("best_labels", [])]
        else:
            label_ids = [guess["best_label"]["id"]] if guess.get("best_label") else []
        if not label_ids:
            raise DomainError(MSG_NO_GUESS)
    label_ids = list(dict.fromkeys(str(pk) for pk in label_ids))
    allowed = _task_label_ids(task)
    for label_id in label_ids:
        if label_id not in allowed:
            raise DomainError(MSG_LABEL_NOT_IN_TASK.format(label_id=label_id))
    if task.type == Task.Type.MULTI_CLASS and len(label_ids) != 1:
        raise DomainError(MSG_ONE_LABEL)
    with transaction.atomic():
        # The task's labels become exactly the accepted ones; labels of other tasks stay.
        present = {
            str(pk)
            for pk in ImageLabel.objects.filter(image=image, label__tasks=task).values_list(
                "label_id", flat=True
            )
        }
        for label_id in sorted(present - set(label_ids)):
            image_services.training_image_remove_label(image=image, label_id=label_id)
        for label_id in label_ids:
            if label_id not in present:
                image_services.training_image_add_label(image=image, label_id=label_id)
    names = {str(pk): name for pk, name in Label.objects.filter(pk__in=label_ids).values_list("pk", "name")}
    return {"image_id": image.pk, "labels": [{"id": pk, "name": names[pk]} for pk in label_ids]}


def _accept_objects(task: Task, image: TrainingImage, objects: list[dict] | None) -> dict:
    if objects is None:
        objects = prelabel_guess(task=task, image=image)["objects"]
    allowed = _task_label_ids(task)
    for found in objects:
        if str(found["id"]) not in allowed:
            raise DomainError(MSG_LABEL_NOT_IN_TASK.format(label_id=found["id"]))
    labels = {str(label.pk): label for label in DetectionLabel.objects.filter(tasks=task)}
    stored = []
    with transaction.atomic():
        for found in objects:
            obj = detection_services.detection_object_create(
                label=labels[str(found["id"])], image=image, data=found["bound_box"]
            )
            stored.append({"id": obj.pk, "detection_label": obj.detection_label_id, "bound_box": obj.data})
        if not objects:  # accepting "nothing here" marks the image as the task's background
            detection_services.detection_task_add_negative_image(task=task, image=image)
    return {"image_id": image.pk, "objects": stored}


def prelabel_accept(
    *, task: Task, image: TrainingImage, label_ids: list | None = None, objects: list[dict] | None = None
) -> dict:
    """Store the deployed model's guess for ``image`` (nothing given), or the person's choice
    (``label_ids``; ``objects`` of ``{id, bound_box}`` for detection), through the same services as
    manual labelling. A multi_class image's label of the task is replaced; a detection image gets
    the boxes added (an empty list marks it negative). Validated before anything is stored."""
    _check_kind(task)
    if image.workspace_id != task.workspace_id:
        raise NotFoundError(MSG_IMAGE_NOT_FOUND)
    if task.type == Task.Type.DETECTION:
        return _accept_objects(task, image, objects)
    return _accept_labels(task, image, label_ids)


# --------------------------------------------------------------------------- scoring runs


def _enqueue(run_id) -> None:
    try:
        job_enqueue(SCORE_JOB, str(run_id))
    except Exception:
        logger.exception("could not enqueue scoring run %s", run_id)
        suggestion_run_fail(run_id=run_id, reason=MSG_ENQUEUE_FAILED)


def suggestion_run_start(*, task: Task) -> SuggestionRun:
    """Queue a scoring of the task's pool by its deployed version and return the run; while a run
    of the task is queued or running, that run (one scoring at a time per task)."""
    _check_kind(task)
    version = _deployed_version(task)  # 409 when nothing is deployed
    if not broker_reachable():
        raise ServiceUnavailableError(MSG_QUEUE_DOWN)
    with transaction.atomic():
        Task.objects.select_for_update().filter(pk=task.pk).first()
        running = suggestion_run_active(task=task)
        if running is not None:
            return running
        run = SuggestionRun.objects.create(workspace_id=task.workspace_id, task=task, version=version.version)
        transaction.on_commit(partial(_enqueue, run.pk))
    return run


def suggestion_run_after_training(*, version: ModelVersion) -> SuggestionRun | None:
    """Score the pool again when a newly trained version is the deployed one (and the task has a
    pool); a failure is logged, never raised into the training that called it."""
    task = Task.objects.get(pk=version.task_id)
    if task.type == Task.Type.REGRESSION or task.production_version != version.version:
        return None
    if not pool_images(task=task).exists():
        return None
    try:
        return suggestion_run_start(task=task)
    except DomainError:
        logger.exception("could not start scoring the pool of task %s", task.pk)
        return None


def suggestion_run_fail(*, run_id, reason: str) -> None:
    SuggestionRun.objects.filter(pk=run_id).exclude(status=SuggestionRun.Status.DONE).update(
        status=SuggestionRun.Status.FAILED, error=reason, finished=timezone.now()
    )


def _progress(run: SuggestionRun, scored: int, total: int) -> None:
    run.scored, run.total = scored, total
    run.progress = round(100.0 * scored / total, 1) if total else 100.0
    SuggestionRun.objects.filter(pk=run.pk).update(scored=scored, total=total, progress=run.progress)


def suggestion_run_execute(*, run_id) -> SuggestionRun | None:
    """Score the run's pool (progress written per batch), rank it and store its suggestions.

    Safe to run twice: a finished run is left as it is. The pool is read when the run starts;
    images labelled meanwhile are left out when the suggestions are served.
    """
    run = SuggestionRun.objects.select_related("task__workspace").filter(pk=run_id).first()
    if run is None or run.status in (SuggestionRun.Status.DONE, SuggestionRun.Status.FAILED):
        return run
    task = run.task
    SuggestionRun.objects.filter(pk=run.pk).update(status=SuggestionRun.Status.RUNNING)
    _, predictor = _deployed(task, run.version)
    names = KINDS.get(task.type).predictor.names(labels=predictor.labels)
    ids = list(pool_images(task=task).values_list("pk", flat=True))
    _progress(run, 0, len(ids))
    images, guesses, uncertainty, descriptors = [], [], [], []
    for start in range(0, len(ids), BATCH):
        chunk = list(TrainingImage.objects.filter(pk__in=ids[start : start + BATCH]).only("id", "file"))
        kept, predictions, feats = _predict(task, predictor, chunk)
        if kept:
            images.extend(kept)
            guesses.extend(_guess(task, p, predictor, names) for p in predictions)
            uncertainty.extend(_uncertainty(task, predictions, predictor).tolist())
            descriptors.extend(feats)
        _progress(run, min(start + BATCH, len(ids)), len(ids))
    order = (
        active.select_diverse(np.asarray(uncertainty), np.asarray(descriptors), SUGGESTIONS_KEPT)
        if images
        else []
    )
    with transaction.atomic():
        Suggestion.objects.bulk_create(
            Suggestion(
                run=run, image=images[i], rank=rank, uncertainty=round(uncertainty[i], 5), guess=guesses[i]
            )
            for rank, i in enumerate(order)
        )
        run.status, run.finished, run.progress = SuggestionRun.Status.DONE, timezone.now(), 100.0
        run.save(update_fields=["status", "finished", "progress", "scored", "total"])
        transaction.on_commit(
            partial(suggestions_ready.send_robust, sender=SuggestionRun, run=run, count=len(order))
        )
    logger.info("scored the pool of task %s: %d image(s), %d suggestion(s)", task.pk, len(ids), len(order))
    return run
