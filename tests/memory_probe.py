"""Peak memory of one web process serving classify calls of huge (but valid) images.

Run by tests/test_memory.py in two fresh processes on a folder of its own:

* ``python -m tests.memory_probe prepare DIR``: migrate a SQLite database in DIR, train a tiny
  model (eagerly), write the token and the task id to DIR/probe.json;
* ``python -m tests.memory_probe serve DIR``: load that model, classify one small image (warm-up),
  note the resident memory, then run three concurrent classify calls, each with ten records of one
  PNG of 7,070 x 7,070 pixels (~160 KB), as gunicorn's threads would; print the answers' status
  codes and the process's peak resident memory during the calls (``VmHWM`` reset just before them;
  ``ru_maxrss``, the peak since start, where the kernel does not allow the reset) as JSON.

The process that serves never trained, so its peak belongs to the serving alone.
"""

from __future__ import annotations

import base64
import gc
import io
import json
import os
import resource
import sys
import threading
from pathlib import Path

HUGE_SIDE = 7070
CALLS = 3
RECORDS = 10


def environment(folder: Path) -> dict[str, str]:
    """What both phases run with: a SQLite file and media of the folder's own, eager jobs."""
    return {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": f"sqlite:///{folder / 'db.sqlite3'}",
        "VF_VAR_DIR": str(folder),
        "VF_MEDIA_ROOT": str(folder / "media"),
        "VF_MODEL_CACHE_DIR": str(folder / "model-cache"),
        "CELERY_BROKER_URL": "filesystem://",
        "CELERY_TASK_ALWAYS_EAGER": "true",
        "VF_CACHE_URL": "",
        "VF_MIN_IMAGES_PER_LABEL": "5",
        "VF_TRAIN_ARCHITECTURE": "resnet10t",
        "VF_PRETRAINED": "none",
        "VF_TRAIN_EPOCHS": "2",
        "VF_TRAIN_TIME_BUDGET": "30",
        "VF_TRAIN_THREADS": "1",
        "VF_INFERENCE_THREADS": "1",
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
    }


def _status_kb(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    """Start the kernel's peak resident memory (VmHWM) afresh, so what came before (start-up,
    drawing the PNG, loading the model) does not count; False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def prepare(folder: Path) -> None:
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from apps.training.services import task_train
    from apps.workspaces import services as workspaces
    from tests.factories import UserFactory, make_task

    user = UserFactory()
    workspace = workspaces.workspace_ensure_default(user=user)
    task, _ = make_task(workspace, user, per_label=6)
    version = task_train(task=task)
    version.refresh_from_db()
    assert version.train_status == "TRAINED", version.metrics
    probe = {"token": str(workspaces.token_get_or_create(user=user)), "task_id": str(task.pk)}
    (folder / "probe.json").write_text(json.dumps(probe))


def _huge_png() -> str:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (HUGE_SIDE, HUGE_SIDE), (200, 40, 40))
    ImageDraw.Draw(image).rectangle((1000, 1000, 5000, 6000), fill=(30, 60, 200))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode()


def serve(folder: Path) -> None:
    import django

    django.setup()
    from django.test import Client

    from tests.pictures import picture

    probe = json.loads((folder / "probe.json").read_text())
    headers = {"HTTP_AUTHORIZATION": f"Token {probe['token']}"}
    huge = _huge_png()  # before the baseline: its own 150 MB are gone by then
    small = base64.b64encode(picture(size=(64, 48))).decode()

    def classify(records) -> dict:
        body = {"task_id": probe["task_id"], "records": records}
        response = Client().post("/v2/classify", json.dumps(body), content_type="application/json", **headers)
        return {
            "status": response.status_code,
            "records": [r["_status"]["code"] for r in response.json().get("records", [])],
        }

    warm = classify([{"_base64": small}])
    gc.collect()
    idle_kb = _status_kb("VmRSS")
    peak_before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fresh_peak = _reset_peak()
    answers: list[dict] = []
    threads = [
        threading.Thread(target=lambda: answers.append(classify([{"_base64": huge}] * RECORDS)))
        for _ in range(CALLS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # VmHWM counts from the reset; without it, ru_maxrss is the whole life's peak (an upper bound).
    peak_kb = _status_kb("VmHWM") if fresh_peak else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "warm_up": warm,
                "answers": answers,
                "idle_mb": idle_kb / 1024,
                "peak_before_mb": peak_before_kb / 1024,
                "peak_mb": peak_kb / 1024,
                "peak_since": "calls" if fresh_peak else "start",
                "huge_png_bytes": len(base64.b64decode(huge)),
            }
        )
    )


if __name__ == "__main__":
    phase, folder = sys.argv[1], Path(sys.argv[2])
    os.environ.update(environment(folder))
    {"prepare": prepare, "serve": serve}[phase](folder)
