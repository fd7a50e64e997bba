"""Backup and restore of the whole install, and the storage check (apps/backups).

Round trips on the suite's own database (SQLite on a laptop, PostgreSQL in CI's second pass):
after a restore onto an empty install, tokens work, the deployed version classifies the same
images with the same answers, and a new training runs. Local files to S3 (moto's server), and
SQLite to PostgreSQL (the way up from the embedded default) through the real commands in their
own processes. A damaged archive is refused and changes nothing; a backup taken while images are
deleted holds no row without its file.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command

from apps.audit.models import AuditEvent
from apps.backups import selectors, services
from apps.images.models import ImageLabel, TrainingImage
from apps.tasks.models import Task
from apps.training.models import ModelVersion
from apps.workspaces.models import Workspace
from tests.conftest import require_service, service_reachable
from tests.factories import make_task
from tests.pictures import COLOURS, solid

API = "/recognition/v2/"
ROOT = Path(__file__).resolve().parents[2]


def _wipe(settings, tmp_path, name: str) -> None:
    """Make this install empty, as a new one: no rows, a new media folder, no cached models."""
    from apps.inference.cache import model_cache

    get_user_model().objects.all().delete()  # workspaces, tasks, images, versions, tokens follow
    AuditEvent.objects.all().delete()  # a new install has no history either
    settings.MEDIA_ROOT = tmp_path / name
    settings.VF_MODEL_CACHE_DIR = tmp_path / f"{name}-model-cache"
    model_cache().clear()


def _train(api, task, django_capture_on_commit_callbacks) -> dict:
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"{API}task/{task.id}/train/")
    assert response.status_code in (200, 201), response.content
    version = api.get(f"{API}model/{response.json()['id']}/").json()
    assert version["train_status"] == "TRAINED", version
    return version


def _classify(api, task, records) -> list[dict]:
    response = api.post(f"{API}classify/", {"task_id": str(task.id), "records": records}, format="json")
    assert response.status_code == 200, response.content
    return [
        {label["name"]: round(label["prob"], 5) for label in record["labels"]}
        for record in response.json()["records"]
    ]


@pytest.mark.slow
def test_a_restored_install_keeps_tokens_answers_the_same_and_trains_again(
    api, user, workspace, fast_training, settings, tmp_path, django_capture_on_commit_callbacks
):
    task, labels = make_task(workspace, user, per_label=8)
    _train(api, task, django_capture_on_commit_callbacks)
    rng = np.random.default_rng(3)
    records = [{"_base64": base64.b64encode(solid(COLOURS[n % 2], rng)).decode()} for n in range(4)]
    before = _classify(api, task, records)
    images = TrainingImage.objects.count()
    path = tmp_path / "backup.tar"

    out = io.StringIO()
    call_command("backup", str(path), stdout=out, stderr=io.StringIO())
    assert "Backup written" in out.getvalue()
    manifest = json.loads(tarfile.open(path).extractfile("manifest.json").read())
    assert manifest["rows"]["images.trainingimage"] == images
    # images, thumbnails, the version's three files (weights, model.json, the FP32 model.onnx) and
    # the INT8 file it serves once the INT8 attempt after training kept one
    int8 = 1 if ModelVersion.objects.get(task=task).served_file else 0
    assert len(manifest["files"]) == 2 * images + 3 + int8

    _wipe(settings, tmp_path, "restored-media")
    assert not Task.objects.exists() and not TrainingImage.objects.exists()
    call_command("restore", str(path), stdout=io.StringIO(), stderr=io.StringIO())

    assert TrainingImage.objects.count() == images
    assert ImageLabel.objects.count() == images
    assert api.get(f"{API}task/{task.id}/").status_code == 200  # the same token still works
    assert _classify(api, task, records) == before
    assert services.storage_check(min_age=0).clean
    second = _train(api, Task.objects.get(pk=task.pk), django_capture_on_commit_callbacks)
    assert second["version"] == 2


def _small_install(workspace, user) -> Task:
    task, _ = make_task(workspace, user, per_label=3)
    return task


def test_a_damaged_archive_is_refused_naming_the_file_and_nothing_is_written(
    user, workspace, settings, tmp_path
):
    _small_install(workspace, user)
    path = tmp_path / "backup.tar"
    services.backup_create(path=path)
    damaged = tmp_path / "damaged.tar"
    with tarfile.open(path) as source, tarfile.open(damaged, "w") as target:
        flipped = None
        for member in source:
            data = source.extractfile(member).read()
            if flipped is None and member.name.startswith("files/training-images/"):
                data = bytes([data[0] ^ 0xFF]) + data[1:]
                flipped = member.name
            target.addfile(member, io.BytesIO(data))
    _wipe(settings, tmp_path, "empty-media")

    with pytest.raises(CommandError, match=f"The archive is damaged: {flipped} does not match its SHA-256"):
        call_command("restore", str(damaged), stdout=io.StringIO(), stderr=io.StringIO())
    assert not get_user_model().objects.exists() and not TrainingImage.objects.exists()
    assert next(selectors.stored_names("training-images"), None) is None

    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CommandError, match="The archive is damaged"):
        call_command("restore", str(truncated), stdout=io.StringIO(), stderr=io.StringIO())
    not_one = tmp_path / "notes.txt"
    not_one.write_text("hello")
    with pytest.raises(CommandError, match="damaged|not a backup archive"):
        call_command("restore", str(not_one), stdout=io.StringIO(), stderr=io.StringIO())
    assert not get_user_model().objects.exists()


def test_a_restore_onto_an_install_with_data_is_refused(user, workspace, tmp_path):
    _small_install(workspace, user)
    path = tmp_path / "backup.tar"
    services.backup_create(path=path)
    with pytest.raises(CommandError, match="This install is not empty"):
        call_command("restore", str(path), stdout=io.StringIO(), stderr=io.StringIO())
    assert Workspace.objects.count() == 1


def test_an_image_deleted_while_the_backup_copies_files_is_left_out_with_its_rows(
    user, workspace, settings, tmp_path, monkeypatch
):
    _small_install(workspace, user)
    doomed = TrainingImage.objects.order_by("id").first()
    listed = selectors.image_files

    def image_files_then_a_delete():
        rows = list(listed())  # the snapshot's rows; then the image's files go, as a delete does
        default_storage.delete(doomed.file)
        yield from rows

    monkeypatch.setattr(selectors, "image_files", image_files_then_a_delete)
    path = tmp_path / "backup.tar"
    summary = services.backup_create(path=path)
    assert summary.skipped["images"] == [str(doomed.pk)]
    monkeypatch.undo()

    count = TrainingImage.objects.count()
    _wipe(settings, tmp_path, "restored-media")
    services.backup_restore(path=path)
    assert TrainingImage.objects.count() == count - 1
    assert not TrainingImage.objects.filter(pk=doomed.pk).exists()
    assert not ImageLabel.objects.filter(image_id=doomed.pk).exists()
    assert services.storage_check(min_age=0).clean  # no row without its file, no file without a row


def test_check_storage_reports_orphans_both_ways_and_fix_cleans_and_marks(user, workspace, tmp_path):
    _small_install(workspace, user)
    lost = TrainingImage.objects.order_by("id").first()
    default_storage.delete(lost.file)
    default_storage.save(f"training-images/{workspace.pk}/stray.jpg", io.BytesIO(b"debris"))

    out = io.StringIO()
    with pytest.raises(SystemExit) as exit_:
        call_command("check_storage", "--min-age", "0", stdout=out, stderr=io.StringIO())
    assert exit_.value.code == 1
    assert f"orphan file: training-images/{workspace.pk}/stray.jpg" in out.getvalue()
    assert f"missing file: image {lost.pk}: {lost.file}" in out.getvalue()

    # A fresh file without a row may be an upload in flight: not an orphan under the default age.
    fresh = services.storage_check()
    assert fresh.orphan_files == [] and len(fresh.missing) == 1

    out = io.StringIO()
    call_command("check_storage", "--fix", "--min-age", "0", "--json", stdout=out, stderr=io.StringIO())
    assert json.loads(out.getvalue())["fixed"] is True
    assert not default_storage.exists(f"training-images/{workspace.pk}/stray.jpg")
    lost.refresh_from_db()
    assert lost.file_missing is True
    assert services.storage_check(min_age=0).orphan_files == []


def test_a_backup_of_local_files_restores_onto_s3(user, workspace, settings, tmp_path, request):
    _small_install(workspace, user)
    names = sorted(n for _, file, thumb in selectors.image_files() for n in (file, thumb))
    path = tmp_path / "backup.tar.gz"
    services.backup_create(path=path)
    assert tarfile.open(path).getmember("manifest.json")  # gzip-compressed by its name
    get_user_model().objects.all().delete()
    AuditEvent.objects.all().delete()

    bucket = request.getfixturevalue("s3_storage")  # default storage is now a fresh S3 bucket
    services.backup_restore(path=path)
    assert sorted(o.key for o in bucket.objects.all()) == names
    assert services.storage_check(min_age=0).clean
    image = TrainingImage.objects.order_by("id").first()
    assert default_storage.open(image.file).read()[:2] in (b"\x89P", b"\xff\xd8")  # an image


# ------------------------------------------------------------- SQLite to PostgreSQL, as processes

POPULATE = """
from apps.workspaces import services as ws
from tests.factories import UserFactory, make_task
user = UserFactory(username="moving")
workspace = ws.workspace_ensure_default(user=user)
make_task(workspace, user, per_label=3)
print(ws.token_get_or_create(user=user))
"""

VERIFY = """
import json
from rest_framework.authtoken.models import Token
from apps.images.models import TrainingImage
from apps.backups import services
print(json.dumps({
    "user": Token.objects.get(key="%s").user.username,
    "images": TrainingImage.objects.count(),
    "clean": services.storage_check(min_age=0).clean,
}))
"""


def _manage(env: dict, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.services
def test_a_sqlite_install_moves_to_postgresql_through_backup_and_restore(tmp_path):
    require_service(service_reachable("127.0.0.1", 5432), "PostgreSQL on 127.0.0.1:5432")
    import psycopg

    name = f"vf_restore_{uuid.uuid4().hex[:10]}"
    admin_url = os.environ.get("VF_TEST_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "AWS_STORAGE_BUCKET_NAME")}
    base.update(CELERY_BROKER_URL="filesystem://", VF_VAR_DIR=str(tmp_path / "var"))
    source = {
        **base,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'source.sqlite3'}",
        "VF_MEDIA_ROOT": str(tmp_path / "a"),
    }
    target = {
        **base,
        "DATABASE_URL": admin_url.rsplit("/", 1)[0] + f"/{name}",
        "VF_MEDIA_ROOT": str(tmp_path / "b"),
    }
    try:
        _manage(source, "migrate", "--noinput", "-v", "0")
        token = _manage(source, "shell", "-c", POPULATE).strip().splitlines()[-1]
        _manage(source, "backup", str(tmp_path / "move.tar"))
        _manage(target, "migrate", "--noinput", "-v", "0")
        _manage(target, "restore", str(tmp_path / "move.tar"))
        found = json.loads(_manage(target, "shell", "-c", VERIFY % token).strip().splitlines()[-1])
        assert found == {"user": "moving", "images": 6, "clean": True}
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
