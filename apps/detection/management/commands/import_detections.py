"""Import boxes drawn in other tools: COCO JSON or Pascal VOC XML, with their images.

    manage.py import_detections <file or folder> --workspace <uuid> [--task <detection task uuid>]

``<file>``: a COCO ``.json`` (its images looked up next to it, or under ``--images``), a VOC ``.xml``,
or a zip of images and annotations. ``<folder>``: every ``.json`` and ``.xml`` in it (VOC's
``Annotations/`` and ``JPEGImages/`` included). Images are stored at their own size, labels found
by name or created (and attached to the task), images without boxes become the task's negatives.
What was skipped, and why, is listed at the end; the command never stops half-way for it.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from apps.core.ids import parse_uuid
from apps.detection import services
from apps.tasks.models import Task
from apps.workspaces.models import Workspace

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}


class Command(BaseCommand):
    help = "Import COCO JSON / Pascal VOC XML boxes and their images into a workspace (and detection task)."

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path, help="A .json, .xml or .zip file, or a folder.")
        parser.add_argument("--workspace", required=True, help="Workspace id (UUID).")
        parser.add_argument("--task", help="Detection task id (UUID): labels attached, negatives added.")
        parser.add_argument(
            "--images", type=Path, help="Folder of the images (default: beside the annotations)."
        )
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args, path: Path, workspace: str, task: str | None, images: Path | None, **options):
        workspace_obj = (
            Workspace.objects.filter(pk=parse_uuid(workspace)).first() if parse_uuid(workspace) else None
        )
        if workspace_obj is None:
            raise CommandError(f"No workspace {workspace}.")
        task_obj = None
        if task:
            task_obj = (
                Task.objects.filter(
                    pk=parse_uuid(task), workspace=workspace_obj, type=Task.Type.DETECTION
                ).first()
                if parse_uuid(task)
                else None
            )
            if task_obj is None:
                raise CommandError(f"No detection task {task} in workspace {workspace_obj.id}.")
        if not path.exists():
            raise CommandError(f"{path} does not exist.")

        if path.suffix.lower() == ".zip":
            with path.open("rb") as fh:
                report = services.detection_import_zip(
                    workspace=workspace_obj, file=_Sized(fh), task=task_obj
                )
        else:
            root = path if path.is_dir() else path.parent
            annotation_files = (
                sorted(p for p in path.rglob("*") if p.suffix.lower() in (".json", ".xml"))
                if path.is_dir()
                else [path]
            )
            if not annotation_files:
                raise CommandError(services.MSG_NO_ANNOTATIONS)
            parsed, skipped = services.parse_annotations(
                {str(p.relative_to(root)): p.read_bytes() for p in annotation_files}
            )
            image_root = images or root
            files = {
                str(p.relative_to(image_root)).replace("\\\\", "/"): p.read_bytes
                for p in image_root.rglob("*")
                if p.suffix.lower() in IMAGE_SUFFIXES
            }
            bar = tqdm(
                total=len(parsed),
                desc="Importing",
                unit="image",
                file=self.stderr,
                disable=options["no_progress"],
            )
            with bar:
                report = services.detection_import(
                    workspace=workspace_obj,
                    images=parsed,
                    read=services.image_reader(files),
                    task=task_obj,
                    skipped=skipped,
                    progress=lambda _item: bar.update(1),
                )
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2))
            return
        created = ", ".join(report["labels_created"]) or "none"
        self.stdout.write(
            f"Imported {report['images']} images with {report['objects']} objects"
            f" ({report['negative_images']} negative); new labels: {created}."
        )
        if report["skipped"]:
            self.stdout.write(f"Skipped {len(report['skipped'])}:")
            for item in report["skipped"]:
                what = item["file"] + (f" [{item['label']} {item.get('box')}]" if "label" in item else "")
                self.stdout.write(f"  {what}: {item['reason']}")


class _Sized:
    """A file object with the ``size`` the zip import checks first (as Django's uploads have)."""

    def __init__(self, fh):
        self._fh = fh
        fh.seek(0, 2)
        self.size = fh.tell()
        fh.seek(0)

    def __getattr__(self, name):
        return getattr(self._fh, name)
