"""ml.active: uncertainty from plain probabilities and a diverse order over descriptors."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from ml import active


def test_margin_is_one_for_a_coin_toss_and_zero_for_a_sure_answer():
    probs = np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [0.6, 0.3, 0.1]])
    assert np.allclose(active.uncertainty_margin(probs), [1.0, 0.0, 0.7])


def test_multi_label_uncertainty_is_measured_from_each_tags_threshold():
    probs = np.array([[0.2, 0.99], [0.01, 0.995]])
    found = active.uncertainty_multi_label(probs, np.array([0.2, 0.5]))
    assert found[0] == 1.0  # the first tag sits on its threshold
    assert found[1] < 0.1


def test_boxes_near_half_are_uncertain_and_an_empty_image_is_in_between():
    found = active.uncertainty_boxes([[0.5, 0.99], [0.98], [], [0.01]])
    assert np.allclose(found, [1.0, 0.04, 0.5, 0.5])


def test_diverse_order_does_not_take_near_copies_of_the_most_uncertain_image():
    rng = np.random.default_rng(0)
    # Ten near-copies of one confusing picture (uncertainty 0.9), and five different pictures a
    # little less uncertain (0.8), each far from the others.
    copies = np.tile([1.0, 0.0, 0.0, 0.0, 0.0, 0.0], (10, 1)) + rng.normal(0, 0.01, (10, 6))
    others = np.eye(6)[1:] * 1.0
    descriptors = np.vstack([copies, others])
    uncertainty = np.array([0.9] * 10 + [0.8] * 5)
    order = active.select_diverse(uncertainty, descriptors, 6)
    assert order[0] < 10  # the most uncertain first
    assert sorted(order[1:].tolist()) == list(range(10, 15))  # then the distinct ones, not the copies
    # Uncertainty alone would take the ten copies first.
    assert set(np.argsort(-uncertainty, kind="stable")[:6]) <= set(range(10))


def test_diverse_order_handles_fewer_images_than_asked_and_none():
    assert active.select_diverse(np.array([0.1, 0.9]), np.eye(2), 5).tolist() == [1, 0]
    assert active.select_diverse(np.zeros(0), np.zeros((0, 3)), 5).tolist() == []


def test_coarse_descriptor_puts_near_copies_closer_than_different_pictures():
    def jpeg(colour, dot):
        image = Image.new("RGB", (40, 30), colour)
        image.putpixel(dot, (0, 0, 0))
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        return buffer.getvalue()

    left = Image.new("RGB", (40, 30), (200, 10, 10))
    left.paste((10, 10, 200), (0, 0, 20, 30))
    buffer = io.BytesIO()
    left.save(buffer, "PNG")
    a = active.coarse_descriptor(buffer.getvalue())
    b = active.coarse_descriptor(jpeg((200, 10, 10), (1, 1)))
    c = active.coarse_descriptor(jpeg((200, 10, 10), (30, 20)))
    assert np.linalg.norm(b - c) < np.linalg.norm(a - b)
