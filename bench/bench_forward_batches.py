"""Forward passes on a CPU: milliseconds per image by batch size, and the rule ml/ follows.

    .venv/bin/python bench/bench_forward_batches.py [--threads 1,2] [--sizes 128,224,320]
        [--batches 1,2,4,6,8,10,16,32,64] [--repeats 9] [--architecture tf_efficientnet_lite0]

For each thread count and input size, in one process: the eager net (channels_last, as training's
``ml.recognition.train.forward_outputs`` runs it) and the traced + frozen net (as a served version runs it,
``ml.inference``), p50 over ``--repeats`` passes of each batch size after two warm-ups, random
weights (the speed depends on the shapes only). Then a whole cache of 120 images through
``forward_outputs`` in batches of 64 (before) and of ``forward_batch_size`` images (the rule,
``ml.runtime.CPU_BATCH_PIXELS``). Not part of the test suite; a few minutes. Run it with nothing else
on the machine: the cliff is the caches', and a neighbour's work moves it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ml.recognition.train import forward_outputs  # noqa: E402
from ml.runtime import forward_batch_size  # noqa: E402

CACHE_IMAGES = 120


def p50_ms(fn, repeats: int) -> float:
    fn()
    fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def frozen(model: torch.nn.Module, size: int) -> torch.nn.Module:
    example = torch.zeros((2, 3, size, size)).contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.freeze(torch.jit.trace(model.eval(), example))


def main() -> None:
    import timm

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--sizes", default="128,224,320")
    parser.add_argument("--batches", default="1,2,4,6,8,10,16,32,64")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--architecture", default="tf_efficientnet_lite0")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # rows appear as measured, piped or not
    cpu = torch.device("cpu")
    torch.manual_seed(0)
    model = timm.create_model(args.architecture, num_classes=10).eval().to(memory_format=torch.channels_last)
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        for size in [int(s) for s in args.sizes.split(",")]:
            traced = frozen(model, size)
            print(f"\n{args.architecture}, {size} px, {threads} thread(s): ms per image (p50)")
            print("| batch | eager | traced + frozen |\n| ---: | ---: | ---: |")
            for batch in [int(b) for b in args.batches.split(",")]:
                x = torch.randn(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
                with torch.inference_mode():
                    eager = p50_ms(lambda x=x: model.forward_features(x), args.repeats) / batch
                    jit = p50_ms(lambda x=x, traced=traced: traced(x), args.repeats) / batch
                print(f"| {batch} | {eager:.2f} | {jit:.2f} |")
            cache = torch.randint(0, 255, (CACHE_IMAGES, 3, size, size), dtype=torch.uint8)
            cache = cache.contiguous(memory_format=torch.channels_last)
            rule = forward_batch_size(size, cpu, 64)
            timings = {}
            for label, batch in (("64", 64), (f"{rule} (rule)", rule)):

                def extract(batch=batch, cache=cache):
                    norm = {"mean": [0.5] * 3, "std": [0.5] * 3}
                    forward_outputs(model, cache, batch_size=batch, want_features=True, **norm)

                timings[label] = p50_ms(extract, max(3, args.repeats // 3)) / CACHE_IMAGES
            print(
                f"forward_outputs over {CACHE_IMAGES} images, ms per image: "
                + ", ".join(f"batches of {k}: {v:.2f}" for k, v in timings.items())
            )


if __name__ == "__main__":
    main()
