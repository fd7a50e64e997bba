"""What classify and the model cache need from a kind of task, keyed by ``Task.type``.

The model cache (cache.py) and the request handling in services.py (picking the version,
reading records concurrently, one batched forward pass, per-record errors) are written once. A
kind of task plugs in:

- ``load(directory, mode=, num_threads=)``: a predictor for the version saved in ``directory``
  (ml/ does the loading; ``mode`` is ``VF_INFERENCE_MODE``). The predictor has ``labels``,
  ``preprocess(image)`` and ``predict_batch(inputs, descriptor=)``, and may have ``draft(image)``
  (prepare an opened image to decode at the reduced scale ``preprocess`` needs; its ``size`` is
  then what the request's pixel budget counts);
- ``answer(prediction, predictor, names, threshold)``: the response keys of one record;
- ``names(labels=)`` (optional): the current names of the version's labels by id; default the
  recognition labels' (``label_names`` in services.py).

Image classification registers its three task types in ``InferenceConfig.ready``; object
detection its ``detection`` type (apps/inference/detection.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from apps.core.kinds import KindRegistry


@dataclass(frozen=True)
class InferenceKind:
    load: Callable[..., object]
    answer: Callable[..., dict]
    names: Callable[..., dict] | None = None


KINDS: KindRegistry[InferenceKind] = KindRegistry("predictor")
