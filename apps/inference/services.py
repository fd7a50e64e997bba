"""Predict: run up to 10 records through one TRAINED version of a task, in one batch.

``task_predict`` is the service behind ``POST classify/``, ``POST detect/`` and ``POST
/v1/classify/``, the same for every kind of task. It picks the version
(``prediction_version_get`` reads the deployed one from the database on every call), reads every
record concurrently (base64 decoding, URL fetching through the SSRF-safe
``apps.images.fetch.fetch_url``, image decoding and resizing), runs the records that could be read
through the model as ONE forward pass, and lets the task's kind shape each answer (its predictor,
apps/core/kinds.py: Ximilar's labels for recognition, ``_objects`` for detection). A record that
cannot be read gets its own ``_status`` (400; 413 past the request's pixel budget; 503 when the
process's decode gate stays full); the rest of the batch is still answered.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from PIL import Image

from apps.core.errors import DomainError
from apps.core.kinds import KINDS
from apps.images.decoding import DECODE_GATE, RequestPixels, decode_base64, open_image
from apps.images.errors import (
    MSG_NOT_AN_IMAGE,
    MSG_TRUNCATED,
    DuplicateImageError,
    ImageInputError,
    ImageTooLargeError,
)
from apps.images.fetch import fetch_url
from apps.images.services import training_image_check_quota, training_image_ingest
from apps.tasks.models import Task
from apps.tasks.services import MSG_VERSION_NOT_TRAINED
from apps.training.models import ModelVersion

from .cache import TORCH_LOCK, predictor_get

logger = logging.getLogger(__name__)

MSG_NO_RECORDS = "Send at least one record (a list of objects with _url or _base64)."
MSG_TOO_MANY_RECORDS = "At most {limit} records per request; got {count}."
MSG_NOT_TRAINED = "The task has no trained model version yet."
MSG_RECORD_NOT_OBJECT = "A record must be a JSON object."
MSG_RECORD_NO_IMAGE = "A record needs an _url or a _base64 field."
MSG_V1_NO_IMAGE = "Send one of image_file, image_url or image_base64."

STATUS_OK = {"code": 200, "text": "OK"}
EXIF_ORIENTATION = 0x0112
ROTATED_ORIENTATIONS = {5, 6, 7, 8}  # EXIF orientations that swap width and height
_RAW = object()  # record key of raw uploaded bytes (v1 multipart); never in a JSON body, never echoed


# --------------------------------------------------------------------------- selectors


def prediction_version_get(*, task: Task, version: int | None) -> ModelVersion:
    """The TRAINED version to predict with: ``version``, else the task's production version.

    Read from the database on every call, so a new deployment is used by the next request.
    Raises DomainError (400) when the task was never trained or the version is not TRAINED.
    """
    number = task.production_version if version is None else version
    if version is None and number < 1:
        raise DomainError(MSG_NOT_TRAINED)
    found = (
        ModelVersion.objects.filter(task=task, version=number, train_status=ModelVersion.Status.TRAINED)
        .only("id", "task_id", "workspace_id", "version", "artifact_path", "served_file")
        .first()
    )
    if found is None:
        if version is None:
            raise DomainError(MSG_NOT_TRAINED)
        raise DomainError(MSG_VERSION_NOT_TRAINED.format(version=version))
    found.task = task  # the cache loads the version by its task's kind
    return found


# --------------------------------------------------------------------------- reading records


@dataclass
class _Read:
    """One record after reading: the model input, or why it could not be read."""

    data: bytes | None = None
    image: Any = None  # opened, not decoded yet
    pixels: int = 0  # what decoding it produces
    tensor: Any = None  # the predictor's input, from its preprocess()
    width: int = 0
    height: int = 0
    error: str | None = None
    code: int = 400


def _oriented_size(image: Image.Image) -> tuple[int, int]:
    """The size as the image will be seen (EXIF orientation applied), from its header alone."""
    width, height = image.size
    if image.format == "PNG" and "exif" not in image.info:
        # Pillow looks for an eXIf chunk after the pixels by decoding them all (150 MB for a
        # 50-megapixel PNG), outside the decode gate: a PNG has no orientation in its header.
        return width, height
    try:
        orientation = image.getexif().get(EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block: the image is used as stored
        orientation = 1
    return (height, width) if orientation in ROTATED_ORIENTATIONS else (width, height)


def _record_bytes(record: dict) -> bytes:
    if isinstance(record.get(_RAW), bytes):  # an uploaded file (Vize v1)
        return record[_RAW]
    if record.get("_base64") not in (None, ""):
        return decode_base64(record["_base64"])
    if record.get("_url") not in (None, ""):
        return fetch_url(record["_url"])
    raise ImageInputError(MSG_RECORD_NO_IMAGE)


def _guarded(step):
    """Run one reading step of a record; its failure becomes the record's error, never raises."""

    def run(read: _Read, *args) -> _Read:
        if read.error is not None:
            return read
        try:
            step(read, *args)
        except DomainError as exc:  # ImageInputError, UrlFetchError, the decoder's 503, ...
            read.error, read.code = exc.message, exc.status_code
        except Exception:  # noqa: BLE001 - one odd record must not fail the batch
            logger.exception("could not read a record")
            read.error, read.code = MSG_NOT_AN_IMAGE, 400
        read.image = None if read.error is not None or read.tensor is not None else read.image
        return read

    return run


