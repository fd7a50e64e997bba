"""Serve a saved version: load model.safetensors + model.json, preprocess, batched forward.

The version's ``model.onnx`` (written at the end of training, FP32 or INT8: ml/recognition/serving.py;
exported here on first load for versions trained before) is what the ``onnx`` mode serves and
what a download hands out: one file, so the service and a downloaded copy answer alike.
"""

from __future__ import annotations

import os
import pathlib
import tempfile
import warnings
from collections.abc import Sequence

import torch

from ml import artifacts, weights
from ml.data import normalize
from ml.images import ImageInput
from ml.inference import accelerate
from ml.models import create_empty_model, features_and_logits, postprocess
from ml.recognition import blend, multi, taps
from ml.recognition.served import ServedVersion, answers
from ml.runtime import forward_batch_size

ONNX_OPSET = 17


class _Exportable(torch.nn.Module):
    """The predictor as one graph: uint8 images in; normalisation, the net and the output
    activation inside; ``scores`` (``probs`` / values) and ``features`` (penultimate) out."""

    def __init__(self, predictor: Predictor):
        super().__init__()
        self.model = predictor.model
        self.mean, self.std = predictor.mean, predictor.std
        self.task_type = predictor.task_type
        self.target_mean, self.target_std = predictor.target_mean, predictor.target_std

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = normalize(images, self.mean, self.std)
        features, logits = features_and_logits(self.model, x)
        return postprocess(logits, self.task_type, self.target_mean, self.target_std), features.float()


def model_from_meta(meta: dict) -> torch.nn.Module:
    """A saved version's net with random weights (a timm net, a ``Blend``, a ``MultiProbe`` or a
    ``Taps``, as model.json says), ready for its state_dict."""
    if meta.get("blend"):
        return blend.create_empty(meta)
    if meta.get("multi"):
        return multi.create_empty(meta)
    if meta.get("taps"):
        return taps.create_empty(meta["taps"], int(meta["num_outputs"]))
    return create_empty_model(meta["architecture"], int(meta["num_outputs"]))


