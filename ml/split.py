"""Seeded, stratified train/test split. Pure Python and numpy, no torch."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Sequence

import numpy as np


def stratified_split(
    keys: Sequence[Hashable],
    strata: Sequence[Hashable],
    forced_test: Sequence[bool],
    test_fraction: float = 0.2,
    seed: int = 0,
) -> list[bool]:
    """Return a test mask (True = test side) aligned with ``keys``.

    Items are grouped by stratum (a label id, a tuple of label ids, a regression bin...).
    Each stratum puts ``round(n * test_fraction)`` items on the test side, but a stratum
    with at least two items always gets at least one test and one train item, so every
    label is both learned and measured. ``forced_test`` items are always test and count
    towards their stratum's share. The result depends only on the seed and on the set of
    (key, stratum) pairs, not on the order they come in, so re-training the same images
    gives the same split.
    """
    n = len(keys)
    if len(strata) != n or len(forced_test) != n:
        raise ValueError("keys, strata and forced_test must have the same length")
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError("test_fraction must be in [0, 1)")

    groups: dict[Hashable, list[int]] = defaultdict(list)
    for i, stratum in enumerate(strata):
        groups[stratum].append(i)

    mask = [bool(f) for f in forced_test]
    rng = np.random.default_rng(seed)
    # Sorted strata and keys: the random draws land on the same items whatever the input order.
    for stratum in sorted(groups, key=repr):
        members = sorted(groups[stratum], key=lambda i: repr(keys[i]))
        size = len(members)
        want = int(round(size * test_fraction))
        if size >= 2:
            want = min(max(want, 1), size - 1)
        forced = [i for i in members if mask[i]]
        free = [i for i in members if not mask[i]]
        extra = max(0, want - len(forced))
        # Never take the last free item when that would leave the stratum without training data.
        if size >= 2 and free:
            extra = min(extra, len(free) - 1)
        if extra:
            order = rng.permutation(len(free))
            for j in order[:extra]:
                mask[free[j]] = True
    return mask
