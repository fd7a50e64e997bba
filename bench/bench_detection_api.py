"""Detection through the API: ``POST detection/v2/task/{id}/train/`` to TRAINED, mAP@0.5 on the unseen
test side, then ``POST detection/v2/detect/`` latency for 1 and 10 records.

    .venv/bin/python bench/bench_detection_api.py [--scenes 300] [--size 256] [--budget 600] [--photos]

Prepares everything itself: a temporary VF_VAR_DIR with a SQLite database (migrated), eager jobs
(the job runs inside the request, so its wall time is train-to-TRAINED), a user, a detection task
with two labels and ``--scenes`` seeded scenes (tests/detection/scenes.py: red squares and blue
discs on noise) stored through the ingest service with their boxes. Uses the project's settings
otherwise (VF_DETECTION_INPUT_SIZE, VF_DETECTION_EPOCHS, VF_TRAIN_THREADS); ``--budget`` is the
task's ``train_time_budget``. Goal (issue 13): mAP@0.5 >= 0.90 within 10 minutes on 2 cores.
``--photos`` uses the easy photo scenes instead (bench/detection_scenes.py: 1-3 crops of real food
photos of 2 labels on a photo, 384 x 288 px, benchmark photos; needs VF_BENCH_DATA), stored as
JPEG; ``--size`` is ignored then. Goal (issue 23): 120 scenes to TRAINED in <= 150 s.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenes", type=int, default=300)
    parser.add_argument("--size", type=int, default=256, help="scene width (height is 3/4 of it)")
    parser.add_argument("--budget", type=int, default=600, help="the task's train_time_budget (s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--photos", action="store_true", help="easy photo scenes (384 x 288)")
    args = parser.parse_args()

    var = tempfile.mkdtemp(prefix="vf-bench-detect-")
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

    from apps.detection.services import (
        detection_label_attach,
        detection_label_create,
        detection_object_create,
        detection_task_create,
    )
    from apps.images.services import training_image_ingest
    from apps.training.models import ModelVersion
    from apps.workspaces import services as workspace_services
    from tests.detection.scenes import png, scenes
    from tests.factories import UserFactory

    call_command("migrate", verbosity=0)
    user = UserFactory()
    workspace = workspace_services.workspace_ensure_default(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {workspace_services.token_get_or_create(user=user)}")

    if args.photos:
        sys.path.insert(0, str(ROOT / "bench"))
        import detection_scenes

        names = detection_scenes.label_names("easy")
        encode = detection_scenes.jpeg

        def draw(n, seed):
            return detection_scenes.scenes(n, "easy", "bench", seed=seed)
    else:
        names, encode = ["square", "disc"], png

        def draw(n, seed):
            return scenes(n, seed=seed, size=(args.size, args.size * 3 // 4))

    task = detection_task_create(
        workspace=workspace, owner=user, name="Shapes", train_time_budget=args.budget
    )
    labels = []
    for name in names:
        label = detection_label_create(workspace=workspace, name=name)
        detection_label_attach(task=task, label=label)
        labels.append(label)
    drawn = draw(args.scenes, args.seed)
    for image, boxes, box_labels in drawn:
        stored = training_image_ingest(workspace=workspace, data=encode(image), noresize=True)
        for box, index in zip(boxes, box_labels, strict=True):
            detection_object_create(label=labels[index], image=stored, data=box)
    print(
        f"{args.scenes} scenes of {drawn[0][0].size} px; "
        f"input {settings.VF_DETECTION_INPUT_SIZE or 'auto'} px, epochs <= "
        f"{settings.VF_DETECTION_EPOCHS}, budget {args.budget} s, "
        f"threads {settings.VF_TRAIN_THREADS or 'default'}"
    )

    started = time.perf_counter()
    response = client.post(f"/detection/v2/task/{task.id}/train/")
    wall = time.perf_counter() - started
    version = ModelVersion.objects.get(pk=response.json()["id"])
    metrics = version.metrics
    if version.train_status != "TRAINED":
        print(f"FAILED: {metrics.get('error')}")
        return
    print(
        f"train to TRAINED {wall:.1f} s (fit {metrics['train_time_s']:.1f} s, {metrics['epochs']} epochs, "
        f"input {metrics['input_size']} px, stopped: {metrics.get('stopped')}, "
        f"best epoch {metrics.get('best_epoch')}, "
        f"val mAP {metrics.get('val_map50')}); "
        f"mAP@0.5 {metrics['map50']:.3f} on {metrics['test_images']} unseen scenes; "
        f"precision {metrics['precision']}, recall {metrics['recall']} at {metrics['threshold']}; "
        f"second look {metrics.get('second_look')}"
    )
    print(
        "  history", [(h["epoch"], h["loss"], h.get("val_map50"), h["seconds"]) for h in metrics["history"]]
    )
    for row in metrics["per_label"]:
        print(f"  {row['name']:>8}: AP {row['ap']}, precision {row['precision']}, recall {row['recall']}")

    fresh = draw(10, args.seed + 1000)
    records = [{"_base64": base64.b64encode(encode(image)).decode()} for image, _, _ in fresh]
    for count in (1, 10):
        body = {"task_id": str(task.id), "records": records[:count]}
        client.post("/detection/v2/detect/", body, format="json")  # the first call loads the model
        times = []
        for _ in range(10):
            t = time.perf_counter()
            answer = client.post("/detection/v2/detect/", body, format="json")
            times.append(time.perf_counter() - t)
            assert answer.status_code == 200, answer.content
        print(
            f"detect {count:>2} record(s): median {statistics.median(times) * 1000:.0f} ms "
            "(in-process API call)"
        )


if __name__ == "__main__":
    main()
