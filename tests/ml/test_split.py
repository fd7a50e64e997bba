"""The seeded, stratified train/test split used by the Django side."""

from __future__ import annotations

from collections import Counter

import pytest

from ml.split import stratified_split


def _data(sizes: dict[str, int]):
    keys, strata = [], []
    for stratum, n in sizes.items():
        for i in range(n):
            keys.append(f"{stratum}-{i}")
            strata.append(stratum)
    return keys, strata


def test_it_puts_about_a_fifth_of_each_stratum_on_the_test_side():
    keys, strata = _data({"a": 50, "b": 20, "c": 10})
    mask = stratified_split(keys, strata, [False] * len(keys), seed=1)
    tests = Counter(s for s, m in zip(strata, mask, strict=True) if m)
    assert tests == {"a": 10, "b": 4, "c": 2}


def test_every_stratum_with_two_items_gets_one_test_and_one_train_item():
    keys, strata = _data({"a": 2, "b": 3, "c": 4, "single": 1})
    mask = stratified_split(keys, strata, [False] * len(keys), seed=0)
    for stratum in ("a", "b", "c"):
        sides = [m for s, m in zip(strata, mask, strict=True) if s == stratum]
        assert any(sides) and not all(sides), stratum
    # A stratum of one is only ever trained on.
    assert mask[strata.index("single")] is False


def test_forced_test_items_are_always_test_and_count_towards_the_share():
    keys, strata = _data({"a": 10})
    forced = [i < 2 for i in range(10)]
    mask = stratified_split(keys, strata, forced, seed=3)
    assert mask[0] and mask[1]
    assert sum(mask) == 2  # round(10 * 0.2) = 2 already met by the forced ones


def test_forcing_every_item_still_keeps_them_all_on_the_test_side():
    keys, strata = _data({"a": 3})
    assert stratified_split(keys, strata, [True] * 3) == [True] * 3


def test_it_is_reproducible_for_a_seed_and_independent_of_input_order():
    keys, strata = _data({"a": 30, "b": 17})
    forced = [False] * len(keys)
    first = stratified_split(keys, strata, forced, seed=7)
    assert stratified_split(keys, strata, forced, seed=7) == first
    order = list(reversed(range(len(keys))))
    shuffled = stratified_split([keys[i] for i in order], [strata[i] for i in order], forced, seed=7)
    assert dict(zip([keys[i] for i in order], shuffled, strict=True)) == dict(zip(keys, first, strict=False))
    assert stratified_split(keys, strata, forced, seed=8) != first


def test_it_rejects_lists_of_different_lengths():
    with pytest.raises(ValueError):
        stratified_split(["a", "b"], ["x"], [False, False])
