"""Console benchmark: server time of each console page with 10 k (or more) images in the task.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench .venv/bin/python bench/bench_console.py
        [--images 10000] [--repeats 25]

PostgreSQL only (issue #14: every page renders in <= 100 ms server time with 10 k images in the
task). Creates its own database (``test_<name>`` of DATABASE_URL, migrated, dropped at the end), a
user, a multi_class task with four labels and ``--images`` training images written in bulk SQL
(``tests/bulk.py``; the four labels on every fourth image, a tenth marked test), and a TRAINED version
whose metrics and evaluation look like a real one's (a 4 x 4 confusion matrix, 60 epochs of
history, 200 evaluated images). Then it times each page in-process with Django's test client, signed
in with a session (the full stack: middleware, session, workspace, queries, templates; no socket):
p50 and p90 over ``--repeats`` calls after two warm-ups. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.postgres import bench_user, timed_get  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DJANGO_DEBUG", "false")  # no query log: as a production server runs

GOAL_MS = 100.0
PAGES = [
    ("task list", "/console/tasks/"),
    ("task page", "/console/tasks/{task}/"),
    ("image grid, first page", "/console/tasks/{task}/images/"),
    ("image grid, page 50", "/console/tasks/{task}/images/?page=50"),
    ("image grid, one label, test only", "/console/tasks/{task}/images/?label={label}&test=1"),
    ("image grid, unlabelled", "/console/tasks/{task}/images/?unlabelled=on"),
    ("version page (metrics, curves, evaluation)", "/console/tasks/{task}/versions/1/"),
    ("version progress (htmx partial)", "/console/tasks/{task}/versions/1/progress/"),
    ("members", "/console/workspace/members/"),
]


def version_with_metrics(task, labels, image_ids: list[str]):
    """A TRAINED version with metrics and an evaluation shaped like a real training's."""
    from apps.training.models import ModelVersion

    names = [label.name for label in labels]
    size = len(names)
    evaluation = [
        {
            "image_id": image_id,
            "true_labels": [{"id": str(labels[n % size].pk), "name": names[n % size]}],
            "predicted_labels": [{"id": str(labels[(n * 7) % size].pk), "name": names[(n * 7) % size]}],
            "correct": n % size == (n * 7) % size,
        }
        for n, image_id in enumerate(image_ids)
    ]
    metrics = {
        "accuracy": 0.9,
        "confusion_matrix": {
            "labels": names,
            "matrix": [[5 + (i == j) * 40 for j in range(size)] for i in range(size)],
        },
        "per_label": [
            {"name": name, "precision": 0.9, "recall": 0.9, "f1": 0.9, "support": 50} for name in names
        ],
        "history": [{"epoch": e, "loss": 1.0 / e, "val_score": 1 - 1.0 / (e + 1)} for e in range(1, 61)],
    }
    return ModelVersion.objects.create(
        workspace=task.workspace, task=task, version=1, train_status="TRAINED", metrics=metrics,
        evaluation=evaluation,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=25)
    args = parser.parse_args()

    with bench_user() as (_, user, _, workspace):
        from django.db import connection
        from django.test import Client

        from apps.labels.models import Label
        from apps.tasks.models import Task
        from tests.bulk import fill_images, image_id

        task = Task.objects.create(workspace=workspace, owner=user, name="bench", type="multi_class")
        labels = [Label.objects.create(workspace=workspace, name=f"label {n}") for n in range(4)]
        task.labels.add(*labels)
        fill_images(workspace_id=workspace.id, count=args.images, labels={label.id: 4 for label in labels})
        version_with_metrics(task, labels, [image_id(workspace.id, i) for i in range(200)])
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
        Task.objects.filter(pk=task.pk).update(production_version=1, last_train_status="TRAINED")

        client = Client()
        client.force_login(user)
        print(f"{args.images:,} images in the task")
        worst = 0.0
        for name, url in PAGES:
            p50, p90, _ = timed_get(client, url.format(task=task.pk, label=labels[0].pk), args.repeats)
            worst = max(worst, p50)
            print(f"  {name:<46} p50 {p50:7.1f} ms  p90 {p90:7.1f} ms", flush=True)
        verdict = "met" if worst <= GOAL_MS else "NOT met"
        print(f"slowest page p50 {worst:.1f} ms: the {GOAL_MS:.0f} ms goal is {verdict}")


if __name__ == "__main__":
    main()
