"""Import a folder of class folders as training images: ``<folder>/<label name>/<image files>``.

    manage.py import_images ./pets --workspace <uuid> [--task <uuid>] [--label-type category]

Each sub-folder is a label (created in the workspace if missing, attached to the task if given);
images directly in ``<folder>`` are imported without a label. Unreadable files and images already
in the workspace are skipped and listed at the end; the command never stops half-way for them.
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from apps.core.errors import DomainError
from apps.images.errors import DuplicateImageError, ImageInputError
from apps.images.services import training_image_ingest
from apps.labels.models import Label
from apps.labels.services import label_create
from apps.tasks.models import RECOGNITION_TYPES, Task
from apps.tasks.services import LABEL_TYPE_FOR_TASK_TYPE, label_attach
from apps.workspaces.models import Workspace

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp"}


class Command(BaseCommand):
    help = "Import <folder>/<label name>/<image> files as training images of a workspace (and task)."

    def add_arguments(self, parser):
        parser.add_argument("folder", type=Path)
        parser.add_argument("--workspace", required=True, help="Workspace id (UUID).")
        parser.add_argument("--task", help="Task id (UUID) to attach the labels to.")
        parser.add_argument(
            "--label-type",
            choices=[Label.Type.CATEGORY, Label.Type.TAG],
            help="Type of labels to create (default: what the task accepts, else category).",
        )
        parser.add_argument("--noresize", action="store_true", help="Keep the original image sizes.")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(
        self, *args, folder: Path, workspace: str, task: str | None, label_type: str | None, **options
    ):
        if not folder.is_dir():
            raise CommandError(f"{folder} is not a folder.")
        workspace_obj = Workspace.objects.filter(pk=workspace).first() if _is_uuid(workspace) else None
        if workspace_obj is None:
            raise CommandError(f"No workspace {workspace}.")
        task_obj = None
        if task:
            task_obj = (
                Task.objects.filter(pk=task, workspace=workspace_obj, type__in=RECOGNITION_TYPES).first()
                if _is_uuid(task)
                else None
            )
            if task_obj is None:
                raise CommandError(f"No task {task} in workspace {workspace_obj.id}.")
        if label_type is None:
            label_type = LABEL_TYPE_FOR_TASK_TYPE[task_obj.type] if task_obj else Label.Type.CATEGORY
        if label_type not in (Label.Type.CATEGORY, Label.Type.TAG):
            raise CommandError("Value labels need a value per image; import them through the API.")

        work = self._plan(folder)
        labels = {
            name: self._label(workspace_obj, task_obj, name, label_type)
            for name in {n for n, _ in work}
            if name
        }
        imported, duplicates, unreadable = 0, [], []
        for name, path in tqdm(
            work, desc="Importing", unit="image", file=self.stderr, disable=options["no_progress"]
        ):
            try:
                training_image_ingest(
                    workspace=workspace_obj,
                    data=path.read_bytes(),
                    label_ids=[labels[name].id] if name else [],
                    noresize=options["noresize"],
                )
                imported += 1
            except DuplicateImageError:
                duplicates.append(path)
            except (ImageInputError, OSError) as exc:
                unreadable.append((path, getattr(exc, "message", str(exc))))
            except DomainError as exc:
                unreadable.append((path, exc.message))

        for path, reason in unreadable:
            self.stderr.write(f"Skipped unreadable {path}: {reason}")
        for path in duplicates:
            self.stdout.write(f"Skipped duplicate {path}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Imported {imported} images into {len(labels)} labels; "
                f"skipped {len(duplicates)} duplicates and {len(unreadable)} unreadable files."
            )
        )

    def _plan(self, folder: Path) -> list[tuple[str, Path]]:
        """(label name or "", file) for every candidate file, sorted for a reproducible order."""
        work = [("", path) for path in sorted(folder.iterdir()) if _is_candidate(path)]
        for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
            work += [(sub.name, path) for path in sorted(sub.rglob("*")) if _is_candidate(path)]
        return work

    def _label(self, workspace, task, name: str, label_type: str) -> Label:
        label = (
            Label.objects.filter(workspace=workspace, name=name, type=label_type).order_by("created").first()
        )
        if label is None:
            label = label_create(workspace=workspace, name=name, type=label_type)
            self.stdout.write(f"Created label {name} ({label_type})")
        if task is not None:
            label_attach(label=label, task=task)
        return label


def _is_candidate(path: Path) -> bool:
    # Every visible file is tried (a misnamed image still imports); unreadable ones are reported.
    return path.is_file() and not path.name.startswith(".")


def _is_uuid(value: str) -> bool:
    import uuid

    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True