class Predictor(ServedVersion):
    """A trained version ready to classify, with torch.

    Loads from its directory alone (architecture, input size, normalisation, labels and
    thresholds come from model.json; weights from safetensors, never unpickled), and runs
    the same preprocessing as training. ml/recognition/served.py serves a version whose
    ``model.onnx`` can do it alone without any of this; this class builds the torch net (training's
    evaluation, the export, the ``jit`` / ``bf16`` / ``eager`` modes, versions without a file).
    """

    def __init__(
        self, model: torch.nn.Module, meta: dict, device: torch.device, directory: str | os.PathLike = ""
    ):
        super().__init__(meta, directory)
        self.model = model
        self.device = device
        # normalised batch -> (penultimate features, logits). An inference mode (ml/inference.py)
        # swaps in an equivalent traced/frozen or bf16 callable without touching the rest.
        self.forward_fn = lambda x: features_and_logits(self.model, x)

    @classmethod
    def load(
        cls,
        directory: str | os.PathLike,
        device: str | torch.device | None = None,
        num_threads: int | None = None,
        mode: str | None = None,
        passes: int = 1,
    ) -> Predictor:
        """Load the version saved in ``directory``. ``device`` None = cuda if available.
        ``num_threads`` sets torch's (process-wide) intra-op thread count and ONNX Runtime's;
        ``passes`` ONNX Runtime passes of one batch run side by side (ml/runtime.py). ``mode``
        (``auto``, ``onnx``, ``jit``, ``bf16``, ``eager``; ml/inference.py) optimises the forward
        for serving and warms it up; None leaves the plain model, as training and export want it."""
        if num_threads:
            torch.set_num_threads(num_threads)
        dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        meta = artifacts.load_meta(directory)
        model = model_from_meta(meta)
        model.load_state_dict(weights.load_weights(directory, "cpu"), strict=True)
        model = model.to(dev).to(memory_format=torch.channels_last).eval()
        predictor = cls(model, meta, dev, directory)
        if mode is not None:
            accelerate(predictor, mode, num_threads, passes)
        return predictor

    def write_onnx(self, target: str | os.PathLike) -> pathlib.Path:
        """Export the plain (FP32) model to ONNX at ``target``.

        Input ``images``: uint8 (batch, 3, S, S), batch dynamic. Outputs ``scores``: (batch,
        labels) probabilities, or (batch,) values for regression; ``features``: (batch, F)
        penultimate features (the descriptor before L2 normalisation).
        """
        module = _Exportable(self).eval()
        example = torch.zeros(1, 3, self.input_size, self.input_size, dtype=torch.uint8)
        with warnings.catch_warnings():
            # The TorchScript-based exporter is deprecated in favour of the dynamo one, which needs
            # extra packages and is much slower for these CNNs; its output is the same ONNX.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module.cpu(),
                (example,),
                str(target),
                input_names=["images"],
                output_names=["scores", "features"],
                dynamic_axes={"images": {0: "batch"}, "scores": {0: "batch"}, "features": {0: "batch"}},
                opset_version=ONNX_OPSET,
                dynamo=False,
            )
        self.model.to(self.device)
        return pathlib.Path(target)

    def onnx_path(self, rewrite: bool = False) -> pathlib.Path:
        """The version's ``model.onnx``; a version trained before there was one gets its FP32 export
        written once (beside it and renamed, so a concurrent reader never sees half a file).
        ``rewrite``: export again (an export made before ``features`` was an output)."""
        target = self.directory / artifacts.ONNX_FILE
        if rewrite or not target.is_file():
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".export.", suffix=".onnx")
            os.close(fd)
            try:
                self.write_onnx(tmp)
                os.replace(tmp, target)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        return target

    def preprocess(self, image: ImageInput) -> torch.Tensor:
        """Decode + resize one image to the version's uint8 (3, S, S) input, as a tensor."""
        return torch.from_numpy(super().preprocess(image))

    def predict(self, images: Sequence[ImageInput], descriptor: bool = False) -> list[dict]:
        """Preprocess ``images`` and run them as one batch; see ``predict_tensor``."""
        if not images:
            return []
        batch = torch.stack([self.preprocess(image) for image in images])
        return self.predict_tensor(batch, descriptor=descriptor)

    def predict_batch(self, inputs: Sequence[torch.Tensor], descriptor: bool = False) -> list[dict]:
        """``predict_tensor`` over a list of ``preprocess`` outputs, stacked into one batch."""
        return self.predict_tensor(torch.stack([torch.as_tensor(x) for x in inputs]), descriptor=descriptor)

    def predict_tensor(self, batch: torch.Tensor, descriptor: bool = False) -> list[dict]:
        """The forward over a uint8 (N, 3, S, S) batch from ``preprocess``: one pass, or on a CPU
        passes of ``forward_batch_size`` images (large images run faster a few at a time).

        Each result has ``probs`` (aligned to ``labels``; softmax for multi_class, sigmoid
        for multi_label: compare with ``thresholds``) or ``value`` (regression, in target
        units), plus ``descriptor`` (L2-normalised penultimate features) when asked
        (ml/recognition/served.py's ``answers``).
        """
        if self.onnx is not None:
            return self.onnx_answers(batch.numpy(), descriptor)
        with torch.inference_mode():
            x = normalize(batch.to(self.device), self.mean, self.std)
            step = forward_batch_size(x.shape[-1], self.device, x.shape[0])
            parts = [self.forward_fn(x[start : start + step]) for start in range(0, max(len(x), 1), step)]
            feats, logits = (torch.cat(pieces) for pieces in zip(*parts, strict=True))
            out = postprocess(logits, self.task_type, self.target_mean, self.target_std).cpu()
            features = feats.float().cpu().numpy() if descriptor else None
        return answers(out.numpy(), features, self.task_type, descriptor)
