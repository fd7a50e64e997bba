"""Image recognition trainer, predictor and inference modes (timm). No Django imports.

Import the modules you need (``ml.train``, ``ml.predictor``, ``ml.inference``, ...); ``ml.split``
and ``ml.config`` stay cheap for the web process (no torch).
"""

from __future__ import annotations

import os

# Short HTTP timeouts for hub downloads (ml.models), in case the hub accepts the connection
# and then stalls. huggingface_hub reads them once, when timm first imports it, so they are
# set here, before any ml module can import timm; an explicit environment value wins.
os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "10")
os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "30")
