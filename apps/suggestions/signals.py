"""The labelling loop's hooks.

- ``suggestions_ready`` is sent when a scoring run of a task's pool finished (after its transaction
  committed), with ``run`` (its ``task`` loaded) and ``count`` (how many suggestions it holds). It
  is the hook point for the "suggestions ready" webhook event: apps/webhooks connects its emitter
  here (this app must not import it: webhooks stand above every event's source).
- A receiver of apps/training's ``version_trained`` scores the pool of the task again whenever a
  newly trained version is the deployed one.
"""

from __future__ import annotations

import logging

from django.dispatch import Signal, receiver

from apps.training.signals import version_trained

logger = logging.getLogger(__name__)

suggestions_ready = Signal()


@receiver(version_trained, dispatch_uid="suggestions-score-after-training")
def score_after_training(sender, version, **kwargs) -> None:
    from . import services  # the services load the inference stack: only when a version trained

    services.suggestion_run_after_training(version=version)
