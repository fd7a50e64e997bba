"""Training benchmark through the API: wall time from ``POST task/{id}/train/`` to TRAINED.

    .venv/bin/python bench/bench_train_api.py [--sets 2x20,10x100] [--pretrained auto,none]

Prepares everything itself: a temporary VF_VAR_DIR with a SQLite database (migrated), eager jobs
(the job runs inside the request, so the request's wall time is train-to-TRAINED), a user, and
for each set a multi_class task whose labels each get N drawn 128 px pictures (a coloured shape
on a noisy background; the label is the shape and colour pair), uploaded through the ingest
service. Then it presses train and prints wall time, the trainer's own time and the accuracy on
the test side, for each pretrained source. Uses the project's settings otherwise
(VF_TRAIN_TIME_BUDGET, VF_TRAIN_EPOCHS, VF_TRAIN_ARCHITECTURE, VF_TRAIN_THREADS).

Goal (issue 4): 2 labels x 20 images in at most 60 s. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SHAPES = ("circle", "square", "triangle", "bar", "cross")
COLOURS = ((220, 50, 50), (40, 90, 220), (40, 180, 70), (230, 200, 40))


def picture(label: int, rng: np.random.Generator, size: int = 128) -> bytes:
    from PIL import Image, ImageDraw

    background = tuple(int(c) for c in rng.integers(90, 170, 3))
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    shape, colour = SHAPES[label % len(SHAPES)], COLOURS[(label // len(SHAPES)) % len(COLOURS)]
    r = int(rng.integers(size // 6, size // 3))
    cx, cy = (int(v) for v in rng.integers(r, size - r, 2))
    box = (cx - r, cy - r, cx + r, cy + r)
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    elif shape == "bar":
        draw.rectangle((cx - r, cy - r // 4, cx + r, cy + r // 4), fill=colour)
    else:
        draw.rectangle((cx - r, cy - r // 5, cx + r, cy + r // 5), fill=colour)
        draw.rectangle((cx - r // 5, cy - r, cx + r // 5, cy + r), fill=colour)
    pixels = np.asarray(image, dtype=np.float32) + rng.normal(0, 12, (size, size, 3))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", default="2x20,10x100", help="labels x images per label, comma-separated")
    parser.add_argument("--pretrained", default="auto,none", help="pretrained sources to compare")
    args = parser.parse_args()

    var = tempfile.mkdtemp(prefix="vf-bench-train-")
    os.environ.update(
        {"VF_VAR_DIR": var, "CELERY_TASK_ALWAYS_EAGER": "true", "DJANGO_SETTINGS_MODULE": "config.settings"}
    )
    os.environ.pop("DATABASE_URL", None)
    os.environ.setdefault("VF_LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from rest_framework.test import APIClient

    from apps.images.services import training_image_ingest
    from apps.labels.services import label_create
    from apps.tasks.services import label_attach, task_create
    from apps.training.models import ModelVersion
    from apps.workspaces import services as workspace_services
    from tests.factories import UserFactory

    call_command("migrate", verbosity=0)
    user = UserFactory()
    workspace = workspace_services.workspace_ensure_default(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {workspace_services.token_get_or_create(user=user)}")
    print(
        f"architecture {settings.VF_TRAIN_ARCHITECTURE}, budget {settings.VF_TRAIN_TIME_BUDGET} s, "
        f"epochs <= {settings.VF_TRAIN_EPOCHS}, threads {settings.VF_TRAIN_THREADS or 'default'}"
    )
    print(f"{'set':>8} {'pretrained':>12} {'wall s':>8} {'fit s':>7} {'epochs':>6} {'accuracy':>8}  weights")
    for n, spec in enumerate(args.sets.split(",")):
        labels_n, per_label = (int(v) for v in spec.lower().split("x"))
        for m, source in enumerate(args.pretrained.split(",")):
            settings.VF_TRAIN_PRETRAINED = source
            rng = np.random.default_rng(100 * n + m)  # new pictures per run: uploads are deduplicated
            task = task_create(workspace=workspace, owner=user, name=f"{spec} {source}")
            for k in range(labels_n):
                label = label_create(workspace=workspace, name=f"label{k}")
                label_attach(label=label, task=task)
                for _ in range(per_label):
                    training_image_ingest(workspace=workspace, data=picture(k, rng), label_ids=[label.id])
            started = time.perf_counter()
            response = client.post(f"/recognition/v2/task/{task.id}/train/")
            wall = time.perf_counter() - started
            version = ModelVersion.objects.get(pk=response.json()["id"])
            metrics = version.metrics
            if version.train_status != "TRAINED":
                print(f"{spec:>8} {source:>12} FAILED: {metrics.get('error')}")
                continue
            print(
                f"{spec:>8} {source:>12} {wall:8.1f} {metrics['training_time']:7.1f} {metrics['epochs']:6d} "
                f"{version.accuracy:8.3f}  {metrics.get('pretrained')}"
            )


if __name__ == "__main__":
    main()
