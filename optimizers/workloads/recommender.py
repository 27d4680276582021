"""``EmbeddingRecommender``: user/item embedding tables + an MLP tower predicting clicks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from ._common import auc, seeded_model, stream
from .base import Batch, Workload

__all__ = ["EmbeddingRecommender"]

_WORLD, _INDEX, _CLICK, _HELDOUT = 1, 2, 3, -1


class _TwoTower(nn.Module):
    def __init__(self, users: int, items: int, dim: int, hidden: int) -> None:
        super().__init__()
        self.users = nn.Embedding(users, dim)
        self.items = nn.Embedding(items, dim)
        nn.init.normal_(self.users.weight, std=0.1)
        nn.init.normal_(self.items.weight, std=0.1)
        self.tower = nn.Sequential(nn.Linear(2 * dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        u, i = self.users(pairs[:, 0]), self.items(pairs[:, 1])
        return self.tower(torch.cat([u, i], dim=-1)).squeeze(-1) + (u * i).sum(-1)  # type: ignore[no-any-return]


class EmbeddingRecommender(Workload):
    """Click prediction on synthetic interactions: ``256 * size`` users, ``1024 * size`` items.

    A hidden ground truth (8 latent factors per user and item plus an item bias) sets each
    (user, item) click probability; interactions draw users uniformly and items with Zipf
    (power-law, exponent ``ZIPF``) popularity, so most rows of the item table are rarely touched:
    sparse features are the default shape. Batches are ``(pairs (B, 2) long, clicks (B,) float)``;
    loss BCE on logits, metric AUC. ``size`` scales users, items, embedding width (16 * size),
    tower (64 * size) and batch (256 * size).

    Traits:

    - ``sparse_features``: ``SPARSE_FACTOR`` times more items in the catalogue (a longer tail:
      each batch touches a smaller share of the table);
    - ``imbalanced``: the base click rate drops from about 35% to about 3%.
    """

    name: ClassVar[str] = "recommender"
    family: ClassVar[str] = "recommender"
    description: ClassVar[str] = "user/item embeddings + MLP tower predicting clicks on Zipf-popular synthetic items"
    architectures: ClassVar[tuple[str, ...]] = (
        "embedding", "dlrm", "ncf", "two_tower", "wide_and_deep", "deepfm", "sasrec", "bert4rec",
    )  # fmt: skip
    domains: ClassVar[tuple[str, ...]] = ("recommender",)
    supported_traits: ClassVar[frozenset[str]] = frozenset({"sparse_features", "imbalanced"})
    metric_name: str = "auc"
    higher_is_better: bool = True

    ZIPF: ClassVar[float] = 1.1
    SPARSE_FACTOR: ClassVar[int] = 8
    FACTORS: ClassVar[int] = 8
    HELDOUT: ClassVar[int] = 4096

    def __init__(
        self, *, size: int = 1, seed: int = 0, traits: Sequence[str] = (), device: str | torch.device = "cpu"
    ) -> None:
        super().__init__(size=size, seed=seed, traits=traits, device=device)
        self.num_users = 256 * size
        self.num_items = 1024 * size * (self.SPARSE_FACTOR if "sparse_features" in self.traits else 1)
        self.batch_size = 256 * size
        g = stream(seed, 0, _WORLD)
        scale = 1.5 / self.FACTORS**0.5
        self._user_factors = torch.randn(self.num_users, self.FACTORS, generator=g) * scale**0.5
        self._item_factors = torch.randn(self.num_items, self.FACTORS, generator=g) * scale**0.5
        self._item_bias = 0.5 * torch.randn(self.num_items, generator=g)
        self.base_logit = -4.5 if "imbalanced" in self.traits else -1.0
        ranks = torch.arange(1, self.num_items + 1, dtype=torch.float64)
        popularity = ranks**-self.ZIPF
        self.popularity = (popularity / popularity.sum())[torch.randperm(self.num_items, generator=g)]
        self._heldout = self._draw(self.HELDOUT, stream(seed, _HELDOUT, _INDEX), stream(seed, _HELDOUT, _CLICK))

    def click_probability(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """The ground-truth click probability of (user, item) pairs (CPU tensors)."""
        affinity = (self._user_factors[users] * self._item_factors[items]).sum(-1)
        return torch.sigmoid(affinity + self._item_bias[items] + self.base_logit)

    def _draw(self, n: int, index: torch.Generator, click: torch.Generator) -> Batch:
        users = torch.randint(self.num_users, (n,), generator=index)
        items = torch.multinomial(self.popularity, n, replacement=True, generator=index)
        clicks = torch.bernoulli(self.click_probability(users, items), generator=click)
        return torch.stack([users, items], dim=1).to(self.device), clicks.to(self.device)

    def build_model(self) -> nn.Module:
        return seeded_model(
            self.seed,
            lambda: _TwoTower(self.num_users, self.num_items, 16 * self.size, 64 * self.size),
            self.device,
        )

    def train_batch(self, step: int) -> Batch:
        return self._draw(self.batch_size, stream(self.seed, step, _INDEX), stream(self.seed, step, _CLICK))

    def heldout_batches(self) -> list[Batch]:
        return [self._heldout]

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        pairs, clicks = batch
        return F.binary_cross_entropy_with_logits(model(pairs), clicks)

    def metric(self, model: nn.Module, batch: Batch) -> float:
        pairs, clicks = batch
        return auc(model(pairs), clicks)
