"""Webhooks with a real worker: how soon ``training.finished`` reaches its receiver after the version
is TRAINED, and the retries against a receiver that fails twice, then succeeds.

    .venv/bin/python bench/bench_webhooks.py [--trainings 3] [--pings 10] [--retry-base 1]
    .venv/bin/python bench/bench_webhooks.py --broker redis://127.0.0.1:6379/11

A fresh install in a temporary folder (SQLite file, local media, the filesystem broker unless
``--broker`` names another) and a ``celery worker`` process as scripts/run.sh starts it (prefork,
both queues, concurrency 1), or with ``--workers split`` one for each queue as docker/compose.yaml
starts them: with one worker process a delivery waits for a running training to end. The
receiver is tests/webhooks/receiver.py on 127.0.0.1 in this process (allowed by
``VF_WEBHOOKS_ALLOWED_HOSTS`` for the run); it checks every signature.

- **TRAINED -> received**: a tiny task (2 labels x 5 drawn images, the tests' fast training)
  trained ``--trainings`` times through ``task_train``; from the version's ``finished`` (stamped
  in the transaction that marks it TRAINED) to the receiver reading the POST.
- **Baselines, same run**: a ``ping`` through the same queue and job with no training around it
  (``POST webhook/{id}/test/``'s service; from its commit to the receiver), and the same signed
  POST sent directly from this process (no queue): what the signing and HTTP cost alone.
- **Retries**: the receiver answers 500, 500, then 200; the gaps between the attempts against the
  backoff (``--retry-base`` s, then twice that), and the delivery's state and log at the end.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TIMEOUT_S = 300


def _environment(folder: Path, broker: str, retry_base: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "AWS_STORAGE_BUCKET_NAME")}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL=f"sqlite:///{folder / 'db.sqlite3'}",
        VF_VAR_DIR=str(folder),
        VF_MEDIA_ROOT=str(folder / "media"),
        VF_MODEL_CACHE_DIR=str(folder / "model-cache"),
        CELERY_BROKER_URL=broker,
        CELERY_TASK_ALWAYS_EAGER="false",
        VF_WEBHOOKS_ALLOWED_HOSTS="127.0.0.1",
        VF_WEBHOOKS_RETRY_BASE_S=str(retry_base),
        # The tests' fast training (tests/factories.py, FAST_TRAINING) as the worker reads it.
        VF_MIN_IMAGES_PER_LABEL="5",
        VF_TRAIN_ARCHITECTURE="resnet10t",
        VF_PRETRAINED="none",
        VF_TRAIN_EPOCHS="4",
        VF_TRAIN_TIME_BUDGET="30",
        VF_TRAIN_THREADS="1",
        EMAIL_BACKEND="django.core.mail.backends.dummy.EmailBackend",
        VF_LOG_LEVEL="WARNING",
    )
    return env


def _worker(env: dict, log: Path, queues: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queues,
         "--pool", "prefork", "--concurrency", "1", "--loglevel", "WARNING",
         "-n", f"bench-webhooks-{queues.replace(',', '-')}-{os.getpid()}@%h",
         "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


def _arrival(receiver, match, timeout: float = TIMEOUT_S):
    """The first request ``match`` accepts, waiting for it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for request in list(receiver.received):
            if match(request):
                return request
        time.sleep(0.005)
    raise RuntimeError(f"no matching delivery within {timeout} s")


