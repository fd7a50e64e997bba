"""Where each kind of task plugs in its trainer and its predictor, keyed by ``Task.type``.

The training lifecycle (apps/training/services.py: validate, queue, claim, heartbeat, progress,
artifacts, deploy, sweep, e-mails) and prediction (apps/inference: the model cache, reading the
records, one batched forward pass, per-record errors) are written once. A kind of task registers
both halves together, as one ``TaskKind`` for its task types, in its app's ``ready()``: image
recognition (multi_class, multi_label, regression) in apps/recognition, object detection in
apps/detection.

A ``Trainer`` has
- ``validate(task=)``: raises ``DomainError`` naming what the task lacks before it may train;
- ``train(version=, out_dir=, progress=)``: fits a claimed version, writes its artifacts
  (``model.safetensors`` + ``model.json``) into ``out_dir``, calls ``progress`` with ml's progress
  dicts, and returns a ``TrainOutcome``.

A ``Predictor`` has
- ``load(directory, mode=, num_threads=, passes=)``: the model of the version saved in
  ``directory``, ready to predict (ml/ does the loading; ``mode`` is ``VF_INFERENCE_MODE``,
  ``passes`` ``VF_INFERENCE_PASSES``). The model has ``labels``,
  ``preprocess(image)`` and ``predict_batch(inputs, descriptor=)``, and may have ``draft(image)``
  (prepare an opened image to decode at the reduced scale ``preprocess`` needs; its ``size`` is
  then what the request's pixel budget counts);
- ``answer(prediction, model, names, threshold)``: the response keys of one record;
- ``names(labels=)``: the current names of the version's labels by id (a label renamed since the
  training answers with its new name);
- ``batch_options(threshold)`` (optional): extra keyword arguments of the model's ``predict_batch``
  for a call with this cut-off (detection passes ``keep_prob`` down, so the NMS never works on
  boxes the answer leaves out); by default none.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field


@dataclass
class TrainOutcome:
    """What a trainer hands back to the lifecycle, stored on the version when it is marked TRAINED."""

    metrics: dict
    warnings: list[str] = field(default_factory=list)
    evaluation: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class Trainer:
    validate: Callable[..., None]
    train: Callable[..., TrainOutcome]


def _no_options(threshold: float | None) -> dict:
    return {}


@dataclass(frozen=True)
class Predictor:
    load: Callable[..., object]
    answer: Callable[..., dict]
    names: Callable[..., dict]
    batch_options: Callable[[float | None], dict] = _no_options


@dataclass(frozen=True)
class TaskKind:
    trainer: Trainer
    predictor: Predictor


class KindRegistry:
    def __init__(self):
        self._kinds: dict[str, TaskKind] = {}

    def register(self, task_types: Iterable[str], kind: TaskKind) -> None:
        for task_type in task_types:
            self._kinds[str(task_type)] = kind

    def get(self, task_type: str) -> TaskKind:
        try:
            return self._kinds[task_type]
        except KeyError:
            raise ValueError(f"No kind of task is registered for tasks of type {task_type!r}.") from None


KINDS = KindRegistry()
