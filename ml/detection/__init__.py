"""Object detection: FCOS on the offline ImageNet backbone (``detector``: train, save, serve) and
its test-side metrics (``evaluate``). It builds on the shared modules of ``ml`` and never on
``ml.recognition``."""
