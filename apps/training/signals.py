"""A deleted model version takes its stored artifacts and local cache copy with it.

Like images' files (apps/images/signals.py): a signal because a version also goes in cascades no
service sees (its task, workspace or owner deleted in the admin or through the API).
"""

from __future__ import annotations

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import Signal, receiver

from .models import ModelVersion

# Sent once a version is marked TRAINED, after that transaction committed, with ``version`` (the
# ModelVersion, its ``task`` loaded). The hook for apps above training (apps/suggestions scores the
# task's pool) that the layers forbid training to import.
version_trained = Signal()
# Sent the same way when a worker claims a version (IN_TRAINING; again on each retried attempt) and
# when a version is marked FAILED (by the job, the sweep, or a claim out of attempts), with
# ``version``. apps/webhooks turns these into its training events.
version_started = Signal()
version_failed = Signal()
# Sent (after commit, with ``version``) when a TRAINED version's INT8 attempt ends, accepted,
# refused or failed: from then on the version serves the file it will keep serving. apps/similarity
# waits for it before describing images with a version whose attempt was pending, so the stored
# descriptors come from the file that answers the searches' queries.
version_serving_settled = Signal()


def _delete(version: ModelVersion) -> None:
    from .artifacts import delete_artifacts  # loads the ML stack's constants: only when needed

    delete_artifacts(version)


@receiver(post_delete, sender=ModelVersion, dispatch_uid="training-delete-artifacts")
def delete_version_files(sender, instance: ModelVersion, **kwargs) -> None:
    # A copy that still knows where the files are (the collector clears the instance's pk later).
    files = ModelVersion(
        pk=instance.pk,
        workspace_id=instance.workspace_id,
        task_id=instance.task_id,
        artifact_path=instance.artifact_path,
        served_file=instance.served_file,  # the INT8 file, when its attempt passed
    )
    transaction.on_commit(lambda: _delete(files))
