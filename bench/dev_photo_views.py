"""Views, resolutions and heads for photos, chosen on the benchmark's training sides only.

    VF_BENCH_DATA=$PWD/var/bench-data .venv/bin/python bench/dev_photo_views.py [--seeds 0,1,2]

Like ``bench/dev_photos.py``: for each seed's stratified 80/20 split of the food photos
(``bench_quality.photos``) only the 80 % is read, and every variant is scored by stratified 5-fold
cross-validation *within* it (the same folds for every variant). The benchmark's test side is read
by bench_quality.py alone.

Frozen features are extracted once per (backbone, side, view) and kept under
``var/dev-photo-views/`` (never committed), so the variants cost only their heads. A view is the
whole photo squashed to the square (``full``), a fixed crop of it (``c``: the centre 80 %, ``tl``
``tr`` ``bl`` ``br``: the corners' 80 %), each also mirrored (``m`` suffix), or one of ``--random``
random views (a random resized crop keeping 60-100 % of the area, a coin-flip mirror, a little
brightness, contrast and saturation jitter) used only as extra training rows.

Variants (rows of the table):
- ``base``: the recipe's head (``ml.recognition.probe.fit_linear_head``: C by inner 3-fold CV,
  mirror images averaged or not by CV) on lite2 at 260 px, whole photo squashed.
- ``tta:<views>``: features averaged over those fixed views, training and held-out rows alike.
- ``aug<R>``: the training rows' averaged features plus R random views of each training photo as
  extra rows (inner CV grouped by photo, so no photo's views straddle a fold).
- ``res``: lite2 at other sides; ``ms``: features of several sides averaged.
- ``lite1+lite2``, ``lite0+lite2``: features side by side.
- ``pool``: lite2's last layer max-pooled, average- and max-pooled side by side, the average
  beside a 2 x 2 grid of averages, or the last stages' pooled outputs (taps) beside it.
- heads: ``l2`` (features L2-normalised first), ``wideC`` (a wider C grid), ``lda`` (shrinkage
  LDA), ``ridge`` (a ridge classifier), ``ncm`` (nearest class mean, cosine) and ``blend``
  (logistic and nearest-class-mean probabilities averaged).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_quality  # noqa: E402

BACKBONES = {"lite0": ("tf_efficientnet_lite0", 224), "lite1": ("tf_efficientnet_lite1", 240),
             "lite2": ("tf_efficientnet_lite2", 260)}  # fmt: skip
STORE = ROOT / "var" / "dev-photo-views"
# Fixed views: (x0, y0, x1, y1) in fractions of the squashed photo.
FIXED = {
    "full": (0.0, 0.0, 1.0, 1.0),
    "c": (0.1, 0.1, 0.9, 0.9),
    "tl": (0.0, 0.0, 0.8, 0.8),
    "tr": (0.2, 0.0, 1.0, 0.8),
    "bl": (0.0, 0.2, 0.8, 1.0),
    "br": (0.2, 0.2, 1.0, 1.0),
}


def _crop(x, box, side):
    """``x`` (N, 3, S, S) float, the box's part resized back to ``side`` (bilinear, as the module)."""
    from torch.nn import functional as F

    s = x.shape[-1]
    x0, y0, x1, y1 = (round(v * s) for v in box)
    part = x[:, :, y0:y1, x0:x1]
    if part.shape[-1] == side and part.shape[-2] == side:
        return part
    return F.interpolate(part, size=(side, side), mode="bilinear", align_corners=False)


