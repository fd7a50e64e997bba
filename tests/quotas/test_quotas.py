"""Quotas per workspace (apps/quotas): images, stored bytes, versions kept, trainings queued at
once. Past a limit the answer is a 403 naming the limit, its value and the current use, and
nothing is stored."""

from __future__ import annotations

import base64
import io
import threading
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from apps.audit.models import AuditEvent
from apps.images.models import ImageCount, TrainingImage
from apps.images.services import training_image_delete, training_image_delete_many, training_image_ingest
from apps.quotas.models import StoredBytes, WorkspaceQuota
from apps.quotas.selectors import quota_limits
from apps.quotas.services import MSG_QUOTA
from apps.training import services as training
from apps.training.models import ModelVersion
from tests.factories import ModelVersionFactory, TaskFactory, add_trained_version, make_task
from tests.pictures import picture
from tests.training.test_services import _use_postgres

IMAGES = "/recognition/v2/training-image/"


def _b64(n: int) -> str:
    return base64.b64encode(picture(size=(40 + n, 30), color=(n * 20 % 256, 90, 30))).decode()


def _media_files(settings) -> list:
    root = settings.MEDIA_ROOT
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_without_a_row_or_a_setting_every_quota_is_unlimited(workspace):
    assert quota_limits(workspace_id=workspace.pk) == {
        "images": None,
        "stored_bytes": None,
        "versions": None,
        "queued_trainings": None,
    }


def test_an_empty_limit_is_the_settings_default_and_a_set_one_wins(workspace, settings):
    settings.VF_QUOTA_IMAGES = 100
    settings.VF_QUOTA_VERSIONS = 7
    WorkspaceQuota.objects.create(workspace=workspace, images=3)

    limits = quota_limits(workspace_id=workspace.pk)

    assert (limits["images"], limits["versions"], limits["stored_bytes"]) == (3, 7, None)


def test_an_upload_past_the_image_quota_is_a_403_naming_the_limit_and_the_use(api, workspace, settings):
    WorkspaceQuota.objects.create(workspace=workspace, images=2)
    for n in range(2):
        assert api.post(IMAGES, {"base64": _b64(n)}, format="json").status_code == 201
    files = _media_files(settings)

    response = api.post(IMAGES, {"base64": _b64(2)}, format="json")

    assert response.status_code == 403
    assert response.json() == {
        "detail": MSG_QUOTA["images"].format(used=2, limit=2, adding=1),
        "quota": "images",
        "limit": 2,
        "used": 2,
    }
    assert TrainingImage.objects.filter(workspace=workspace).count() == 2
    assert _media_files(settings) == files  # nothing of the refused upload stays in storage


def test_the_settings_default_limits_a_workspace_without_a_row(api, workspace, settings):
    settings.VF_QUOTA_IMAGES = 1
    assert api.post(IMAGES, {"base64": _b64(0)}, format="json").status_code == 201

    response = api.post(IMAGES, {"base64": _b64(1)}, format="json")

    assert response.status_code == 403 and response.json()["quota"] == "images"


def test_stored_bytes_are_counted_on_upload_and_delete_and_limit_uploads(api, workspace, settings):
    image = training_image_ingest(workspace=workspace, data=picture(size=(60, 50)))
    on_disk = sum(p.stat().st_size for p in _media_files(settings))
    assert image.stored_bytes == on_disk > 0
    assert StoredBytes.objects.get(workspace=workspace).bytes == on_disk
    WorkspaceQuota.objects.create(workspace=workspace, stored_bytes=on_disk + 10)

    response = api.post(IMAGES, {"base64": _b64(5)}, format="json")

    assert response.status_code == 403
    body = response.json()
    assert (body["quota"], body["limit"], body["used"]) == ("stored_bytes", on_disk + 10, on_disk)
    training_image_delete(image=image)
    assert StoredBytes.objects.get(workspace=workspace).bytes == 0
    assert api.post(IMAGES, {"base64": _b64(5)}, format="json").status_code == 201


