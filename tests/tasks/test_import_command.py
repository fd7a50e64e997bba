from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from apps.images.models import TrainingImage
from apps.labels.models import Label
from tests.factories import TaskFactory
from tests.pictures import picture, truncated

pytestmark = pytest.mark.django_db


@pytest.fixture
def task(workspace):
    return TaskFactory(workspace=workspace, name="pets")


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "pets"
    for name, colors in {"cat": [(200, 0, 0), (190, 10, 0)], "dog": [(0, 0, 200)]}.items():
        (root / name).mkdir(parents=True)
        for i, color in enumerate(colors):
            (root / name / f"{i}.jpg").write_bytes(picture(color=color))
    (root / "dog" / "broken.jpg").write_bytes(truncated(picture(size=(300, 300))))
    (root / "dog" / "notes.txt").write_text("not an image")
    (root / "dog" / "copy.png").write_bytes((root / "cat" / "0.jpg").read_bytes())
    return root


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command("import_images", *map(str, args), stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_it_imports_class_folders_into_labels_of_the_task_and_reports_bad_files(folder, workspace, task):
    existing = Label.objects.create(workspace=workspace, name="cat")
    out, err = run(folder, "--workspace", workspace.id, "--task", task.id)
    assert TrainingImage.objects.filter(workspace=workspace).count() == 3
    assert set(task.labels.values_list("name", flat=True)) == {"cat", "dog"}
    assert Label.objects.get(workspace=workspace, name="cat") == existing  # reused, not duplicated
    assert TrainingImage.objects.filter(labels__name="cat").count() == 2
    assert TrainingImage.objects.filter(labels__name="dog").count() == 1
    assert "broken.jpg: The image is truncated or corrupt." in err
    assert "notes.txt" in err
    assert "Skipped duplicate" in out and "copy.png" in out
    assert "Imported 3 images into 2 labels; skipped 1 duplicates and 2 unreadable files." in out
    assert "Importing" in err  # the tqdm progress bar

    out, _ = run(folder, "--workspace", workspace.id, "--no-progress")
    assert "Imported 0 images" in out and TrainingImage.objects.count() == 3


def test_it_refuses_an_unknown_workspace_or_task(folder, workspace, other_user):
    with pytest.raises(CommandError, match="No workspace"):
        run(folder, "--workspace", "00000000-0000-4000-8000-000000000000")
    with pytest.raises(CommandError, match="No task"):
        run(folder, "--workspace", workspace.id, "--task", "00000000-0000-4000-8000-000000000000")
    with pytest.raises(CommandError, match="not a folder"):
        run(folder / "missing", "--workspace", workspace.id)