@_guarded
def _open_record(read: _Read, record, predictor) -> None:
    """Bytes (upload, base64 or URL) and the header checks; no pixels decoded yet."""
    if not isinstance(record, dict):
        raise ImageInputError(MSG_RECORD_NOT_OBJECT)
    read.data = _record_bytes(record)
    image, _ = open_image(read.data, load=False)
    read.width, read.height = _oriented_size(image)
    draft = getattr(predictor, "draft", None)  # a predictor that decodes JPEGs at a reduced scale
    read.image = draft(image) if draft is not None else image
    read.pixels = read.image.size[0] * read.image.size[1]


@_guarded
def _decode_record(read: _Read, predictor) -> None:
    """Decode and resize to the model's input, holding the pixels in the process's decode gate."""
    with DECODE_GATE.hold(read.pixels):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                read.tensor = predictor.preprocess(read.image)
        except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombWarning) as exc:
            raise ImageInputError(MSG_TRUNCATED) from exc


_READERS: ThreadPoolExecutor | None = None
_READERS_LOCK = threading.Lock()
READER_THREADS = 40  # 10 records x 4 gunicorn threads: a request never waits for another's reads


def _readers() -> ThreadPoolExecutor:
    """The process's pool for reading records, made on first use (after gunicorn forks). Starting
    a thread per record and request cost ~3 ms each on a busy 2-core machine: 34 ms of a 10-record
    call spent starting threads."""
    global _READERS
    with _READERS_LOCK:
        if _READERS is None:
            _READERS = ThreadPoolExecutor(max_workers=READER_THREADS, thread_name_prefix="predict-read")
        return _READERS


def _each(step, reads: list[_Read], *columns) -> None:
    """``step(read, *column values)`` for every read, side by side on the reader pool."""
    if len(reads) == 1:
        step(reads[0], *(column[0] for column in columns))
        return
    list(_readers().map(step, reads, *columns))


def _read_records(records: list, predictor) -> list[_Read]:
    """Open every record, count what it decodes against the request's pixel budget in record
    order (a record past it gets its own 413), then decode the rest."""
    reads = [_Read() for _ in records]
    _each(_open_record, reads, records, [predictor] * len(records))
    budget = RequestPixels()
    for read in reads:
        if read.error is None:
            try:
                budget.take(read.pixels)
            except ImageTooLargeError as exc:
                read.error, read.code, read.image = exc.message, exc.status_code, None
    pending = [read for read in reads if read.error is None]
    if pending:
        _each(_decode_record, pending, [predictor] * len(pending))
    return reads


# --------------------------------------------------------------------------- answers


def _store(*, task: Task, data: bytes) -> str:
    """Store a record's image as an (unlabelled) training image; an existing copy is reused."""
    try:
        return str(training_image_ingest(workspace=task.workspace, data=data).pk)
    except DuplicateImageError as exc:
        return str(exc.image_id)


