"""An RBF-kernel head for a probe: frozen features, a Gaussian kernel against landmarks, a linear layer.

A linear head on a frozen net's middle-layer features (``ml.recognition.taps``) draws straight boundaries in
a space the net never learned for these classes. The same head on an RBF kernel's features draws
curved ones at no extra risk of forgetting what the net knows (nothing in the net moves). The
kernel is approximated the Nyström way (scikit-learn's ``Nystroem``): the kernel against up to
``LANDMARKS`` training images' features, times a fixed ``m x m`` normalisation, gives features
whose dot products approximate the kernel; a logistic (or ridge) head on them is a kernel machine.

Measured before it was built, on four Fashion-MNIST slices the benchmark never uses (lite0's
stages 3-5 at 128 px on a 2 x 2 grid, 1,200 training images, 2,000 others to test;
``bench/dev_slices.py``'s slices): the linear head 0.8920 / 0.8915 / 0.8855 / 0.8880 (mean
0.8893), this head with gamma = 1 / features on standardised features 0.9010 / 0.8940 / 0.8915 /
0.9005 (mean 0.8968), better on every slice; on the last layer's globally pooled features it did
not help (0.8378 against 0.8445), so only middle-layer probes get it.

Served as plain tensor arithmetic (standardise, squared distances as ``|z|^2 - 2 z.c + |c|^2``,
``exp``, two matrix products): one forward pass, TorchScript tracing and the ONNX export take it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ml.recognition.probe import blas_threads

LANDMARKS = 1000
_MIN_SCALE = 1e-6


class RBFHead(nn.Module):
    """Standardise ``in_dim`` features, take the RBF kernel against ``landmarks`` stored points,
    project it (Nyström), then one linear layer. Every array is a buffer saved with the weights."""

    def __init__(self, in_dim: int, landmarks: int, num_outputs: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("scale", torch.ones(in_dim))
        self.register_buffer("components", torch.zeros(landmarks, in_dim))
        self.register_buffer("components_sq", torch.zeros(landmarks))
        self.register_buffer("projection", torch.eye(landmarks))
        self.register_buffer("gamma", torch.ones(()))
        self.linear = nn.Linear(landmarks, num_outputs)

    @property
    def landmarks(self) -> int:
        return int(self.components.shape[0])

    def kernel_features(self, feats: torch.Tensor) -> torch.Tensor:
        z = (feats.float() - self.mean) / self.scale
        distance = (z * z).sum(dim=1, keepdim=True) - 2.0 * z @ self.components.T + self.components_sq
        return torch.exp(-self.gamma * distance.clamp_min(0.0)) @ self.projection

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.linear(self.kernel_features(feats))


class KernelMap:
    """A Nyström map fitted on training features (no targets), in numpy, and the same in torch."""

    def __init__(self, features: np.ndarray, seed: int = 0, landmarks: int = LANDMARKS):
        from sklearn.kernel_approximation import Nystroem

        self.mean = features.mean(axis=0)
        spread = features.std(axis=0)
        # A feature constant on the training side keeps scale 1 (as scikit-learn's StandardScaler
        # does): dividing by ~0 would throw every unseen image far from all landmarks.
        self.scale = np.where(spread > _MIN_SCALE, spread, 1.0)
        z = (features - self.mean) / self.scale
        # scikit-learn's gamma="scale" on standardised features: 1 / (features x their variance 1).
        self.gamma = 1.0 / features.shape[1]
        count = min(landmarks, features.shape[0])
        with blas_threads():
            self.nystroem = Nystroem(kernel="rbf", gamma=self.gamma, n_components=count, random_state=seed)
            self.nystroem.fit(z)

    @property
    def landmarks(self) -> int:
        return int(self.nystroem.components_.shape[0])

    def transform(self, features: np.ndarray | None) -> np.ndarray | None:
        if features is None:
            return None
        with blas_threads():
            return self.nystroem.transform((features - self.mean) / self.scale)

    def load_into(self, head: RBFHead) -> None:
        """Write the map into ``head``'s buffers (its landmark count must match)."""
        components = self.nystroem.components_
        values = {
            "mean": self.mean,
            "scale": self.scale,
            "components": components,
            "components_sq": (components * components).sum(axis=1),
            # transform(z) = K(z, components) @ normalization_.T
            "projection": self.nystroem.normalization_.T,
            "gamma": np.asarray(self.gamma),
        }
        for name, value in values.items():
            buffer = getattr(head, name)
            buffer.copy_(torch.as_tensor(np.array(value), dtype=buffer.dtype))  # a copy: contiguous