def _random_views(x, count: int, seed: int):
    """``count`` random views of each image of ``x`` (float 0-255): list of (N, 3, S, S)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    n, _, s, _ = x.shape
    views = []
    for _ in range(count):
        out = torch.empty_like(x)
        for i in range(n):
            area = float(torch.empty(1).uniform_(0.6, 1.0, generator=g))
            ratio = float(torch.exp(torch.empty(1).uniform_(np.log(3 / 4), np.log(4 / 3), generator=g)))
            w = min(1.0, (area * ratio) ** 0.5)
            h = min(1.0, (area / ratio) ** 0.5)
            x0 = float(torch.rand(1, generator=g)) * (1 - w)
            y0 = float(torch.rand(1, generator=g)) * (1 - h)
            v = _crop(x[i : i + 1], (x0, y0, x0 + w, y0 + h), s)
            if float(torch.rand(1, generator=g)) < 0.5:
                v = v.flip(-1)
            b, c, sat = (1 + float(torch.empty(1).uniform_(-0.15, 0.15, generator=g)) for _ in range(3))
            grey = (0.299 * v[:, 0] + 0.587 * v[:, 1] + 0.114 * v[:, 2]).unsqueeze(1)
            v = grey + (v - grey) * sat
            v = (v - v.mean()) * c + v.mean()
            out[i] = (v * b).clamp(0, 255)[0]
        views.append(out)
    return views


def _pools(model, z):
    """Per pooling name, features of the normalised batch ``z``: the last layer average-pooled
    (``""``, what the recipe serves), max-pooled, both, on a 2 x 2 grid beside the global average,
    and the average-pooled outputs of the last three stages (taps) beside the last layer's."""
    import torch

    from ml.recognition.taps import grid_pool

    x = model.bn1(model.conv_stem(z))
    stages = []
    for block in model.blocks:
        x = block(x)
        stages.append(x.mean(dim=(2, 3)))
    last = model.bn2(model.conv_head(x))
    avg, peak = last.mean(dim=(2, 3)), last.amax(dim=(2, 3))
    return {
        "": avg,
        ":max": peak,
        ":avg+max": torch.cat([avg, peak], 1),
        ":pyr2": torch.cat([avg, grid_pool(last, 2)], 1),
        ":s5+last": torch.cat([stages[-2], avg], 1),
        ":s4+s5+s6": torch.cat(stages[-3:], 1),
    }


def extract(images: list[bytes], short: str, side: int, views: list[str], random_count: int) -> dict:
    """Features per view name of every photo, from the store when already there. The plain views
    ``full`` and ``fullm`` are also kept with the other poolings of ``_pools`` (``full:max``...)."""
    import timm
    import torch

    from ml.data import build_cache
    from ml.models import data_config, load_package_weights

    STORE.mkdir(parents=True, exist_ok=True)
    path = STORE / f"{short}@{side}.npz"
    have = dict(np.load(path)) if path.exists() else {}
    wanted = [v for v in views if v not in have or (v.startswith("full") and f"{v}:max" not in have)]
    wanted += [f"rand{i}" for i in range(random_count) if f"rand{i}" not in have]
    if not wanted:
        return have
    arch, _ = BACKBONES[short]
    model = timm.create_model(arch, pretrained=False)
    load_package_weights(model, arch)
    model = model.eval().to(memory_format=torch.channels_last)
    dcfg = data_config(model)
    cache, ok, _ = build_cache(images, side, dcfg["interpolation"], resize="squash")
    assert len(ok) == len(images)  # noqa: S101
    x = cache.float()
    mean = torch.tensor(dcfg["mean"]).view(1, 3, 1, 1) * 255
    std = torch.tensor(dcfg["std"]).view(1, 3, 1, 1) * 255
    randoms = _random_views(x, random_count, seed=12345) if any(w.startswith("rand") for w in wanted) else []

    def forward(batch, all_pools: bool) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            out: dict[str, list] = {}
            for s in range(0, len(batch), 16):
                z = ((batch[s : s + 16] - mean) / std).contiguous(memory_format=torch.channels_last)
                pools = (
                    _pools(model, z)
                    if all_pools
                    else {"": model.forward_head(model.forward_features(z), pre_logits=True)}
                )
                for key, f in pools.items():
                    out.setdefault(key, []).append(f)
            return {key: torch.cat(parts).numpy().astype(np.float64) for key, parts in out.items()}

    for name in wanted:
        t0 = time.monotonic()
        if name.startswith("rand"):
            batch = randoms[int(name[4:])]
        else:
            mirrored = name.endswith("m")
            batch = _crop(x, FIXED[name[:-1] if mirrored else name], side)
            batch = batch.flip(-1) if mirrored else batch
        for key, f in forward(batch, name.startswith("full")).items():
            have[name + key] = f
        np.savez(path, **have)
        print(f"  {short}@{side} {name}: {len(images)} in {time.monotonic() - t0:.1f} s", flush=True)
    return have


