"""Similarity's writes and searches: descriptor runs, "images like this one", upload warnings.

- ``descriptor_run_start`` queues the computation of a descriptor for every image of the task's
  workspace by the task's deployed version (on demand; and after each training that deployed a
  version, through apps/training's ``version_trained``). The job calls ``descriptor_run_execute``,
  which writes them in batches with its progress; when it is DONE the task's searches use that
  version and the descriptors of the task's other versions are dropped.
- ``similar_images`` answers records (an image of the workspace by ``_id``, or ``_url`` /
  ``_base64`` read as classify reads them) with their ``k`` nearest images by that version's
  descriptors (apps/similarity/cache.py keeps the index).
- ``upload_near_duplicates`` describes an uploaded image with the workspace's latest finished
  index, stores the descriptor (so later searches find it) and names the images within
  ``VF_SIMILARITY_DUPLICATE_DISTANCE``: a warning, never a refusal.
"""

from __future__ import annotations

import logging
from functools import partial

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.core.broker import broker_reachable, job_enqueue
from apps.core.errors import ConflictError, DomainError, NotFoundError, ServiceUnavailableError
from apps.images.models import TrainingImage
from apps.images.storage import read_bytes
from apps.inference.cache import TORCH_LOCK, predictor_get
from apps.inference.services import prediction_version_get, task_predict
from apps.tasks.models import Task
from apps.training.models import ModelVersion
from apps.training.selectors import model_version_serving_pending
from ml import similarity

from . import cache, selectors
from .job_names import DESCRIBE_JOB
from .models import Descriptor, DescriptorRun

logger = logging.getLogger(__name__)

MSG_DETECTION = "Similarity search uses a recognition task's descriptors; a detection task has none."
MSG_NO_INDEX = (
    "The task has no descriptors yet: deploy a trained version and compute them (similar/refresh/)."
)
MSG_INDEX_RUNNING = (
    "The task's descriptors are being computed ({progress:.1f} %); try again when they are done."
)
MSG_QUEUE_DOWN = "The job queue is unreachable, so the descriptors cannot be computed; nothing was queued."
MSG_ENQUEUE_FAILED = "The descriptor job could not be queued."
MSG_NO_RECORDS = "Send at least one record (a list of objects with _id, _url or _base64)."
MSG_TOO_MANY_RECORDS = "At most {limit} records per request; got {count}."
MSG_RECORD_NO_IMAGE = "A record needs one of _id, _url or _base64."
MSG_IMAGE_NOT_FOUND = "No image {image_id} in this workspace."
MSG_IMAGE_UNREADABLE = "The image's file cannot be read."

BATCH = 32  # images per forward pass while describing (bounded memory at 512 px)
SLACK = 8  # extra neighbours asked of the index: the query's own image and rows deleted since


def _vector_bytes(vector) -> bytes:
    return np.asarray(vector, dtype=np.float16).tobytes()


def _check_kind(task: Task) -> None:
    if task.type == Task.Type.DETECTION:
        raise ConflictError(MSG_DETECTION)


# --------------------------------------------------------------------------- descriptor runs


def _enqueue(run_id) -> None:
    try:
        job_enqueue(DESCRIBE_JOB, str(run_id))
    except Exception:
        logger.exception("could not enqueue descriptor run %s", run_id)
        descriptor_run_fail(run_id=run_id, reason=MSG_ENQUEUE_FAILED)


def descriptor_run_start(*, task: Task) -> DescriptorRun:
    """Queue the descriptors of every image of the task's workspace by its deployed version and
    return the run; while a run of the task is queued or running, that run (one at a time)."""
    _check_kind(task)
    try:
        version = prediction_version_get(task=task, version=None)
    except DomainError as exc:  # nothing deployed: the task's state, not a malformed request
        raise ConflictError(exc.message) from None
    if not broker_reachable():
        raise ServiceUnavailableError(MSG_QUEUE_DOWN)
    with transaction.atomic():
        Task.objects.select_for_update().filter(pk=task.pk).first()
        running = selectors.descriptor_run_active(task=task)
        if running is not None:
            return running
        run = DescriptorRun.objects.create(workspace_id=task.workspace_id, task=task, version=version)
        transaction.on_commit(partial(_enqueue, run.pk))
    return run


