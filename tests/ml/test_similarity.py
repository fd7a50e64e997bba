"""ml/similarity.py: the index finds what exact search finds, exact below its size threshold and
an IVF above it, and keeps up with vectors added later."""

from __future__ import annotations

import numpy as np

from ml import similarity


def _clustered(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.maximum(rng.normal(size=(50, dim)), 0)
    x = centres[rng.integers(0, 50, n)] + 0.7 * np.maximum(rng.normal(size=(n, dim)), 0)
    return x.astype(np.float32)


def test_a_small_index_is_exact_and_reports_cosine_distances():
    x = _clustered(500, 32, 0)
    index = similarity.build_index(np.arange(500) + 1000, x)
    assert index.exact
    ids, distances = index.search(x[:5], 3)
    assert ids[:, 0].tolist() == [1000, 1001, 1002, 1003, 1004]  # each vector is its own nearest
    assert np.allclose(distances[:, 0], 0.0, atol=1e-5)
    positions, reference = similarity.exact_search(x, x[:5], 3)
    assert (ids - 1000).tolist() == positions.tolist()
    assert np.allclose(distances, reference, atol=1e-5)
    assert np.all(np.diff(distances, axis=1) >= -1e-6)  # nearest first


def test_an_ivf_index_finds_at_least_95_percent_of_the_exact_top_10():
    x = _clustered(6000, 48, 1)
    queries = _clustered(100, 48, 2)
    index = similarity.build_index(np.arange(6000), x, exact_below=1000)
    assert not index.exact
    ids, _ = index.search(queries, 10)
    positions, _ = similarity.exact_search(x, queries, 10)
    recall = np.mean(
        [len(set(a) & set(b)) / 10 for a, b in zip(ids.tolist(), positions.tolist(), strict=True)]
    )
    assert recall >= 0.95


def test_vectors_added_later_are_found():
    x = _clustered(3000, 16, 3)
    index = similarity.build_index(np.arange(2000), x[:2000], exact_below=1000)
    index.add(np.arange(2000, 3000), x[2000:])
    assert index.size == 3000
    ids, distances = index.search(x[2500:2501], 1)
    assert ids[0, 0] == 2500 and distances[0, 0] < 1e-3


def test_fewer_vectors_than_asked_pad_with_minus_one():
    index = similarity.build_index(np.array([7, 8]), np.eye(2, dtype=np.float32))
    ids, distances = index.search(np.array([[1.0, 0.0]]), 4)
    assert ids[0].tolist() == [7, 8, -1, -1]
    assert np.isinf(distances[0, 2:]).all()
    assert abs(distances[0, 1] - 1.0) < 1e-6  # orthogonal: cosine distance 1


def test_an_index_read_back_from_its_bytes_answers_the_same():
    x = _clustered(3000, 24, 4)
    index = similarity.build_index(np.arange(3000) * 7, x, exact_below=1000)
    again = similarity.loads(similarity.dumps(index))
    assert not again.exact and again.index.nprobe == index.index.nprobe
    queries = _clustered(20, 24, 5)
    assert np.array_equal(again.search(queries, 10)[0], index.search(queries, 10)[0])
    small = similarity.build_index(np.arange(10), x[:10])
    assert similarity.loads(similarity.dumps(small)).exact
