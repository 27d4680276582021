"""``TabularMLP``: an MLP on scikit-learn's bundled diabetes data (regression, or a rare-outcome classifier)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from ._common import InMemoryWorkload, auc, diabetes, seeded_model, stream
from .base import Batch

__all__ = ["TabularMLP"]

_SPLIT, _NOISE, _EXTRA = 1, 3, 4  # salt 2 is the minibatch stream (INDEX_SALT)


class TabularMLP(InMemoryWorkload):
    """Diabetes progression (442 patients, 10 standardised features, standardised target); 88 held out.

    ``size`` widens (64 * size) and deepens (1 + size hidden layers) the net. Traits:

    - ``imbalanced``: the task becomes a rare-outcome classifier: "does the disease progress into the
      top ``POSITIVE_RATE`` of patients?" (binary cross-entropy on a logit, held-out AUC). The split is
      stratified, so train and held-out both carry that rate;
    - ``sparse_features``: each feature is replaced by a one-hot code of its ``BINS * size`` quantile
      bins, as categorical columns are fed to a tabular net (10 ones in ``10 * BINS * size`` columns);
    - ``high_dimensional``: ``EXTRA_FEATURES * size`` standard-normal distractor features appended
      (train and held-out alike);
    - ``noisy``: Gaussian noise (σ = ``TARGET_NOISE``, in target standard deviations) on the
      training targets, or with ``imbalanced`` ``LABEL_NOISE`` of the training labels flipped
      (held-out clean).
    """

    name: ClassVar[str] = "mlp"
    family: ClassVar[str] = "mlp"
    description: ClassVar[str] = "MLP on scikit-learn's diabetes data: regression, or a rare-outcome classifier"
    architectures: ClassVar[tuple[str, ...]] = ("mlp", "tabnet", "ft_transformer")
    domains: ClassVar[tuple[str, ...]] = ("tabular",)
    supported_traits: ClassVar[frozenset[str]] = frozenset(
        {"high_dimensional", "noisy", "imbalanced", "sparse_features"}
    )
    metric_name: str = "mse"
    higher_is_better: bool = False

    HELDOUT: ClassVar[int] = 88
    EXTRA_FEATURES: ClassVar[int] = 256
    TARGET_NOISE: ClassVar[float] = 0.5
    POSITIVE_RATE: ClassVar[float] = 0.1
    LABEL_NOISE: ClassVar[float] = 0.05
    BINS: ClassVar[int] = 16

    def __init__(
        self, *, size: int = 1, seed: int = 0, traits: Sequence[str] = (), device: str | torch.device = "cpu"
    ) -> None:
        super().__init__(size=size, seed=seed, traits=traits, device=device)
        features, target = diabetes()
        x, y = torch.from_numpy(features.copy()), torch.from_numpy(target.copy())
        self.binary = "imbalanced" in self.traits
        if self.binary:
            y = (y >= torch.quantile(y, 1.0 - self.POSITIVE_RATE)).float()
            self.metric_name, self.higher_is_better = "auc", True
        if "sparse_features" in self.traits:
            x = _one_hot_bins(x, self.BINS * size)
        if "high_dimensional" in self.traits:
            extra = torch.randn(len(x), self.EXTRA_FEATURES * size, generator=stream(seed, 0, _EXTRA))
            x = torch.cat([x, extra], dim=1)
        order = torch.randperm(len(y), generator=stream(seed, 0, _SPLIT))
        if self.binary:  # stratified: the held-out set carries the same positive rate as the training set
            positives, negatives = order[y[order] > 0.5], order[y[order] <= 0.5]
            k = round(self.HELDOUT * len(positives) / len(y))
            held = torch.cat([positives[:k], negatives[: self.HELDOUT - k]])
            train = torch.sort(torch.cat([positives[k:], negatives[self.HELDOUT - k :]])).values
        else:
            held, train = order[: self.HELDOUT], order[self.HELDOUT :]
        train_y = y[train]
        if "noisy" in self.traits:
            g = stream(seed, 0, _NOISE)
            if self.binary:
                flip = torch.rand(len(train_y), generator=g) < self.LABEL_NOISE
                train_y = torch.where(flip, 1.0 - train_y, train_y)
            else:
                train_y = train_y + self.TARGET_NOISE * torch.randn(len(train_y), generator=g)
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
        if self.binary:
            return F.binary_cross_entropy_with_logits(model(features), target)
        return F.mse_loss(model(features), target)

    def metric(self, model: nn.Module, batch: Batch) -> float:
        features, target = batch
        if self.binary:
            return auc(model(features), target)
        return super().metric(model, batch)  # the loss: mse


def _one_hot_bins(x: torch.Tensor, bins: int) -> torch.Tensor:
    """Each column replaced by a one-hot code of its quantile bin (ties share a bin): (n, d) -> (n, d * bins)."""
    edges = torch.quantile(x, torch.linspace(0.0, 1.0, bins + 1)[1:-1], dim=0)  # (bins - 1, d) inner edges
    codes = torch.stack([torch.bucketize(x[:, j].contiguous(), edges[:, j].contiguous()) for j in range(x.shape[1])], 1)
    return F.one_hot(codes, bins).flatten(1).float()