def _ms(seconds: list[float]) -> str:
    low, high = min(seconds) * 1000, max(seconds) * 1000
    return f"{statistics.median(seconds) * 1000:.0f} ms (min {low:.0f}, max {high:.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trainings", type=int, default=3)
    parser.add_argument("--pings", type=int, default=10)
    parser.add_argument("--retry-base", type=int, default=1, help="VF_WEBHOOKS_RETRY_BASE_S for the run")
    parser.add_argument("--broker", default="filesystem://")
    parser.add_argument(
        "--workers",
        choices=["one", "split"],
        default="one",
        help="one: a worker for both queues, as scripts/run.sh starts it; split: one for training, "
        "one for default, as docker/compose.yaml starts them",
    )
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="vf-bench-webhooks-"))
    env = _environment(folder, args.broker, args.retry_base)
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    from apps.training.models import ModelVersion
    from apps.training.services import task_train
    from apps.webhooks import services as webhooks
    from apps.webhooks.events import EVENTS
    from apps.webhooks.models import WebhookDelivery
    from apps.webhooks.signing import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, signature
    from apps.workspaces import services as workspaces
    from tests.factories import make_task
    from tests.webhooks.receiver import Receiver

    call_command("migrate", verbosity=0)
    logging.getLogger("kombu.connection").setLevel(logging.ERROR)  # the filesystem broker has no host
    receiver = Receiver()
    queues = ["default,training"] if args.workers == "one" else ["training", "default"]
    workers = [_worker(env, folder / f"worker-{n}.log", q) for n, q in enumerate(queues)]
    try:
        user, _ = workspaces.user_create(username="bench", password="bench-pw-1")  # noqa: S106 - a throw-away install
        workspace = workspaces.workspace_ensure_default(user=user)
        hook = webhooks.webhook_create(workspace=workspace, actor=user, url=receiver.url, events=list(EVENTS))

        def ping_latency() -> float:
            started = time.time()
            delivery = webhooks.webhook_test(webhook=hook, actor=user)  # committed: enqueued now
            return _arrival(receiver, lambda r: r.delivery == str(delivery.pk)).at - started

        print("waiting for the worker (its start imports the trainer) ...", flush=True)
        ping_latency()
        pings = [ping_latency() for _ in range(args.pings)]

        body = b'{"event":"ping","data":{}}'
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature(hook.secret, body),
            EVENT_HEADER: "ping",
            DELIVERY_HEADER: "direct",
        }
        direct = []
        for _ in range(20):
            started = time.perf_counter()
            requests.post(receiver.url, data=body, headers=headers, timeout=10)
            direct.append(time.perf_counter() - started)

        task, _ = make_task(workspace, user, per_label=5)
        after_trained, started_after_claim, train_seconds = [], [], []
        for n in range(args.trainings):
            queued = time.time()
            version = task_train(task=task, user=user)
            finished = _arrival(
                receiver,
                lambda r, v=version: (
                    r.event == "training.finished" and r.json["data"]["model"]["id"] == str(v.pk)
                ),
            )
            started = _arrival(
                receiver,
                lambda r, v=version: (
                    r.event == "training.started" and r.json["data"]["model"]["id"] == str(v.pk)
                ),
            )
            version = ModelVersion.objects.get(pk=version.pk)
            assert finished.signed_with(hook.secret) and started.signed_with(hook.secret)
            after_trained.append(finished.at - version.finished.timestamp())
            started_after_claim.append(started.at - version.started.timestamp())
            train_seconds.append(version.finished.timestamp() - queued)
            print(
                f"training {n + 1}: v{version.version} {version.train_status} in {train_seconds[-1]:.1f} s; "
                f"training.finished received {after_trained[-1] * 1000:.0f} ms after TRAINED",
                flush=True,
            )

        # Retries: 500, 500, then 200.
        receiver.statuses = [500, 500]
        sent = time.time()
        delivery = webhooks.webhook_test(webhook=hook, actor=user)
        _arrival(
            receiver,
            lambda r: r.delivery == str(delivery.pk) and r.status == 200,
            timeout=60 + 10 * args.retry_base,
        )
        attempts = [r for r in receiver.received if r.delivery == str(delivery.pk)]
        assert all(r.signed_with(hook.secret) for r in attempts)
        gaps = [later.at - earlier.at for earlier, later in zip(attempts, attempts[1:], strict=False)]
        time.sleep(0.5)  # the worker records the last attempt after the receiver answered
        delivery = WebhookDelivery.objects.get(pk=delivery.pk)
        log = list(delivery.attempt_log.order_by("number"))

        print()
        print(
            f"broker {args.broker.split('://')[0]}; workers (prefork, concurrency 1): {' and '.join(queues)}"
        )
        print("| measure | figure |")
        print("| --- | --- |")
        print(
            f"| TRAINED -> training.finished received ({args.trainings} trainings) | {_ms(after_trained)} |"
        )
        print(f"| claimed -> training.started received | {_ms(started_after_claim)} |")
        print(f"| baseline: ping through the queue ({args.pings}) | {_ms(pings)} |")
        print(f"| baseline: the same signed POST, direct (20) | {_ms(direct)} |")
        print(
            f"| ratio TRAINED -> received / ping | "
            f"{statistics.median(after_trained) / statistics.median(pings):.2f} |"
        )
        print(f"| tiny training, queued -> TRAINED | {statistics.median(train_seconds):.1f} s median |")
        print(
            f"| retries (500, 500, 200), base {args.retry_base} s | {len(attempts)} attempts; gaps "
            + ", ".join(f"{gap:.2f} s" for gap in gaps)
            + f" against {args.retry_base}, {2 * args.retry_base} s of backoff; delivered "
            f"{attempts[-1].at - sent:.2f} s after the event; {delivery.status}, log "
            + ", ".join(f"#{a.number} {a.status_code} ({a.duration_ms:.0f} ms)" for a in log)
            + " |"
        )
    finally:
        for worker in workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
        receiver.close()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
