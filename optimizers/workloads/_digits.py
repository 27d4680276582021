"""The digits image-classification data shared by the CNN and ViT workloads."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from ._common import InMemoryWorkload, digits, stream
from .base import Batch

__all__ = ["DigitsWorkload"]

_SPLIT, _NOISE, _IMBALANCE = 1, 3, 4  # salt 2 is the minibatch stream (INDEX_SALT)


class DigitsWorkload(InMemoryWorkload):
    """scikit-learn's 8x8 digits (1,797 images, 10 classes), upsampled to ``8 * size`` pixels a side.

    Traits (training split only; the held-out split stays clean and balanced):

    - ``noisy``: ``LABEL_NOISE`` of the training labels flipped to another class;
    - ``imbalanced``: class ``c`` keeps ``RAREST ** (c / 9)`` of its training images (geometric: the
      rarest class keeps 5%);
    - ``high_dimensional``: images upsampled four times further (``32 * size`` pixels a side).
    """

    domains: ClassVar[tuple[str, ...]] = ("computer_vision",)
    supported_traits: ClassVar[frozenset[str]] = frozenset({"noisy", "imbalanced", "high_dimensional"})
    metric_name: str = "accuracy"
    higher_is_better: bool = True

    CLASSES: ClassVar[int] = 10
    HELDOUT: ClassVar[int] = 360
    LABEL_NOISE: ClassVar[float] = 0.2
    RAREST: ClassVar[float] = 0.05
    HIGH_DIMENSIONAL_FACTOR: ClassVar[int] = 4

    def __init__(
        self, *, size: int = 1, seed: int = 0, traits: Sequence[str] = (), device: str | torch.device = "cpu"
    ) -> None:
        super().__init__(size=size, seed=seed, traits=traits, device=device)
        images, labels = digits()
        x = torch.from_numpy(images.copy()).unsqueeze(1)
        x = (x - x.mean()) / x.std()
        y = torch.from_numpy(labels.copy())
        self.resolution = 8 * size * (self.HIGH_DIMENSIONAL_FACTOR if "high_dimensional" in self.traits else 1)
        if self.resolution != 8:
            x = F.interpolate(x, size=(self.resolution, self.resolution), mode="bilinear", align_corners=False)
        order = torch.randperm(len(y), generator=stream(seed, 0, _SPLIT))
        held, train = order[: self.HELDOUT], order[self.HELDOUT :]
        if "imbalanced" in self.traits:
            keep = []
            for c in range(self.CLASSES):
                members = train[y[train] == c]
                n = max(1, round(len(members) * self.RAREST ** (c / (self.CLASSES - 1))))
                keep.append(members[:n])
            train = torch.sort(torch.cat(keep)).values
        train_y = y[train].clone()
        if "noisy" in self.traits:
            g = stream(seed, 0, _NOISE)
            flip = torch.rand(len(train_y), generator=g) < self.LABEL_NOISE
            shift = torch.randint(1, self.CLASSES, (len(train_y),), generator=g)
            train_y = torch.where(flip, (train_y + shift) % self.CLASSES, train_y)
        self.train_x, self.train_y = x[train].to(self.device), train_y.to(self.device)
        self.heldout_x, self.heldout_y = x[held].to(self.device), y[held].to(self.device)
        self.batch_size = 64 * size

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        images, labels = batch
        return F.cross_entropy(model(images), labels)

    def metric(self, model: nn.Module, batch: Batch) -> float:
        images, labels = batch
        return float((model(images).argmax(-1) == labels).float().mean())
