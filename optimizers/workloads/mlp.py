"""``TabularMLP``: an MLP regressing scikit-learn's bundled diabetes data."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from ._common import InMemoryWorkload, diabetes, seeded_model, stream
from .base import Batch

__all__ = ["TabularMLP"]

_SPLIT, _NOISE, _EXTRA = 1, 3, 4  # salt 2 is the minibatch stream (INDEX_SALT)


class TabularMLP(InMemoryWorkload):
    """Diabetes progression (442 patients, 10 standardised features, standardised target); 88 held out.

    ``size`` widens (64 * size) and deepens (1 + size hidden layers) the net. Traits:

    - ``high_dimensional``: ``EXTRA_FEATURES * size`` standard-normal distractor features appended
      (train and held-out alike);
    - ``noisy``: Gaussian noise (σ = ``TARGET_NOISE``, in target standard deviations) on the
      training targets (held-out clean).
    """

    name: ClassVar[str] = "mlp"
    family: ClassVar[str] = "mlp"
    description: ClassVar[str] = "MLP regression on scikit-learn's diabetes data"
    architectures: ClassVar[tuple[str, ...]] = ("mlp",)
    domains: ClassVar[tuple[str, ...]] = ("tabular",)
    supported_traits: ClassVar[frozenset[str]] = frozenset({"high_dimensional", "noisy"})
    metric_name: ClassVar[str] = "mse"
    higher_is_better: ClassVar[bool] = False

    HELDOUT: ClassVar[int] = 88
    EXTRA_FEATURES: ClassVar[int] = 256
    TARGET_NOISE: ClassVar[float] = 0.5

    def __init__(
        self, *, size: int = 1, seed: int = 0, traits: Sequence[str] = (), device: str | torch.device = "cpu"
    ) -> None:
        super().__init__(size=size, seed=seed, traits=traits, device=device)
        features, target = diabetes()
        x, y = torch.from_numpy(features.copy()), torch.from_numpy(target.copy())
        if "high_dimensional" in self.traits:
            extra = torch.randn(len(x), self.EXTRA_FEATURES * size, generator=stream(seed, 0, _EXTRA))
            x = torch.cat([x, extra], dim=1)
        order = torch.randperm(len(y), generator=stream(seed, 0, _SPLIT))
        held, train = order[: self.HELDOUT], order[self.HELDOUT :]
        train_y = y[train]
        if "noisy" in self.traits:
            train_y = train_y + self.TARGET_NOISE * torch.randn(len(train_y), generator=stream(seed, 0, _NOISE))
        self.features = x.shape[1]
        self.train_x, self.train_y = x[train].to(self.device), train_y.to(self.device)
        self.heldout_x, self.heldout_y = x[held].to(self.device), y[held].to(self.device)
        self.batch_size = 64

    def build_model(self) -> nn.Module:
        width, hidden = 64 * self.size, 1 + self.size

        def factory() -> nn.Module:
            layers: list[nn.Module] = []
            d = self.features
            for _ in range(hidden):
                layers += [nn.Linear(d, width), nn.ReLU()]
                d = width
            return nn.Sequential(*layers, nn.Linear(d, 1), nn.Flatten(0))

        return seeded_model(self.seed, factory, self.device)

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        features, target = batch
        return F.mse_loss(model(features), target)
