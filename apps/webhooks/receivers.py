"""The events' sources, connected to the emitter (by WebhooksConfig.ready).

Training and suggestions send Django signals after their transactions commit; they may not import
this app (the layers: webhooks stand above every event's source), so it listens instead. A
receiver that fails is logged by ``send_robust`` and never fails a training.
"""

from __future__ import annotations

from django.dispatch import receiver

from apps.suggestions.signals import suggestions_ready
from apps.training.signals import version_failed, version_started, version_trained

from . import events, services


@receiver(version_started, dispatch_uid="webhooks-training-started")
def training_started(sender, version, **kwargs) -> None:
    services.webhook_training_event(event=events.TRAINING_STARTED, version=version)


@receiver(version_trained, dispatch_uid="webhooks-training-finished")
def training_finished(sender, version, **kwargs) -> None:
    services.webhook_training_event(event=events.TRAINING_FINISHED, version=version)


@receiver(version_failed, dispatch_uid="webhooks-training-failed")
def training_failed(sender, version, **kwargs) -> None:
    services.webhook_training_event(event=events.TRAINING_FAILED, version=version)


@receiver(suggestions_ready, dispatch_uid="webhooks-suggestions-ready")
def suggestions_ready_(sender, run, count, **kwargs) -> None:
    services.webhook_suggestions_ready(run=run, count=count)
