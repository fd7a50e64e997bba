"""Similarity's hooks into the other apps.

- A receiver of apps/training's ``version_trained`` describes the workspace's images whenever a
  newly trained version is the deployed one; when its INT8 attempt is still to come, the receiver of
  ``version_serving_settled`` does it once the attempt ended (the served file is then final).
- A receiver of apps/images' ``upload_checks`` answers an upload with its near-duplicates (the
  images app asks its receivers for warnings, so it never imports this app).
"""

from __future__ import annotations

from django.dispatch import receiver

from apps.images.signals import upload_checks
from apps.training.signals import version_serving_settled, version_trained


@receiver(version_trained, dispatch_uid="similarity-describe-after-training")
def describe_after_training(sender, version, **kwargs) -> None:
    from . import services  # the services load the inference stack: only when a version trained

    services.descriptor_run_after_training(version=version)


@receiver(version_serving_settled, dispatch_uid="similarity-describe-after-int8")
def describe_after_serving_settled(sender, version, **kwargs) -> None:
    from . import services

    services.descriptor_run_after_serving_settled(version=version)


@receiver(upload_checks, dispatch_uid="similarity-near-duplicates")
def near_duplicates(sender, image, data, **kwargs) -> list[dict]:
    from . import services

    return services.upload_near_duplicates(image=image, data=data)