def descriptor_run_after_training(*, version: ModelVersion) -> DescriptorRun | None:
    """Describe the workspace's images when a newly trained version is the deployed one; a failure
    is logged, never raised into the training that called it.

    While the version's INT8 attempt has not ended, nothing starts: the attempt may switch the
    served file, and the descriptors must come from the file that answers the queries. The end of
    the attempt (``descriptor_run_after_serving_settled``) starts the run then.
    """
    if model_version_serving_pending(version):
        return None
    return _describe_if_deployed(version)


def descriptor_run_after_serving_settled(*, version: ModelVersion) -> DescriptorRun | None:
    """The version's INT8 attempt ended: describe the images with the file it now serves. Rows a
    manual refresh wrote meanwhile came from the FP32 file; after a switch to INT8 they go."""
    if version.served_file:
        Descriptor.objects.filter(version_id=version.pk).delete()
    return _describe_if_deployed(version)


def _describe_if_deployed(version: ModelVersion) -> DescriptorRun | None:
    task = Task.objects.get(pk=version.task_id)
    if task.type == Task.Type.DETECTION or task.production_version != version.version:
        return None
    try:
        return descriptor_run_start(task=task)
    except DomainError:
        logger.exception("could not start the descriptors of task %s", task.pk)
        return None


def descriptor_run_fail(*, run_id, reason: str) -> None:
    DescriptorRun.objects.filter(pk=run_id).exclude(status=DescriptorRun.Status.DONE).update(
        status=DescriptorRun.Status.FAILED, error=reason, finished=timezone.now()
    )


def _describe(predictor, images: list) -> tuple[list, list]:
    """One forward pass over ``images``: those that could be read, and their descriptors."""
    kept, inputs = [], []
    for image in images:
        data = read_bytes(image.file, who="similarity")
        if data is None:
            continue
        try:
            inputs.append(predictor.preprocess(data))
        except Exception:  # noqa: BLE001 - an unreadable picture is skipped, the others described
            logger.warning("similarity: image %s cannot be decoded; skipped", image.pk)
            continue
        kept.append(image)
    if not kept:
        return [], []
    with TORCH_LOCK:
        predictions = predictor.predict_batch(inputs, descriptor=True)
    return kept, [p["descriptor"] for p in predictions]


def _store(version_id, images: list, vectors: list) -> None:
    Descriptor.objects.bulk_create(
        [
            Descriptor(version_id=version_id, image=i, vector=_vector_bytes(v))
            for i, v in zip(images, vectors, strict=True)
        ],
        ignore_conflicts=True,  # a run resumed after a lost worker meets its own rows
    )


def _progress(run: DescriptorRun, done: int, total: int) -> None:
    run.done, run.total = done, total
    run.progress = round(min(100.0, 100.0 * done / total), 1) if total else 100.0
    DescriptorRun.objects.filter(pk=run.pk).update(done=done, total=total, progress=run.progress)


def _pending(run: DescriptorRun, images, skipped: set) -> list:
    """Of ``images``, those the version has no descriptor of yet (and not skipped as unreadable)."""
    have = set(
        Descriptor.objects.filter(version_id=run.version_id, image_id__in=[i.pk for i in images]).values_list(
            "image_id", flat=True
        )
    )
    return [i for i in images if i.pk not in have and i.pk not in skipped]


