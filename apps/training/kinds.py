"""What the training lifecycle needs from a kind of task, keyed by ``Task.type``.

The lifecycle in services.py (validate, queue, claim, heartbeat, progress, artifacts, deploy,
sweep) and the e-mails are written once. A kind of task plugs in two functions:

- ``validate(task=)`` raises ``DomainError`` naming what the task lacks before it may train;
- ``train(version=, out_dir=, progress=)`` fits a claimed version, writes its artifacts
  (``model.safetensors`` + ``model.json``) into ``out_dir``, calls ``progress`` with ml's progress
  dicts, and returns a ``TrainOutcome``.

Image classification registers its three task types in ``TrainingConfig.ready``; a second kind
(detection) registers its own type the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from apps.core.kinds import KindRegistry


@dataclass
class TrainOutcome:
    """What a trainer hands back to the lifecycle, stored on the version when it is marked TRAINED."""

    metrics: dict
    warnings: list[str] = field(default_factory=list)
    evaluation: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class TrainingKind:
    validate: Callable[..., None]
    train: Callable[..., TrainOutcome]


KINDS: KindRegistry[TrainingKind] = KindRegistry("trainer")