# --------------------------------------------------------------------------- service


def task_predict(
    *,
    task: Task,
    records: list,
    version: int | None = None,
    threshold: float | None = None,
    descriptor: bool = False,
    store_images: bool = False,
) -> dict:
    """Predict ``records`` (1 to ``VF_CLASSIFY_MAX_RECORDS``) with a TRAINED version of ``task``.

    Each record is a dict with ``_url`` or ``_base64``; its other keys are echoed back. Unreadable
    records get ``_status`` 400 with the reason; the readable ones go through the model as one
    batch. ``threshold`` is the kind's cut-off (recognition: labels with a lower probability leave
    ``labels``; detection: objects under it, ``keep_prob``), ``descriptor`` adds the L2-normalised
    penultimate features, ``store_images`` stores each readable record as a training image of the
    task's workspace. Raises DomainError (400) for a bad record count, a task without a trained
    version or a version that is not TRAINED; with ``store_images``, QuotaExceededError (403) when
    the workspace's image quota is reached before anything is predicted (records stored before the
    quota filled part way stay stored, and the request is a 403).
    """
    started = time.perf_counter()
    limit = settings.VF_CLASSIFY_MAX_RECORDS
    if not records:
        raise DomainError(MSG_NO_RECORDS)
    if len(records) > limit:
        raise DomainError(MSG_TOO_MANY_RECORDS.format(limit=limit, count=len(records)))
    model_version = prediction_version_get(task=task, version=version)
    if store_images:
        training_image_check_quota(workspace=task.workspace)
    predictor = predictor_get(model_version)
    kind = KINDS.get(task.type).predictor
    names = kind.names(labels=predictor.labels)

    reads = _read_records(records, predictor)
    good = [i for i, read in enumerate(reads) if read.error is None]
    predictions: dict[int, dict] = {}
    if good:
        with TORCH_LOCK:  # one forward (or model load) at a time; reading records stays concurrent
            outputs = predictor.predict_batch(
                [reads[i].tensor for i in good], descriptor=descriptor, **kind.batch_options(threshold)
            )
        predictions = dict(zip(good, outputs, strict=True))

    answers = []
    for i, (record, read) in enumerate(zip(records, reads, strict=True)):
        answer = (
            {k: v for k, v in record.items() if k not in ("_base64", _RAW)}
            if isinstance(record, dict)
            else {}
        )
        if read.error is not None:
            answer["_status"] = {"code": read.code, "text": read.error}
            answers.append(answer)
            continue
        prediction = predictions[i]
        answer["_status"] = dict(STATUS_OK)
        answer["_width"], answer["_height"] = read.width, read.height
        answer.update(kind.answer(prediction, predictor, names, threshold))
        if descriptor:
            answer["_descriptor"] = prediction["descriptor"]
        if store_images:
            answer["_stored_image_id"] = _store(task=task, data=read.data)
        answers.append(answer)

    return {
        "task_id": str(task.pk),
        "version": model_version.version,
        "status": dict(STATUS_OK),
        "statistics": {"processing time": round(time.perf_counter() - started, 6)},
        "records": answers,
    }


def task_classify_v1(
    *,
    task: Task,
    data: bytes | None = None,
    url: str | None = None,
    base64: str | None = None,
    version: int | None = None,
) -> dict:
    """Vize's ``/v1/classify/``: one image (uploaded bytes, URL or base64) -> ``{best_label, labels}``.

    Same model selection and inference as ``task_predict``; an unreadable image is a request
    error here (400 with the reason), since there is no other record to answer.
    """
    if data is not None:
        record = {_RAW: data}
    elif url:
        record = {"_url": url}
    elif base64:
        record = {"_base64": base64}
    else:
        raise DomainError(MSG_V1_NO_IMAGE)
    result = task_predict(task=task, records=[record], version=version)
    answer = result["records"][0]
    if answer["_status"]["code"] != 200:
        raise DomainError(answer["_status"]["text"])
    return {key: answer[key] for key in ("best_label", "best_labels", "labels") if key in answer}