def descriptor_run_execute(*, run_id) -> DescriptorRun | None:
    """Describe every image of the run's workspace (progress written per batch), then mark the run
    DONE and drop the descriptors of the task's other versions.

    Walks the images in id order (a keyset, so each batch is one indexed query), then once more
    for images uploaded behind the walk meanwhile. Safe to run twice: a finished run is left as it
    is, and images already described are skipped.
    """
    run = DescriptorRun.objects.select_related("task", "version").filter(pk=run_id).first()
    if run is None or run.status in (DescriptorRun.Status.DONE, DescriptorRun.Status.FAILED):
        return run
    DescriptorRun.objects.filter(pk=run.pk).update(status=DescriptorRun.Status.RUNNING)
    version = run.version
    version.task = run.task  # the model cache loads a version by its task's kind
    predictor = predictor_get(version)
    images = TrainingImage.objects.filter(workspace_id=run.workspace_id).only("id", "file").order_by("pk")
    total = images.count()
    done = selectors.descriptor_count(version_id=run.version_id)
    _progress(run, done, total)
    skipped: set = set()
    last = None
    while True:
        page = list((images.filter(pk__gt=last) if last else images)[:BATCH])
        if not page:
            break
        last = page[-1].pk
        todo = _pending(run, page, skipped)
        kept, vectors = _describe(predictor, todo) if todo else ([], [])
        skipped.update(i.pk for i in todo if i not in kept)
        _store(run.version_id, kept, vectors)
        done += len(kept)
        _progress(run, done, max(total, done))
    late = images.exclude(pk__in=list(skipped)).exclude(
        pk__in=Descriptor.objects.filter(version_id=run.version_id).values("image_id")
    )
    for _ in range(10):  # bounded: later uploads are described on upload
        page = list(late[:BATCH])
        if not page:
            break
        kept, vectors = _describe(predictor, page)
        skipped.update(i.pk for i in page if i not in kept)
        _store(run.version_id, kept, vectors)
    with transaction.atomic():
        Descriptor.objects.filter(version__task_id=run.task_id).exclude(version_id=run.version_id).delete()
        count = selectors.descriptor_count(version_id=run.version_id)
        run.status, run.finished = DescriptorRun.Status.DONE, timezone.now()
        run.done, run.total, run.progress = count, count + len(skipped), 100.0
        run.save(update_fields=["status", "finished", "progress", "done", "total"])
    logger.info("described %d image(s) of task %s (%d unreadable)", count, run.task_id, len(skipped))
    if count >= similarity.EXACT_BELOW:
        # Build and store the approximate index here, so no web process pays for the build.
        try:
            cache.index_get(run.version_id)
        except Exception:  # noqa: BLE001 - the web processes build it themselves then
            logger.exception("could not build the similarity index of version %s", run.version_id)
    return run


# --------------------------------------------------------------------------- searches


def _index_version(task: Task) -> ModelVersion:
    """The version whose descriptors answer the task's searches: its latest finished run's."""
    _check_kind(task)
    run = selectors.descriptor_run_done(task=task)
    if run is None:
        active = selectors.descriptor_run_active(task=task)
        if active is not None:
            raise ConflictError(MSG_INDEX_RUNNING.format(progress=active.progress))
        raise ConflictError(MSG_NO_INDEX)
    run.version.task = task
    return run.version


def _record_ids(task: Task, records: list) -> dict:
    """The workspace's images named by ``_id`` records; a 404 (before any work) for one that is
    not an image of this workspace."""
    wanted = {str(r["_id"]) for r in records if "_id" in r}
    found = {
        str(pk): pk
        for pk in TrainingImage.objects.filter(workspace_id=task.workspace_id, pk__in=wanted).values_list(
            "pk", flat=True
        )
    }
    for image_id in sorted(wanted - set(found)):
        raise NotFoundError(MSG_IMAGE_NOT_FOUND.format(image_id=image_id))
    return found


def _query_vectors(task: Task, version: ModelVersion, records: list, found: dict) -> list:
    """Per record: ``(vector or None, status)``; ``_id`` records use the stored descriptor (or
    describe the image now), the others go through classify's reading and the version's model."""
    stored = selectors.descriptors_of(version_id=version.pk, image_ids=found.values())
    out: list = [None] * len(records)
    for i, record in enumerate(records):
        if "_id" not in record:
            continue
        pk = found[str(record["_id"])]
        if pk in stored:
            out[i] = (stored[pk], None)
            continue
        image = TrainingImage.objects.only("id", "file").get(pk=pk)
        kept, vectors = _describe(predictor_get(version), [image])
        out[i] = (np.asarray(vectors[0], dtype=np.float32), None) if kept else (None, MSG_IMAGE_UNREADABLE)
    others = [i for i, record in enumerate(records) if "_id" not in record]
    if others:
        answers = task_predict(
            task=task, records=[records[i] for i in others], version=version.version, descriptor=True
        )["records"]
        for i, answer in zip(others, answers, strict=True):
            if answer["_status"]["code"] == 200:
                out[i] = (np.asarray(answer["_descriptor"], dtype=np.float32), None)
            else:
                out[i] = (None, answer["_status"])
    return out


