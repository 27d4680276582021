"""``MixtureGAN``: generator + discriminator MLPs on a 2-D mixture of 8 Gaussians (two optimizers)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from ._common import seeded_model, stream
from .base import Batch, Workload

__all__ = ["MixtureGAN"]

_REAL, _LATENT, _HELDOUT = 1, 2, -1


class _GAN(nn.Module):
    def __init__(self, latent: int, hidden: int) -> None:
        super().__init__()
        self.generator = nn.Sequential(
            nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 2)
        )
        self.discriminator = nn.Sequential(
            nn.Linear(2, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 1)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Generated samples for latent codes ``z``."""
        return self.generator(z)  # type: ignore[no-any-return]


class MixtureGAN(Workload):
    """A GAN on 8 Gaussians (σ = ``SIGMA``) evenly spaced on a circle of radius ``RADIUS``.

    Batches are ``(real (B, 2), z (B, latent))``. Two players: ``"generator"`` (non-saturating
    loss ``-log D(G(z))``) and ``"discriminator"`` (``-log D(x) - log(1 - D(G(z)))``, the
    generator's samples detached); ``loss`` (evaluation) is their sum. The metric is the fraction
    of generated held-out samples within 3σ of a mode (higher is better). ``size`` scales the
    hidden width (64 * size) and the batch (128 * size).
    """

    name: ClassVar[str] = "gan"
    family: ClassVar[str] = "gan"
    description: ClassVar[str] = "GAN (generator + discriminator MLPs) on a 2-D mixture of 8 Gaussians"
    architectures: ClassVar[tuple[str, ...]] = (
        "gan_generator", "gan_discriminator", "wgan", "wgan_gp", "stylegan", "biggan",
    )  # fmt: skip
    domains: ClassVar[tuple[str, ...]] = ("generative",)
    metric_name: str = "mode_quality"
    higher_is_better: bool = True
    players: ClassVar[tuple[str, ...]] = ("generator", "discriminator")

    MODES: ClassVar[int] = 8
    RADIUS: ClassVar[float] = 2.0
    SIGMA: ClassVar[float] = 0.1
    LATENT: ClassVar[int] = 8
    HELDOUT: ClassVar[int] = 1024

    def __init__(
        self, *, size: int = 1, seed: int = 0, traits: Sequence[str] = (), device: str | torch.device = "cpu"
    ) -> None:
        super().__init__(size=size, seed=seed, traits=traits, device=device)
        angles = torch.arange(self.MODES) * (2 * math.pi / self.MODES)
        self.modes = (self.RADIUS * torch.stack([angles.cos(), angles.sin()], dim=1)).to(self.device)
        self.batch_size = 128 * size

    def build_model(self) -> nn.Module:
        return seeded_model(self.seed, lambda: _GAN(self.LATENT, 64 * self.size), self.device)

    def _draw(self, n: int, step: int) -> Batch:
        g = stream(self.seed, step, _REAL)
        which = torch.randint(self.MODES, (n,), generator=g)
        real = self.modes.cpu()[which] + self.SIGMA * torch.randn(n, 2, generator=g)
        z = torch.randn(n, self.LATENT, generator=stream(self.seed, step, _LATENT))
        return real.to(self.device), z.to(self.device)

    def train_batch(self, step: int) -> Batch:
        return self._draw(self.batch_size, step)

    def heldout_batches(self) -> list[Batch]:
        return [self._draw(self.HELDOUT, _HELDOUT)]

    def _check(self, player: str) -> None:
        if player not in self.players:
            raise ValueError(f"unknown player {player!r}; valid: {list(self.players)}")

    def player_module(self, model: nn.Module, player: str) -> nn.Module:
        self._check(player)
        module = getattr(model, player)
        assert isinstance(module, nn.Module)
        return module

    def player_parameters(self, model: nn.Module, player: str) -> list[nn.Parameter]:
        return [p for p in self.player_module(model, player).parameters() if p.requires_grad]

    def player_loss(self, model: nn.Module, batch: Batch, player: str) -> torch.Tensor:
        self._check(player)
        real, z = batch
        generator, discriminator = self.player_module(model, "generator"), self.player_module(model, "discriminator")
        if player == "generator":
            fake_logits = discriminator(generator(z))
            return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
        real_logits, fake_logits = discriminator(real), discriminator(generator(z).detach())
        return F.binary_cross_entropy_with_logits(
            real_logits, torch.ones_like(real_logits)
        ) + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return self.player_loss(model, batch, "discriminator") + self.player_loss(model, batch, "generator")

    def metric(self, model: nn.Module, batch: Batch) -> float:
        _, z = batch
        samples = model(z)
        nearest = torch.cdist(samples, self.modes).min(dim=1).values
        return float((nearest <= 3 * self.SIGMA).float().mean())
