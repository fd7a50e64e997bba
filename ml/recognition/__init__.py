"""Image recognition: the recipe that searches for and trains a model (``recipe``), the nets and
heads it may serve (``probe``, ``kernel``, ``taps``, ``blend``, ``multi``), the loop that trains a
whole net (``train``), test-side metrics, the predictor that serves a saved version and its ONNX
export. It builds on the shared modules of ``ml`` and never on ``ml.detection``."""
