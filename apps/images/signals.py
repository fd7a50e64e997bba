"""Files follow their rows, however the rows go.

A deleted training image takes its file and thumbnail with it once the transaction commits, also
when the row goes in a cascade the images app never sees: a workspace deleted through the API or
the admin, a user deleted in the admin. Cascades are the reason this is a signal and not only a
service (Django's collector is the one place every such delete passes through).

``upload_checks`` is sent after an upload is stored (``training-image/``), with ``image`` and its
``data``; each receiver answers a list of warnings (``{"code", "text", ...}``) that the upload's
answer carries in ``warnings``. apps/similarity names near-duplicates this way: this app must not
import it (it stands above the images).
"""

from __future__ import annotations

from functools import partial

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import Signal, receiver

from . import storage
from .models import TrainingImage

upload_checks = Signal()


@receiver(post_delete, sender=TrainingImage, dispatch_uid="images-delete-files")
def delete_image_files(sender, instance: TrainingImage, **kwargs) -> None:
    # After the commit only: a rolled-back delete must find its files still there.
    transaction.on_commit(partial(storage.delete_files, instance.file, instance.thumbnail))
