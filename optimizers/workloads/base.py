"""The proxy-workload contract: a small, seeded training problem a trial can run any optimizer on.

A workload owns its model, its data (generated in-process or taken from data sets that ship inside
installed packages; nothing is downloaded), its training objective and its held-out evaluation.
``size`` scales width/depth/data so a GPU trial is not trivially small; ``traits`` are the
Profile's data characteristics the data should show (sparse, noisy labels, imbalanced,
variable-length sequences, non-stationary drift, high-dimensional).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

__all__ = ["TRAITS", "Batch", "Evaluation", "Workload"]

#: Data characteristics a workload may be asked to show (004 §2.4 names).
TRAITS = frozenset(
    {"sparse_features", "noisy", "imbalanced", "variable_length_sequences", "non_stationary", "high_dimensional"}
)

Batch = tuple[Any, Any]


@dataclass(frozen=True)
class Evaluation:
    loss: float  # held-out loss (lower is better)
    metric: float  # the workload's own metric
    metric_name: str
    higher_is_better: bool


class Workload(ABC):
    """One proxy training problem. Subclasses set the class variables and implement the methods."""

    name: ClassVar[str]
    family: ClassVar[str]  # cnn, vit, transformer_lm, rnn, mlp, recommender, gan, segmentation, value
    description: ClassVar[str]
    architectures: ClassVar[tuple[str, ...]] = ()  # Profile architectures this workload stands in for
    domains: ClassVar[tuple[str, ...]] = ()  # Profile domains it stands in for
    supported_traits: ClassVar[frozenset[str]] = frozenset()
    #: the held-out metric; an instance may change it when a trait changes the task (a class default here)
    metric_name: str = "loss"
    higher_is_better: bool = False
    #: names of the optimizers a step needs ("main" for most; "generator"/"discriminator" for a GAN)
    players: ClassVar[tuple[str, ...]] = ("main",)
    #: the examples in one training batch (what a Profile's batch_size would say); set in ``__init__``
    batch_size: int

    def __init__(
        self, *, size: int = 1, seed: int = 0, traits: Sequence[str] = (), device: str | torch.device = "cpu"
    ) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        unknown = set(traits) - TRAITS
        if unknown:
            raise ValueError(f"unknown data traits {sorted(unknown)}; valid: {sorted(TRAITS)}")
        self.size = size
        self.seed = seed
        self.traits = frozenset(traits) & self.supported_traits
        self.ignored_traits = frozenset(traits) - self.supported_traits
        self.device = torch.device(device)
        self.generator = torch.Generator().manual_seed(seed)

    @abstractmethod
    def build_model(self) -> nn.Module:
        """A fresh model (seeded by ``self.seed``), on ``self.device``."""

    @abstractmethod
    def train_batch(self, step: int) -> Batch:
        """The training batch for ``step`` (deterministic given seed and step), on ``self.device``."""

    @abstractmethod
    def heldout_batches(self) -> list[Batch]:
        """A fixed held-out set, on ``self.device``. A drifting stream's may follow its present (the
        last training step served): a forecaster is judged on the regime it has to predict next."""

    @abstractmethod
    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """The training objective on one batch (graph attached)."""

    def player_parameters(self, model: nn.Module, player: str) -> list[nn.Parameter]:
        """The parameters one player's optimizer steps (all of them for single-player workloads)."""
        return [p for p in model.parameters() if p.requires_grad]

    def player_module(self, model: nn.Module, player: str) -> nn.Module:
        """The sub-module one player's optimizer is built on (the model itself for single-player workloads)."""
        return model

    def player_loss(self, model: nn.Module, batch: Batch, player: str) -> torch.Tensor:
        """The objective of one player (multi-player workloads override this)."""
        return self.loss(model, batch)

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> Evaluation:
        """Held-out loss and metric (model in eval mode, restored to train mode after)."""
        was_training = model.training
        model.eval()
        losses, metrics = [], []
        for batch in self.heldout_batches():
            losses.append(float(self.loss(model, batch)))
            metrics.append(self.metric(model, batch))
        model.train(was_training)
        n = max(1, len(losses))
        return Evaluation(sum(losses) / n, sum(metrics) / n, self.metric_name, self.higher_is_better)

    def metric(self, model: nn.Module, batch: Batch) -> float:
        """The workload's metric on one held-out batch (default: the loss)."""
        return float(self.loss(model, batch))

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "description": self.description,
            "size": self.size,
            "traits": sorted(self.traits),
            "ignored_traits": sorted(self.ignored_traits),
            "metric": self.metric_name,
        }