def similar_images(*, task: Task, records: list, k: int) -> dict:
    """The ``k`` images of the workspace nearest to each record by the task's descriptors.

    A record is ``{"_id": image id}`` or ``{"_url": ...}`` / ``{"_base64": ...}``; its other keys
    are echoed. Each answer has ``_status`` and ``_similar``: ``{"image": TrainingImage, "distance":
    cosine distance}`` nearest first, the record's own image left out. 409 when the task has no
    finished descriptors, 404 for an ``_id`` that is not an image of the workspace.
    """
    limit = settings.VF_CLASSIFY_MAX_RECORDS
    if not records:
        raise DomainError(MSG_NO_RECORDS)
    if len(records) > limit:
        raise DomainError(MSG_TOO_MANY_RECORDS.format(limit=limit, count=len(records)))
    for record in records:
        if not any(key in record for key in ("_id", "_url", "_base64")):
            raise DomainError(MSG_RECORD_NO_IMAGE)
    version = _index_version(task)
    found = _record_ids(task, records)
    queries = _query_vectors(task, version, records, found)
    entry = cache.index_get(version.pk)
    good = [i for i, (vector, _) in enumerate(queries) if vector is not None]
    hits = entry.search(np.stack([queries[i][0] for i in good]), k + SLACK) if good else []
    neighbours = dict(zip(good, hits, strict=True))
    seen = {image_id for row in hits for image_id, _ in row}
    images = {
        image.pk: image
        for image in TrainingImage.objects.filter(workspace_id=task.workspace_id, pk__in=seen).only(
            "id", "file", "thumbnail", "img_width", "img_height"
        )
    }
    answers = []
    for i, record in enumerate(records):
        answer = {key: value for key, value in record.items() if key != "_base64"}
        vector, problem = queries[i]
        if vector is None:
            answer["_status"] = problem if isinstance(problem, dict) else {"code": 400, "text": problem}
            answers.append(answer)
            continue
        own = found.get(str(record["_id"])) if "_id" in record else None
        rows = [(images[pk], d) for pk, d in neighbours[i] if pk != own and pk in images][:k]
        answer["_status"] = {"code": 200, "text": "OK"}
        answer["_similar"] = [{"image": image, "distance": round(d, 6)} for image, d in rows]
        answers.append(answer)
    return {"task_id": str(task.pk), "version": version.version, "records": answers}


def upload_near_duplicates(*, image: TrainingImage, data: bytes) -> list[dict]:
    """Near-duplicates of a just-uploaded ``image`` by the workspace's latest finished index:
    ``[{"code", "text", "image_id", "distance"}]`` (empty without an index). The upload's
    descriptor is stored too, so later searches find it. Never raises: a check that cannot run is
    logged and the upload answered without it."""
    run = selectors.descriptor_run_for_workspace(workspace_id=image.workspace_id)
    if run is None:
        return []
    try:
        version = run.version
        predictor = predictor_get(version)
        tensor = predictor.preprocess(data)
        with TORCH_LOCK:
            vector = np.asarray(predictor.predict_batch([tensor], descriptor=True)[0]["descriptor"])
        Descriptor.objects.get_or_create(
            version_id=version.pk, image_id=image.pk, defaults={"vector": _vector_bytes(vector)}
        )
        threshold = settings.VF_SIMILARITY_DUPLICATE_DISTANCE
        hits = cache.index_get(version.pk).search(
            vector[None, :], settings.VF_SIMILARITY_DUPLICATES_SHOWN + 1
        )
    except Exception:  # noqa: BLE001 - a warning that cannot be computed never fails the upload
        logger.exception("near-duplicate check of image %s failed", image.pk)
        return []
    return [
        {
            "code": "near_duplicate",
            "text": f"Looks like image {pk} (descriptor distance {d:.4f}).",
            "image_id": str(pk),
            "distance": round(d, 6),
        }
        for pk, d in hits[0]
        if pk != image.pk and d <= threshold
    ][: settings.VF_SIMILARITY_DUPLICATES_SHOWN]
