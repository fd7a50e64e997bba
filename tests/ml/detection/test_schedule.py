"""The detector's time-budget planner and its cosine, with injected epoch times (no clock): a slow
start that still fits the budget changes nothing, a budget that cannot fit shortens the plan once
and the rate goes on falling from where it was."""

from __future__ import annotations

import math

import pytest

from ml.detection.detector import DetectConfig, _BudgetPlan, _Cosine, _lr_at

# The hard scenes' epochs at 384 px on one core: the first 8 draw fresh views (22 s, 8.5 s of it
# making the views), later ones train on cached views (13.5 s).
FRESH, VIEW, CACHED, VIEWS = 22.0, 8.5, 13.5, 8


def _run(budget_s: float, planned: int, times: list[tuple[float, float]], start: float = 5.0):
    """Epochs as ``_fit`` runs them: (seconds, seconds making views) each; the plan after each."""
    plan, elapsed, epochs, plans = _BudgetPlan(budget_s), start, planned, []
    epoch = 0
    while epoch < epochs:
        seconds, view = times[epoch]
        epoch += 1
        elapsed += seconds
        plan.record(seconds, view, fresh=epoch <= VIEWS)
        epochs = plan.shorten(epoch, epochs, elapsed, VIEWS)
        plans.append(epochs)
    return plans, elapsed


def _epochs(n: int, slow_first: int = 0, slowdown: float = 1.0) -> list[tuple[float, float]]:
    times = []
    for epoch in range(1, n + 1):
        seconds, view = (FRESH, VIEW) if epoch <= VIEWS else (CACHED, 0.0)
        factor = slowdown if epoch <= slow_first else 1.0
        times.append((seconds * factor, view * factor))
    return times


def test_cached_epochs_are_costed_as_cached_so_a_plan_that_fits_is_kept():
    # 20 epochs: 8 x 22 + 12 x 13.5 = 338 s. Costed at the fresh epochs' 22 s they would be 440 s
    # and a 400 s budget would have cut the plan after the first epoch.
    plans, elapsed = _run(400, 20, _epochs(20))
    assert plans == [20] * 20 and elapsed < 400


def test_a_slow_start_that_still_fits_the_budget_does_not_change_the_plan():
    # The first 3 epochs 1.5 times slower (a neighbour's load): 33 s instead of 22 s, 371 s in all.
    slow = _epochs(20, slow_first=3, slowdown=1.5)
    plans, elapsed = _run(450, 20, slow)
    assert plans == [20] * 20 and elapsed < 450
    # The same plan and so the same rate at every step as on a quiet machine.
    assert plans == _run(450, 20, _epochs(20))[0]


def test_a_budget_that_cannot_fit_the_plan_shortens_it_and_never_lengthens_it_again():
    # 2 times slower for the first 8 epochs: after the first the 20 epochs project to ~560 s.
    plans, elapsed = _run(400, 20, _epochs(20, slow_first=8, slowdown=2.0) + _epochs(20))
    assert plans[0] < 20
    assert all(a >= b for a, b in zip(plans, plans[1:], strict=False))  # never lengthened
    assert len(plans) == plans[-1] and elapsed <= 400


def test_a_budget_too_short_for_one_more_epoch_stops_the_training():
    plan = _BudgetPlan(60)
    plan.record(FRESH, VIEW, fresh=True)
    plan.record(FRESH, VIEW, fresh=True)
    # 49 s gone: the next epoch (22 s) and the final evaluation (13.5 s) would overrun 60 s.
    assert plan.fit(2, 20, 49.0, VIEWS) == 2


def test_without_cached_views_every_epoch_is_costed_whole():
    plan = _BudgetPlan(300)
    plan.record(20.0, 0.0, fresh=True)
    # 20 s an epoch and 20 s for the evaluation: 12 more epochs fit after the first 25 s.
    assert plan.fit(1, 30, 25.0, math.inf) == 13


def test_a_replanned_cosine_goes_on_from_the_rate_it_had_reached():
    config = DetectConfig(lr=1e-3, warmup_steps=5)
    cosine = _Cosine(200, config)
    assert [cosine.rate(s) for s in range(200)] == pytest.approx([_lr_at(s, 200, config) for s in range(200)])

    for total in (120, 300):  # shortened by the budget, or stretched for a set still learning
        cosine = _Cosine(200, config)
        before = [cosine.rate(s) for s in range(80)]
        cosine.replan(80, total)
        after = [cosine.rate(s) for s in range(80, total)]
        rates = before + after
        assert all(a >= b for a, b in zip(rates[5:], rates[6:], strict=False))  # falls, never rises
        assert after[0] == pytest.approx(before[-1], rel=0.02)  # no jump at the re-plan
        assert after[-1] == pytest.approx(1e-3 * 0.05, rel=0.02)  # the floor at the new end
