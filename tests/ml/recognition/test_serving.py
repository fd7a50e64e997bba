"""The served model.onnx: FP32 when training ends, INT8 afterwards where it agrees with FP32 on the
test side; the service's answers are the file's, descriptors included, and a version folder loads
on its own."""

from __future__ import annotations

import dataclasses
import os
import shutil

import numpy as np
import onnx
import pytest
import torch

from ml import artifacts
from ml.config import TrainConfig
from ml.recognition import serving
from ml.recognition.predictor import Predictor
from ml.recognition.recipe import fit
from tests.ml.conftest import colour_data, scratch_train_config

ort = pytest.importorskip("onnxruntime")


def _quantized(path) -> bool:
    return any(node.op_type == "QuantizeLinear" for node in onnx.load(str(path)).graph.node)


def _run_file(path, batch: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    scores, features = session.run(["scores", "features"], {"images": batch.numpy()})
    return scores, features


def _answers_as_the_eager_model(served: Predictor, directory, images) -> None:
    eager = Predictor.load(directory, device="cpu", mode="eager")
    batch = torch.stack([eager.preprocess(image) for image in images])
    np.testing.assert_allclose(
        [a["probs"] for a in served.predict_tensor(batch)],
        [a["probs"] for a in eager.predict_tensor(batch)],
        atol=1e-4,
    )


def _sides(items, test_mask):
    training = [image for (image, _), test in zip(items, test_mask, strict=True) if not test]
    test = [image for (image, _), test in zip(items, test_mask, strict=True) if test]
    return training, test


@pytest.fixture(scope="module")
def _fitted(tmp_path_factory):
    """One fit of the colour data set for the module (the same seed gave each test the same model
    before; a fit is seconds); ``trained`` hands each test a copy of its folder."""
    items, test_mask, labels = colour_data()
    out_dir = tmp_path_factory.mktemp("serving-fit")
    result = fit(items, test_mask, labels, "multi_class", config=scratch_train_config(), out_dir=out_dir)
    return out_dir, result


@pytest.fixture
def trained(_fitted, tmp_path, colour_dataset):
    """A copy of the module's trained version folder for this test alone (tests replace and
    damage its files), the items it was trained on and the fit's result (read only)."""
    source, result = _fitted
    directory = tmp_path / "version"
    shutil.copytree(source, directory)
    return directory, colour_dataset[0], result


def test_training_ends_with_the_fp32_file_served_and_the_int8_attempt_pending(trained):
    directory, _, result = trained
    record = result.metrics["serving"]
    assert record["precision"] == "fp32" and record["int8"] == serving.INT8_PENDING
    assert record["file"] == "model.onnx" and not _quantized(directory / "model.onnx")
    assert record["limits"] == {"top1_agreement": 0.995, "max_prob_diff": 0.03}
    assert artifacts.load_meta(directory)["serving"] == record


def test_int8_is_kept_when_it_agrees_and_the_service_answers_as_the_file(trained, colour_dataset):
    directory, items, _ = trained
    training, test = _sides(items, colour_dataset[1])
    record = serving.try_int8(directory, training_images=training, test_images=test, num_threads=1)
    assert record["precision"] == "int8" and record["int8"] == serving.INT8_ACCEPTED, record
    assert record["agreement"]["top1_agreement"] >= 0.995
    assert record["agreement"]["max_prob_diff"] <= 0.03
    assert record["agreement"]["images"] == len(test)
    assert record["calibration_images"] == serving.CALIBRATION_IMAGES
    int8_file = directory / record["file"]
    assert record["file"] == serving.int8_file_name(int8_file) and _quantized(int8_file)

    # The service's local folder holds the served file as model.onnx (apps/training/artifacts.py).
    os.replace(int8_file, directory / "model.onnx")
    served = Predictor.load(directory, device="cpu", mode="auto", num_threads=1)
    assert served.onnx is not None
    batch = torch.stack([served.preprocess(image) for image, _ in items[:10]])
    answers = served.predict_tensor(batch, descriptor=True)
    scores, features = _run_file(directory / "model.onnx", batch)
    # The same runtime on the same file: the same numbers, not merely close ones.
    assert np.array_equal(np.array([a["probs"] for a in answers], dtype=np.float32), scores)
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    np.testing.assert_allclose([a["descriptor"] for a in answers], unit, atol=1e-6)
    # INT8 keeps the FP32 model's answers within the recorded limits.
    fp32 = Predictor.load(directory, device="cpu", mode="eager").predict_tensor(batch, descriptor=True)
    probs = np.array([a["probs"] for a in fp32])
    assert (probs.argmax(1) == scores.argmax(1)).all()
    assert np.abs(probs - scores).max() <= 0.03


def test_int8_is_refused_when_calibration_would_move_answers_beyond_the_limit(
    tmp_path, colour_dataset, scratch_config
):
    """A limit no quantised model meets (no probability may move at all), taken from the version's
    own config: INT8 is refused, says why, and no INT8 file is left; model.onnx stays the FP32
    export, answering as the eager model does."""
    items, test_mask, labels = colour_dataset
    config = dataclasses.replace(scratch_config, int8_max_prob_diff=0.0)
    fit(items, test_mask, labels, "multi_class", config=config, out_dir=tmp_path)
    training, test = _sides(items, test_mask)
    record = serving.try_int8(tmp_path, training_images=training, test_images=test, num_threads=1)
    assert record["int8"] == serving.INT8_REFUSED and "precision" not in record
    assert record["reason"] == serving.MSG_DISAGREES
    assert record["agreement"]["max_prob_diff"] > 0.0
    assert record["limits"]["max_prob_diff"] == 0.0
    assert not list(tmp_path.glob("model.int8-*")) and not _quantized(tmp_path / "model.onnx")

    served = Predictor.load(tmp_path, device="cpu", mode="onnx", num_threads=1)
    _answers_as_the_eager_model(served, tmp_path, [image for image, _ in items[:6]])


def test_int8_is_refused_when_it_changes_top1_answers(trained, colour_dataset):
    """Calibration that changes a top-1 answer beyond the limit is refused: here the ranges are
    calibrated on black images only, so every colour saturates to the same activations."""
    directory, items, _ = trained
    _, test = _sides(items, colour_dataset[1])
    from PIL import Image

    black = [Image.new("RGB", (32, 32)) for _ in range(8)]
    record = serving.try_int8(directory, training_images=black, test_images=test, num_threads=1)
    assert record["agreement"]["top1_agreement"] < 0.995, record
    assert record["int8"] == serving.INT8_REFUSED


def test_agreement_needs_both_the_top1_share_and_the_probability_limit():
    config = TrainConfig()
    fp32 = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]], dtype=np.float32)
    close = fp32 + np.float32(0.01) * np.array([[-1, 1], [-1, 1], [1, -1]], dtype=np.float32)
    assert serving.agrees(serving.agreement(fp32, close), config)
    flipped = close.copy()
    flipped[1] = [0.45, 0.55]  # one top-1 answer of three changes (and moves 0.15)
    figures = serving.agreement(fp32, flipped)
    assert figures["top1_agreement"] == pytest.approx(2 / 3, abs=1e-6)
    assert not serving.agrees(figures, config)
    moved = fp32 + np.float32(0.05) * np.array([[-1, 1], [-1, 1], [1, -1]], dtype=np.float32)
    assert serving.agreement(fp32, moved)["top1_agreement"] == 1.0
    assert not serving.agrees(serving.agreement(fp32, moved), config)  # same top-1, moved 0.05


