"""Image recognition and object detection: trainers, predictors and their shared parts. No Django.

``ml.recognition`` (the recipe that searches and trains a recognition model, its probes, heads and
nets, the predictor and ONNX export) and ``ml.detection`` (the detector, its evaluation) sit above
the shared modules beside them: ``ml.models`` (backbones and pretrained weights), ``ml.data``
(caches, augmentation), ``ml.images`` (decoding and resizing), ``ml.artifacts`` (a version on
disk) and ``ml.weights`` (its weights), ``ml.inference`` (torch's serving modes), ``ml.runtime``
(ONNX Runtime), ``ml.threads``, ``ml.split`` and ``ml.config``. ``ml.loading`` sits above both and
loads a saved version for serving. Import the modules you need: ``ml.loading``, the ``served``
modules, ``ml.images``, ``ml.runtime``, ``ml.artifacts``, ``ml.split`` and ``ml.config`` never
import torch, so a web process that serves versions from their ONNX files never loads it.
"""

from __future__ import annotations

import os

# Short HTTP timeouts for hub downloads (ml.models), in case the hub accepts the connection
# and then stalls. huggingface_hub reads them once, when timm first imports it, so they are
# set here, before any ml module can import timm; an explicit environment value wins.
os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "10")
os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "30")
