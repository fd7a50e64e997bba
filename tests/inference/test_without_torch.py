"""A web process serves recognition and detection versions from their model.onnx without ever
importing torch: Django and its URLs, an upload, loading both kinds through their kind's loader and
answering. The answers are those of the torch-loaded predictor in ``onnx`` mode, to the bit."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ml.detection.detector import DetectConfig, DetectionExample, DetectionPredictor, fit_detector
from ml.detection.export import export_detector
from ml.loading import load_recognition
from ml.recognition.predictor import Predictor
from ml.recognition.recipe import fit
from tests.detection.scenes import png, scenes
from tests.ml.conftest import colour_data, scratch_train_config

pytest.importorskip("onnxruntime")
ROOT = Path(__file__).resolve().parents[2]
DETECTION_LABELS = [{"id": "sq", "name": "square"}, {"id": "di", "name": "disc"}]

# Run in a fresh interpreter: the test process has torch already.
WEB_PROCESS = """
import io, json, os, sys
import django
django.setup()
from django.urls import get_resolver
get_resolver().url_patterns  # every view module, as the first request imports them
from apps.core.kinds import KINDS
from apps.images.services import prepare_image
recognition_dir, detection_dir, images_dir = sys.argv[1:4]
images = [open(os.path.join(images_dir, name), "rb").read() for name in sorted(os.listdir(images_dir))]
prepare_image(images[0], noresize=False)  # an upload: stored copy and thumbnail
recognition = KINDS.get("multi_class").predictor.load(recognition_dir, mode="auto", num_threads=1, passes=2)
detection = KINDS.get("detection").predictor.load(detection_dir, mode="auto", num_threads=1, passes=2)
answers = {
    "type": [type(recognition).__name__, type(detection).__name__],
    "recognition": recognition.predict_batch([recognition.preprocess(i) for i in images], descriptor=True),
    "detection": detection.predict_batch([detection.preprocess(i) for i in images], min_prob=0.05),
    "torch": sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision", "timm")),
}
print(json.dumps(answers))
"""


def _jpeg(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="JPEG", quality=92)
    return out.getvalue()


@pytest.fixture(scope="module")
def versions(tmp_path_factory):
    """A recognition version and a detector, each with its model.onnx, and a few JPEG records."""
    items, test_mask, labels = colour_data()
    recognition = tmp_path_factory.mktemp("recognition")
    fit(items, test_mask, labels, "multi_class", config=scratch_train_config(), out_dir=recognition)
    Predictor.load(recognition, device="cpu").onnx_path()  # the FP32 file, if training left none
    data = scenes(16, seed=5)
    examples = [DetectionExample(image=png(image), boxes=b, labels=lab) for image, b, lab in data]
    detection = tmp_path_factory.mktemp("detection")
    config = DetectConfig(input_size=96, epochs=4, batch_size=8, seed=3, num_threads=1)
    fit_detector(examples, [i >= 12 for i in range(16)], DETECTION_LABELS, config, out_dir=detection)
    export_detector(detection)
    records = tmp_path_factory.mktemp("records")
    for n, (image, _, _) in enumerate(data[:5]):
        (records / f"{n}.jpg").write_bytes(_jpeg(np.asarray(image)))
    return recognition, detection, records


def test_a_web_process_serves_both_kinds_without_importing_torch(versions):
    recognition, detection, records = versions
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": "config.settings"}
    done = subprocess.run(
        [sys.executable, "-c", WEB_PROCESS, str(recognition), str(detection), str(records)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    served = json.loads(done.stdout.strip().splitlines()[-1])
    assert served["torch"] == []
    assert served["type"] == ["ServedPredictor", "ServedDetector"]

    images = [path.read_bytes() for path in sorted(records.iterdir())]
    with_torch = Predictor.load(recognition, device="cpu", mode="onnx", num_threads=1, passes=2)
    assert with_torch.onnx is not None and with_torch.model is None
    expected = with_torch.predict_batch([with_torch.preprocess(i) for i in images], descriptor=True)
    assert [row["probs"] for row in served["recognition"]] == [row["probs"] for row in expected]
    np.testing.assert_allclose(
        [row["descriptor"] for row in served["recognition"]],
        [row["descriptor"] for row in expected],
        rtol=0,
        atol=1e-6,
    )

    torch_model = DetectionPredictor.load(detection, device="cpu", mode="eager")
    boxes = torch_model.predict_batch([torch_model.preprocess(i) for i in images], min_prob=0.05)
    assert sum(len(found["objects"]) for found in served["detection"]) > 0
    for onnx_found, torch_found in zip(served["detection"], boxes, strict=True):
        best = [o for o in torch_found["objects"] if o["prob"] >= 0.3]
        for found in best:  # the objects the torch model is sure of, found alike (test_export: IoU)
            assert any(
                o["label"] == found["label"] and abs(o["prob"] - found["prob"]) <= 0.01
                for o in onnx_found["objects"]
            ), (found, onnx_found)


def test_a_version_without_its_file_is_loaded_with_torch(versions, tmp_path):
    recognition, _, _ = versions
    folder = tmp_path / "old"
    folder.mkdir()
    for name in ("model.json", "model.safetensors"):
        (folder / name).write_bytes((recognition / name).read_bytes())
    predictor = load_recognition(folder, mode="auto", num_threads=1)
    assert isinstance(predictor, Predictor) and predictor.onnx is not None
    assert (folder / "model.onnx").is_file()  # written once: the next load needs no torch
    assert type(load_recognition(folder, mode="auto", num_threads=1)).__name__ == "ServedPredictor"
    assert isinstance(load_recognition(folder, mode="jit", num_threads=1), Predictor)


def test_a_file_onnx_runtime_refuses_is_opened_once_and_torch_serves_the_version(versions, tmp_path, caplog):
    recognition, _, _ = versions
    folder = tmp_path / "refused"
    folder.mkdir()
    for name in ("model.json", "model.safetensors"):
        (folder / name).write_bytes((recognition / name).read_bytes())
    (folder / "model.onnx").write_bytes(b"not an ONNX file")
    with caplog.at_level("ERROR"):
        predictor = load_recognition(folder, mode="auto", num_threads=1)
    assert isinstance(predictor, Predictor) and predictor.onnx is None and predictor.model is not None
    refusals = [r for r in caplog.records if "ONNX Runtime cannot" in r.getMessage()]
    assert len(refusals) == 1, [r.getMessage() for r in refusals]
    assert (folder / "model.onnx").read_bytes() == b"not an ONNX file"  # left as it was
    picture = io.BytesIO()
    Image.new("RGB", (40, 40), (200, 30, 30)).save(picture, format="PNG")
    assert len(predictor.predict([picture.getvalue()])) == 1
