"""Similarity search: the index against exact search, and the descriptor job's time.

    .venv/bin/python bench/bench_similarity.py [--sizes 10000,100000] [--queries 200] [--job-images 1000]

Part 1, the index (ml/similarity.py, as the service builds it) over descriptors of the dimension of
a lite0 version (1280), at each size: build time from the rows, p50 of one query at a time (k=10)
and recall@10 against exact search, and the baseline in the same run: exact search with numpy
(every vector compared, one matrix-vector product and a partial sort). Two kinds of descriptors:
"realistic" (L2-normalised non-negative vectors drawn around 1,000 centres with noise as large as
the centres' spread: the clusters of classes and near-copies that real penultimate features
have) and "random" (isotropic Gaussian: no structure at all, the worst case for any approximate
index; nearest neighbours there are barely nearer than the rest). Queries are fresh draws, not
stored vectors.

Part 2, the job: a fresh install in a temporary folder (SQLite, local media), N JPEG photos-like
images (320 x 240) uploaded through the ingest service, a lite0 version (the recipe's default
backbone at 224 px, trained for one epoch on 30 of them: its descriptor is what any lite0 version
computes) deployed, then ``descriptor_run_execute`` timed, per 1,000 images; and an upload's added
cost: ``upload_near_duplicates`` (describe one image, store it, search) against the ingest itself.

Timings are absolute on a shared 2-core machine: compare the ratios within one run.
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

DIM = 1280  # tf_efficientnet_lite0's pooled features: the descriptor of a lite0 version


def realistic(n: int, rng: np.random.Generator, centres: np.ndarray) -> np.ndarray:
    which = rng.integers(0, len(centres), n)
    x = centres[which] + 2.0 * np.maximum(rng.normal(size=(n, DIM)), 0).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def random_vectors(n: int, rng: np.random.Generator) -> np.ndarray:
    x = rng.normal(size=(n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def p50_ms(times: list[float]) -> float:
    return 1000 * float(np.median(times))


def bench_index(sizes: list[int], queries: int, threads: int) -> None:
    from threadpoolctl import threadpool_limits

    from ml import similarity

    similarity.set_threads(threads)
    threadpool_limits(threads)  # numpy's BLAS too: the baseline gets the same threads
    print(f"== the index: dim {DIM}, k=10, {queries} queries one at a time, {threads} faiss thread(s)")
    print("| descriptors | kind | index | build s | index p50 ms | exact numpy p50 ms | ratio | recall@10 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for n in sizes:
        for kind in ("realistic", "random"):
            rng = np.random.default_rng(n)
            if kind == "realistic":
                centres = np.maximum(rng.normal(size=(1000, DIM)), 0).astype(np.float32)
                x, q = realistic(n, rng, centres), realistic(queries, rng, centres)
            else:
                x, q = random_vectors(n, rng), random_vectors(queries, rng)
            started = time.perf_counter()
            index = similarity.build_index(np.arange(n), x.astype(np.float16).astype(np.float32))
            build = time.perf_counter() - started
            found, t_index, t_exact, truth = [], [], [], []
            for i in range(queries):
                started = time.perf_counter()
                ids, _ = index.search(q[i : i + 1], 10)
                t_index.append(time.perf_counter() - started)
                found.append(ids[0])
                started = time.perf_counter()
                sims = x @ q[i]
                top = np.argpartition(-sims, 10)[:10]
                top = top[np.argsort(-sims[top])]
                t_exact.append(time.perf_counter() - started)
                truth.append(top)
            recall = np.mean(
                [len(set(a.tolist()) & set(b.tolist())) / 10 for a, b in zip(found, truth, strict=True)]
            )
            name = (
                "exact (flat)"
                if index.exact
                else f"IVF fp16, {index.index.nlist} cells, nprobe {index.index.nprobe}"
            )
            print(
                f"| {n:,} | {kind} | {name} | {build:.2f} | {p50_ms(t_index):.2f} | {p50_ms(t_exact):.2f} "
                f"| {p50_ms(t_index) / p50_ms(t_exact):.3f} | {recall:.3f} |",
                flush=True,
            )


def _photo(rng: np.random.Generator) -> bytes:
    from PIL import Image

    base = rng.integers(0, 255, (6, 8, 3)).astype(np.uint8)
    small = Image.fromarray(base).resize((320, 240), Image.BICUBIC)
    pixels = np.asarray(small, dtype=np.int16) + rng.integers(-25, 25, (240, 320, 3))
    out = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(out, "JPEG", quality=85)
    return out.getvalue()


def bench_job(images: int, uploads: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-similarity-"))
    os.environ.update(
        DATABASE_URL=f"sqlite:///{folder / 'db.sqlite3'}",
        VF_VAR_DIR=str(folder),
        VF_MEDIA_ROOT=str(folder / "media"),
        CELERY_BROKER_URL="filesystem://",
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from apps.images.services import training_image_ingest
    from apps.similarity import services
    from apps.similarity.models import DescriptorRun
    from apps.tasks.models import Task
    from apps.training import artifacts
    from apps.training.models import ModelVersion
    from apps.workspaces import services as ws
    from ml.config import TrainConfig
    from ml.recognition.recipe import fit

    user = get_user_model().objects.create_user("bench")
    workspace = ws.workspace_ensure_default(user=user)
    task = Task.objects.create(workspace=workspace, owner=user, name="bench", type="multi_class")
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    datas = [_photo(rng) for _ in range(images)]
    for data in datas:
        training_image_ingest(workspace=workspace, data=data)
    print(f"== the job: {images} images stored in {time.perf_counter() - started:.1f} s")

    labels = [{"id": f"00000000-0000-0000-0000-00000000000{i}", "name": f"l{i}"} for i in range(3)]
    items = [(datas[i], i % 3) for i in range(30)]
    model_dir = folder / "lite0"
    config = TrainConfig(architecture="tf_efficientnet_lite0", input_size=224, epochs=1, seed=0)
    fit(items, [i % 5 == 0 for i in range(30)], labels, "multi_class", config=config, out_dir=str(model_dir))
    version = ModelVersion.objects.create(
        workspace=workspace, task=task, version=1, train_status=ModelVersion.Status.TRAINED
    )
    version.artifact_path = artifacts.save_artifacts(version, str(model_dir))
    version.save(update_fields=["artifact_path"])
    Task.objects.filter(pk=task.pk).update(production_version=1)

    run = DescriptorRun.objects.create(workspace=workspace, task=task, version=version)
    started = time.perf_counter()
    services.descriptor_run_execute(run_id=run.pk)
    took = time.perf_counter() - started
    run.refresh_from_db()
    print(
        f"descriptor job: {run.done} images in {took:.1f} s (model load included): "
        f"{1000 * took / max(run.done, 1):.1f} s per 1,000 images"
    )

    ingest, check = [], []
    for _ in range(uploads):
        data = _photo(rng)
        started = time.perf_counter()
        image = training_image_ingest(workspace=workspace, data=data)
        ingest.append(time.perf_counter() - started)
        started = time.perf_counter()
        services.upload_near_duplicates(image=image, data=data)
        check.append(time.perf_counter() - started)
    print(
        f"upload: ingest p50 {p50_ms(ingest):.1f} ms; near-duplicate check adds p50 {p50_ms(check):.1f} ms "
        f"({p50_ms(check) / p50_ms(ingest):.2f}x the ingest), {uploads} uploads"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1, help="faiss and BLAS threads (both sides)")
    parser.add_argument("--job-images", type=int, default=1000, help="0 skips the job")
    parser.add_argument("--uploads", type=int, default=30)
    args = parser.parse_args()
    bench_index([int(s) for s in args.sizes.split(",") if s], args.queries, args.threads)
    if args.job_images:
        bench_job(args.job_images, args.uploads)


if __name__ == "__main__":
    main()