def test_a_zip_import_into_a_full_workspace_is_refused_before_anything_is_unpacked(api, workspace):
    WorkspaceQuota.objects.create(workspace=workspace, images=1)
    training_image_ingest(workspace=workspace, data=picture())
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.jpg", picture(size=(33, 33)))
    upload = SimpleUploadedFile("images.zip", buffer.getvalue(), content_type="application/zip")

    response = api.post(f"{IMAGES}import-zip/", {"zip": upload}, format="multipart")

    assert response.status_code == 403 and response.json()["used"] == 1
    assert TrainingImage.objects.filter(workspace=workspace).count() == 1


def test_a_zip_import_stops_storing_at_the_quota_and_lists_the_rest_as_skipped(api, workspace):
    WorkspaceQuota.objects.create(workspace=workspace, images=2)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for n in range(4):
            archive.writestr(f"{n}.jpg", picture(size=(30 + n, 30)))
    upload = SimpleUploadedFile("images.zip", buffer.getvalue(), content_type="application/zip")

    response = api.post(f"{IMAGES}import-zip/", {"zip": upload}, format="multipart")

    assert response.status_code == 201
    skipped = response.json()["skipped"]
    assert [s["detail"] for s in skipped] == [MSG_QUOTA["images"].format(used=2, limit=2, adding=1)] * 2
    assert ImageCount.objects.get(workspace=workspace).images == 2


def test_training_past_the_queued_trainings_quota_is_a_403(api, user, workspace, settings, monkeypatch):
    settings.VF_MIN_IMAGES_PER_LABEL = 5
    monkeypatch.setattr(training, "_enqueue", lambda version_id: None)  # stays QUEUED
    first, _ = make_task(workspace, user, per_label=5)
    second = TaskFactory(workspace=workspace)
    WorkspaceQuota.objects.create(workspace=workspace, queued_trainings=1)
    assert api.post(f"/recognition/v2/task/{first.id}/train/").status_code == 200

    response = api.post(f"/recognition/v2/task/{second.id}/train/")

    assert response.status_code == 403
    assert response.json() == {
        "detail": MSG_QUOTA["queued_trainings"].format(used=1, limit=1, adding=1),
        "quota": "queued_trainings",
        "limit": 1,
        "used": 1,
    }
    assert not ModelVersion.objects.filter(task=second).exists()
    # The task already queued answers its version again: no new training, so no quota.
    assert api.post(f"/recognition/v2/task/{first.id}/train/").status_code == 200


def test_training_past_the_versions_quota_is_a_403_until_a_version_is_deleted(
    api, user, workspace, settings, monkeypatch
):
    settings.VF_MIN_IMAGES_PER_LABEL = 5
    monkeypatch.setattr(training, "_enqueue", lambda version_id: None)
    task, _ = make_task(workspace, user, per_label=5)
    old = ModelVersionFactory(task=task, version=1, train_status="FAILED")
    WorkspaceQuota.objects.create(workspace=workspace, versions=1)

    response = api.post(f"/recognition/v2/task/{task.id}/train/")

    assert response.status_code == 403
    assert (response.json()["quota"], response.json()["used"]) == ("versions", 1)
    training.model_version_delete(version=old)
    again = api.post(f"/recognition/v2/task/{task.id}/train/")
    assert again.status_code == 200, again.json()


def test_a_quota_change_is_in_the_audit_log_with_the_limits_before_and_after(workspace):
    quota = WorkspaceQuota.objects.create(workspace=workspace, images=10)
    quota.images, quota.versions = 20, 3
    quota.save()
    quota.save()  # no change: no event
    quota.delete()

    events = list(AuditEvent.objects.filter(action="quota.changed").order_by("id"))

    assert [(e.details["before"]["images"], e.details["after"]["images"]) for e in events] == [
        (None, 10),
        (10, 20),
        (20, None),
    ]
    assert events[1].details["after"]["versions"] == 3
    assert {e.workspace_id for e in events} == {workspace.pk}


def _sixteen_uploads_at_once(workspace) -> tuple[list, list]:
    """16 threads upload a different picture each at the same moment: (stored, refused by a quota)."""
    barrier = threading.Barrier(16)
    stored, refused, errors = [], [], []

    def upload(n: int) -> None:
        try:
            barrier.wait()
            stored.append(training_image_ingest(workspace=workspace, data=picture(size=(40 + n, 30))))
        except Exception as exc:  # collected, asserted below
            (refused if "quota" in getattr(exc, "extra", {}) else errors).append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=upload, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return stored, refused