def test_the_version_folder_loads_alone_and_an_older_version_gets_its_export(trained, tmp_path_factory):
    directory, items, _ = trained
    alone = tmp_path_factory.mktemp("copied") / "version"
    shutil.copytree(directory, alone)
    served = Predictor.load(alone, device="cpu", mode="onnx", num_threads=1)
    batch = torch.stack([served.preprocess(image) for image, _ in items[:3]])
    first = served.predict_tensor(batch, descriptor=True)
    assert len(first[0]["descriptor"]) == len(_run_file(alone / "model.onnx", batch)[1][0])

    # A version trained before model.onnx was written: its FP32 export is made on first load.
    (alone / "model.onnx").unlink()
    older = Predictor.load(alone, device="cpu", mode="onnx", num_threads=1)
    assert (alone / "model.onnx").is_file() and not _quantized(alone / "model.onnx")
    again = older.predict_tensor(batch, descriptor=True)
    assert [np.argmax(a["probs"]) for a in again] == [np.argmax(a["probs"]) for a in first]
    assert len(again[0]["descriptor"]) == len(first[0]["descriptor"])


def test_a_file_the_runtime_cannot_open_is_served_by_torch_instead(trained):
    """A damaged model.onnx does not take the version down: the predictor runs the torch model."""
    directory, items, _ = trained
    (directory / "model.onnx").write_bytes(b"not an onnx graph")
    served = Predictor.load(directory, device="cpu", mode="onnx", num_threads=1)
    assert served.onnx is None
    _answers_as_the_eager_model(served, directory, [image for image, _ in items[:4]])


def test_an_onnx_served_version_drops_its_torch_model_and_answers_in_passes_as_the_file(trained, monkeypatch):
    """ONNX Runtime holds the served weights (the torch copy is dropped), and a batch larger than
    one CPU pass runs in passes that answer as one run of the whole batch through the file."""
    import ml.runtime

    directory, items, _ = trained
    served = Predictor.load(directory, device="cpu", mode="onnx", num_threads=1)
    assert served.onnx is not None and served.model is None
    side = served.input_size
    monkeypatch.setattr(ml.runtime, "CPU_BATCH_PIXELS", 2 * side * side)  # passes of 2 images
    batch = torch.stack([served.preprocess(image) for image, _ in items[:5]])
    answers = served.predict_tensor(batch, descriptor=True)
    scores, features = _run_file(directory / "model.onnx", batch)
    np.testing.assert_allclose([a["probs"] for a in answers], scores, atol=1e-5)
    norms = features / np.linalg.norm(features, axis=1, keepdims=True)
    np.testing.assert_allclose([a["descriptor"] for a in answers], norms, atol=1e-5)
    # Passes side by side (VF_INFERENCE_PASSES): 1 + 1 at a time, the same answers.
    beside = Predictor.load(directory, device="cpu", mode="onnx", num_threads=1, passes=2)
    np.testing.assert_allclose([a["probs"] for a in beside.predict_tensor(batch)], scores, atol=1e-5)


def test_the_calibration_reader_gives_every_image_once_per_pass_and_rewinds():
    from ml.recognition.serving import BATCH, _Calibration

    images = torch.arange(BATCH + 3, dtype=torch.uint8).reshape(-1, 1, 1, 1).expand(-1, 3, 2, 2).contiguous()
    reader = _Calibration(images)
    for _ in range(2):
        seen = []
        while (batch := reader.get_next()) is not None:
            seen.extend(batch["images"][:, 0, 0, 0].tolist())
        assert seen == list(range(BATCH + 3))
        reader.rewind()