# --------------------------------------------------------------------------- heads

C_GRID = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
WIDE_C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)


def _standardise(x):
    mean, scale = x.mean(axis=0), x.std(axis=0)
    return mean, np.where(scale > 1e-6, scale, 1.0)


def _logistic_probs(xt, yt, xh, c, k):
    from sklearn.linear_model import LogisticRegression

    mean, scale = _standardise(xt)
    zt, zh = (xt - mean) / scale, (xh - mean) / scale
    # An L2-penalised linear model's weights lie in the span of its (centred) training rows: fitting
    # in an orthonormal basis of that span gives the same predictions with a fraction of the work.
    _, _, vt = np.linalg.svd(zt, full_matrices=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = LogisticRegression(C=c, max_iter=500, tol=1e-3).fit(zt @ vt.T, yt)
    p = np.zeros((len(xh), k))
    p[:, m.classes_] = m.predict_proba(zh @ vt.T)
    return p


def _ncm_probs(xt, yt, xh, k, temperature=20.0):
    def unit(a):
        return a / np.linalg.norm(a, axis=1, keepdims=True)

    mean = xt.mean(axis=0)
    zt, zh = unit(xt - mean), unit(xh - mean)
    centres = np.zeros((k, xt.shape[1]))
    for c in np.unique(yt):
        centres[c] = unit(zt[yt == c].mean(axis=0, keepdims=True))[0]
    logits = temperature * zh @ centres.T
    logits[:, np.setdiff1d(np.arange(k), np.unique(yt))] = -1e9
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _inner_choice(xt, yt, groups, k, grid, fit, seed):
    """The grid value with the fewest grouped 3-fold CV errors (log loss breaking ties)."""
    from sklearn.model_selection import StratifiedGroupKFold

    scores = {g: [0, 0.0] for g in grid}
    splitter = StratifiedGroupKFold(n_splits=3, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        folds = list(splitter.split(xt, yt, groups))
    for tr, he in folds:
        # Held-out rows: only each photo's first row (its plain view), as at test time.
        he = he[np.r_[True, groups[he][1:] != groups[he][:-1]]] if groups is not None else he
        for g in grid:
            p = fit(xt[tr], yt[tr], xt[he], g)
            scores[g][0] += int((p.argmax(axis=1) != yt[he]).sum())
            scores[g][1] += float(-np.log(p[np.arange(len(he)), yt[he]] + 1e-7).sum())
    return min(grid, key=lambda g: tuple(scores[g]))


def head_probs(kind, xt, yt, xh, k, seed, groups=None):
    """Probabilities of held-out rows ``xh`` from a head of ``kind`` fit on (xt, yt)."""
    if groups is None:
        groups = np.arange(len(yt))
    if kind in ("logistic", "wideC", "l2"):
        if kind == "l2":
            xt = xt / np.linalg.norm(xt, axis=1, keepdims=True)
            xh = xh / np.linalg.norm(xh, axis=1, keepdims=True)
        grid = WIDE_C_GRID if kind == "wideC" else C_GRID
        c = _inner_choice(xt, yt, groups, k, grid, lambda a, b, h, g: _logistic_probs(a, b, h, g, k), seed)
        return _logistic_probs(xt, yt, xh, c, k)
    if kind == "ncm":
        return _ncm_probs(xt, yt, xh, k)
    if kind == "blend":
        return (head_probs("logistic", xt, yt, xh, k, seed, groups) + _ncm_probs(xt, yt, xh, k)) / 2
    if kind == "lda":
        from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

        def fit(a, b, h, shrink):
            mean, scale = _standardise(a)
            m = LinearDiscriminantAnalysis(solver="lsqr", shrinkage=shrink).fit((a - mean) / scale, b)
            p = np.zeros((len(h), k))
            p[:, m.classes_] = m.predict_proba((h - mean) / scale)
            return p

        s = _inner_choice(xt, yt, groups, k, (0.3, 0.5, 0.7, 0.9), fit, seed)
        return fit(xt, yt, xh, s)
    if kind == "ridge":
        from sklearn.linear_model import RidgeClassifier

        def fit(a, b, h, alpha):
            mean, scale = _standardise(a)
            m = RidgeClassifier(alpha=alpha).fit((a - mean) / scale, b)
            d = np.full((len(h), k), -1e9)
            d[:, m.classes_] = m.decision_function((h - mean) / scale)
            e = np.exp(5 * (d - d.max(axis=1, keepdims=True)))
            return e / e.sum(axis=1, keepdims=True)

        a = _inner_choice(xt, yt, groups, k, (10.0, 100.0, 1000.0, 10000.0), fit, seed)
        return fit(xt, yt, xh, a)
    raise ValueError(kind)


# --------------------------------------------------------------------------- variants


def mean_views(store: dict, names: list[str]) -> np.ndarray:
    return sum(store[n] for n in names) / len(names)


# What every variant is compared with: the recipe's photo head as it stands (lite2 at 260 px, whole
# photo squashed, mirror images averaged, logistic with C by inner CV).
BASE = "lite2@260 tta:fm"
TTA = {
    "fm": ["full", "fullm"],
    "fm+c": ["full", "fullm", "c", "cm"],
    "fm+4": ["full", "fullm", "tl", "tr", "bl", "br"],
    "fm+5m": ["full", "fullm", "c", "cm", "tl", "tlm", "tr", "trm", "bl", "blm", "br", "brm"],
}


def variants(feats: dict, random_count: int) -> dict:
    """name -> (plain features (N, D), extra training rows per photo list[(N, D)], head kind)."""
    l2 = feats["lite2@260"]
    out = {}
    for tta, names in TTA.items():
        out[f"lite2@260 tta:{tta}"] = (mean_views(l2, names), [], "logistic")
    fm = mean_views(l2, TTA["fm"])
    for r in sorted({2, 4, random_count}):
        if r <= random_count:
            out[f"lite2@260 fm + aug{r}"] = (fm, [l2[f"rand{i}"] for i in range(r)], "logistic")
    if random_count:
        out[f"lite2@260 tta:fm+c + aug{random_count}"] = (
            mean_views(l2, TTA["fm+c"]),
            [l2[f"rand{i}"] for i in range(random_count)],
            "logistic",
        )
    for pool in (":max", ":avg+max", ":pyr2", ":s5+last", ":s4+s5+s6"):
        out[f"lite2@260 fm pool{pool}"] = (mean_views(l2, [f"full{pool}", f"fullm{pool}"]), [], "logistic")
    for key in feats:
        if key.startswith("lite2@") and key != "lite2@260":
            out[f"{key} fm"] = (mean_views(feats[key], TTA["fm"]), [], "logistic")
    sides = sorted(k for k in feats if k.startswith("lite2@"))
    if len(sides) > 1:
        out[f"ms {'+'.join(s[6:] for s in sides)} fm"] = (
            sum(mean_views(feats[s], TTA["fm"]) for s in sides) / len(sides), [], "logistic",
        )  # fmt: skip
    for other in ("lite1@240", "lite0@224"):
        if other in feats:
            out[f"{other[:5]}+lite2 fm"] = (
                np.concatenate([mean_views(feats[other], TTA["fm"]), fm], axis=1), [], "logistic",
            )  # fmt: skip
    for kind in ("wideC", "l2", "lda", "ridge", "ncm", "blend"):
        out[f"lite2@260 fm head:{kind}"] = (fm, [], kind)
    return out


def cv_variant(x, extra, kind, y, folds, seed):
    """Per-fold accuracies on the outer stratified folds (held-out rows: plain features only)."""
    from sklearn.model_selection import StratifiedKFold

    k = int(y.max()) + 1
    accs = []
    for tr, he in StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(x, y):
        rows = [x[tr]] + [e[tr] for e in extra]
        xt = np.concatenate(rows)
        yt = np.concatenate([y[tr]] * len(rows))
        groups = np.concatenate([np.arange(len(tr))] * len(rows))
        order = np.argsort(groups, kind="stable")  # each photo's rows together, plain view first
        p = head_probs(kind, xt[order], yt[order], x[he], k, seed, groups[order])
        accs.append(float((p.argmax(axis=1) == y[he]).mean()))
    return accs


def cv_recipe(x, xf, y, folds, seed):
    """The recipe's own head, as dev_photos.py scores it (mirror handling by its inner CV)."""
    from sklearn.model_selection import StratifiedKFold

    from ml.recognition import probe

    accs = []
    for tr, he in StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(x, y):
        head = probe.fit_linear_head(
            "multi_class", x[tr], y[tr], int(y.max()) + 1, flipped=xf[tr], seed=seed, average_flips=True
        )
        xh = (x[he] + xf[he]) / 2 if head.hyper["flip"] == "average" else x[he]
        accs.append(float((probe.predict("multi_class", head, xh).argmax(axis=1) == y[he]).mean()))
    return accs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--random", type=int, default=8, help="random views a photo (training rows)")
    parser.add_argument("--sides", default="300,330", help="further lite2 input sides")
    parser.add_argument("--others", default="lite1@240,lite0@224")
    parser.add_argument(
        "--only", default="", help="comma-separated substrings: variants to run (and the reference)"
    )
    parser.add_argument("--skip", default="", help="comma-separated substrings: variants to leave out")
    parser.add_argument("--extract-only", action="store_true")
    parser.add_argument("--recipe-base", action="store_true", help="also the recipe's own head (slow)")
    args = parser.parse_args()
    images, y, _ = bench_quality.photos()
    fixed = [v for name in FIXED for v in (name, name + "m")]
    feats = {"lite2@260": extract(images, "lite2", 260, fixed, args.random)}
    for side in (int(s) for s in args.sides.split(",") if s):
        feats[f"lite2@{side}"] = extract(images, "lite2", side, ["full", "fullm"], 0)
    for other in (o for o in args.others.split(",") if o):
        short, side = other.split("@")
        feats[other] = extract(images, short, int(side), ["full", "fullm"], 0)
    if args.extract_only:
        return
    # One BLAS thread for the heads: OpenBLAS's spinning threads made them many times slower on the
    # shared 2-core machine.
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
    table = variants(feats, args.random)
    if args.only:
        table = {k: v for k, v in table.items() if k == BASE or any(s in k for s in args.only.split(","))}
    if args.skip:
        table = {k: v for k, v in table.items() if k == BASE or not any(s in k for s in args.skip.split(","))}
    results: dict[str, list[list[float]]] = {}
    l2 = feats["lite2@260"]
    for seed in (int(s) for s in args.seeds.split(",")):
        train, _ = bench_quality.split(y, seed)  # the test side is never touched
        yt = y[train]
        if args.recipe_base:
            t0 = time.monotonic()
            accs = cv_recipe(l2["full"][train], l2["fullm"][train], yt, args.folds, seed)
            results.setdefault("recipe head, lite2@260", []).append(accs)
            print(f"seed {seed} recipe: {np.mean(accs):.4f} ({time.monotonic() - t0:.1f} s)", flush=True)
        for name, (x, extra, kind) in table.items():
            t0 = time.monotonic()
            accs = cv_variant(x[train], [e[train] for e in extra], kind, yt, args.folds, seed)
            results.setdefault(name, []).append(accs)
            print(f"seed {seed} {name}: {np.mean(accs):.4f} ({time.monotonic() - t0:.1f} s)", flush=True)
    base = [np.mean(a) for a in results[BASE]]
    print("\n| variant | CV accuracy per seed (fold sd) | mean | vs the reference, per seed |")
    print("| --- | --- | --- | --- |")
    for name, per_seed in sorted(results.items(), key=lambda kv: -np.mean([np.mean(a) for a in kv[1]])):
        means = [np.mean(a) for a in per_seed]
        cells = ", ".join(f"{m:.3f} ({np.std(a, ddof=1):.3f})" for m, a in zip(means, per_seed, strict=True))
        diffs = ", ".join(f"{m - b:+.3f}" for m, b in zip(means, base, strict=True))
        print(f"| {name} | {cells} | {np.mean(means):.4f} | {diffs} |")


if __name__ == "__main__":
    main()