@pytest.mark.services
def test_sixteen_concurrent_uploads_never_pass_the_image_quota(transactional_db, workspace):
    _use_postgres()
    WorkspaceQuota.objects.create(workspace=workspace, images=5)

    stored, refused = _sixteen_uploads_at_once(workspace)

    assert (len(stored), len(refused)) == (5, 11)
    assert {exc.extra["quota"] for exc in refused} == {"images"}
    assert ImageCount.objects.get(workspace=workspace).images == 5
    assert StoredBytes.objects.get(workspace=workspace).bytes == sum(i.stored_bytes for i in stored)


@pytest.mark.services
def test_sixteen_concurrent_uploads_never_pass_the_byte_quota(transactional_db, workspace):
    _use_postgres()
    # Room for about five of these pictures (each a little larger than the one before).
    one = len(picture(size=(48, 30))) * 5
    WorkspaceQuota.objects.create(workspace=workspace, stored_bytes=one)

    stored, refused = _sixteen_uploads_at_once(workspace)

    used = StoredBytes.objects.get(workspace=workspace).bytes
    assert 0 < len(stored) < 16 and len(stored) + len(refused) == 16
    assert {exc.extra["quota"] for exc in refused} == {"stored_bytes"}
    assert used == sum(i.stored_bytes for i in stored) <= one
    assert all(exc.extra["used"] <= one for exc in refused)


def test_classify_storing_images_into_a_full_workspace_is_a_403_before_anything_is_predicted(
    api, workspace, tmp_path
):
    task = TaskFactory(workspace=workspace)
    add_trained_version(task, 1, tmp_path)  # fake files: a prediction would fail to load them
    task.production_version = 1
    task.save(update_fields=["production_version"])
    WorkspaceQuota.objects.create(workspace=workspace, images=0)
    body = {"task_id": str(task.id), "records": [{"_base64": _b64(1)}], "store_images": True}

    response = api.post("/recognition/v2/classify/", body, format="json")

    assert response.status_code == 403
    assert (response.json()["quota"], response.json()["limit"], response.json()["used"]) == ("images", 0, 0)
    assert not TrainingImage.objects.filter(workspace=workspace).exists()


def test_an_admin_sets_a_workspace_quota_in_the_admin_and_the_change_is_logged_with_its_actor(
    client, admin_user, api, workspace
):
    client.force_login(admin_user)
    form = {
        "workspace": str(workspace.pk),
        "images": "1",
        "stored_bytes": "",
        "versions": "",
        "queued_trainings": "",
    }

    response = client.post("/admin/quotas/workspacequota/add/", form)

    assert response.status_code == 302, response.content.decode()[:2000]
    quota = WorkspaceQuota.objects.get(workspace=workspace)
    assert (quota.images, quota.stored_bytes) == (1, None)
    event = AuditEvent.objects.get(action="quota.changed")
    assert (event.actor_name, event.details["after"]["images"]) == (admin_user.username, 1)
    assert api.post(IMAGES, {"base64": _b64(0)}, format="json").status_code == 201
    assert api.post(IMAGES, {"base64": _b64(1)}, format="json").status_code == 403
    assert client.get("/admin/quotas/storedbytes/").status_code == 200  # read only, listed


def test_the_admin_refuses_a_negative_limit(client, admin_user, workspace):
    client.force_login(admin_user)
    form = {"workspace": str(workspace.pk), "images": "-1"}

    response = client.post("/admin/quotas/workspacequota/add/", form)

    assert response.status_code == 200  # the form again, with the error
    assert not WorkspaceQuota.objects.exists()


def test_the_byte_counter_follows_bulk_deletes_and_a_deleted_workspace(workspace, user):
    images = [training_image_ingest(workspace=workspace, data=picture(size=(30 + n, 30))) for n in range(4)]
    counter = StoredBytes.objects.get(workspace=workspace)
    assert counter.bytes == sum(i.stored_bytes for i in images)

    training_image_delete_many(queryset=TrainingImage.objects.filter(pk__in=[i.pk for i in images[:3]]))

    counter.refresh_from_db()
    assert counter.bytes == images[3].stored_bytes
    workspace.delete()  # the cascade takes the images and the counter row
    assert not StoredBytes.objects.exists()
