"""Helpers shared by the proxy workloads: seeded generators, seeded model construction, bundled data."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import TypeVar

import numpy as np
import torch
from torch import nn

from .base import Batch, Workload

__all__ = ["InMemoryWorkload", "auc", "diabetes", "digits", "seeded_model", "stream"]

M = TypeVar("M", bound=nn.Module)

_MASK64 = (1 << 64) - 1


def stream(seed: int, step: int, salt: int = 0) -> torch.Generator:
    """A CPU generator for one (seed, step, salt): the same numbers on every run and every device.

    Data is drawn on the CPU and then moved, so a GPU trial sees exactly the data a CPU trial sees.
    ``salt`` separates independent streams of one step (indices, label noise, lengths, ...).
    """
    h = 0xCBF29CE484222325  # FNV-1a over the three integers
    for part in (seed, step, salt):
        h = ((h ^ (part & _MASK64)) * 0x100000001B3) & _MASK64
        h ^= h >> 29
    return torch.Generator().manual_seed(h & 0x7FFF_FFFF_FFFF_FFFF)


def seeded_model(seed: int, factory: Callable[[], M], device: torch.device) -> M:
    """``factory()`` under ``torch.manual_seed(seed)`` without disturbing the global RNG, moved to ``device``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = factory()
    return model.to(device)


@cache
def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits: images (1797, 8, 8) float32 in [0, 1], labels (1797,) int64."""
    from sklearn.datasets import load_digits

    data = load_digits()
    images = np.asarray(data.images, dtype=np.float32) / 16.0
    labels = np.asarray(data.target, dtype=np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


@cache
def diabetes() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled diabetes regression set, standardised: x (442, 10), y (442,) float32."""
    from sklearn.datasets import load_diabetes

    data = load_diabetes()
    x = np.asarray(data.data, dtype=np.float64)
    y = np.asarray(data.target, dtype=np.float64)
    x = ((x - x.mean(0)) / x.std(0)).astype(np.float32)
    y = ((y - y.mean()) / y.std()).astype(np.float32)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def auc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties); 0.5 when one class is absent."""
    scores = scores.detach().flatten().double()
    positive = labels.flatten() > 0.5
    n_pos = int(positive.sum())
    n_neg = positive.numel() - n_pos
    if n_pos == 0 or n_neg == 0:
        return 0.5
    _, inverse, counts = torch.unique(scores, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()
    average_rank = ends - (counts.double() - 1) / 2  # 1-based rank, averaged over each run of ties
    ranks = average_rank[inverse]
    u = float(ranks[positive].sum()) - n_pos * (n_pos + 1) / 2
    return u / (n_pos * n_neg)


#: salt of the minibatch-index stream of in-memory workloads
INDEX_SALT = 2


class InMemoryWorkload(Workload):
    """A workload whose whole data set sits in tensors: minibatches are seeded row samples.

    Subclasses fill ``train_x``, ``train_y``, ``heldout_x``, ``heldout_y`` and ``batch_size`` in ``__init__``.
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    heldout_x: torch.Tensor
    heldout_y: torch.Tensor

    def train_batch(self, step: int) -> Batch:
        generator = stream(self.seed, step, INDEX_SALT)
        index = torch.randint(len(self.train_y), (self.batch_size,), generator=generator).to(self.device)
        return self.train_x[index], self.train_y[index]

    def heldout_batches(self) -> list[Batch]:
        return [(self.heldout_x, self.heldout_y)]
