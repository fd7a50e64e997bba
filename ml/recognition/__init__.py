"""Image recognition: the recipe that searches for and trains a model, and what it serves.

``recipe`` is the plan (``fit``); its steps use ``search`` (the candidates tried, in order),
``candidates`` and ``photo`` (how each kind is fitted and scored), ``selection`` (the validation
slice, the choice, the winner's refit) and ``context`` (the data, budget and ``Candidate`` they
share). The nets and heads a version may serve are ``probe`` (linear heads fitted with
scikit-learn), ``kernel``, ``taps``, ``blend`` and ``multi``; ``train`` trains a whole net;
``metrics`` scores the test side; ``predictor`` serves a saved version and ``export`` writes it as
ONNX. It builds on the shared modules of ``ml`` and never on ``ml.detection``.
"""
