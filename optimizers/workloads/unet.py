"""``TinyUNet``: a two-level U-Net segmenting random circles and rectangles on noise."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from ._common import seeded_model, stream
from .base import Batch, Workload

__all__ = ["TinyUNet"]

_SHAPES, _NOISE, _FLIP, _HELDOUT = 1, 2, 3, -1


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
    )


class _UNet(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.enc1 = _block(1, width)
        self.enc2 = _block(width, 2 * width)
        self.bottleneck = _block(2 * width, 4 * width)
        self.up2 = nn.ConvTranspose2d(4 * width, 2 * width, 2, stride=2)
        self.dec2 = _block(4 * width, 2 * width)
        self.up1 = nn.ConvTranspose2d(2 * width, width, 2, stride=2)
        self.dec1 = _block(2 * width, width)
        self.head = nn.Conv2d(width, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        b = self.bottleneck(F.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([self.up2(b), e2], dim=1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], dim=1))
        return self.head(d1)  # type: ignore[no-any-return]


class TinyUNet(Workload):
    """Binary segmentation of 1-3 random circles/rectangles (intensity +1) on Gaussian noise.

    Images are ``16 * size`` pixels a side; batches are ``(images (B, 1, H, W), masks (B, 1, H, W))``.
    Loss: BCE on logits + soft Dice; metric: IoU of the thresholded prediction (pooled over the
    batch). ``size`` scales pixels, width (8 * size) and batch (16 * size).

    Traits:

    - ``noisy``: background noise σ raised from ``NOISE`` to ``NOISY_NOISE``, and ``LABEL_NOISE`` of
      the training mask pixels flipped (held-out masks clean);
    - ``imbalanced``: one small shape per image (foreground about 2-5% of the pixels instead of ~25%).
    """

    name: ClassVar[str] = "unet"
    family: ClassVar[str] = "segmentation"
    description: ClassVar[str] = "two-level U-Net segmenting synthetic circles and rectangles on noise"
    architectures: ClassVar[tuple[str, ...]] = ("unet", "nnunet", "deeplab", "segformer", "ddpm", "latent_diffusion")
    domains: ClassVar[tuple[str, ...]] = ("computer_vision",)
    supported_traits: ClassVar[frozenset[str]] = frozenset({"noisy", "imbalanced"})
    metric_name: str = "iou"
    higher_is_better: bool = True

    NOISE: ClassVar[float] = 0.3
    NOISY_NOISE: ClassVar[float] = 0.8
    LABEL_NOISE: ClassVar[float] = 0.05
    MAX_SHAPES: ClassVar[int] = 3
    HELDOUT: ClassVar[int] = 64

    def __init__(
        self, *, size: int = 1, seed: int = 0, traits: Sequence[str] = (), device: str | torch.device = "cpu"
    ) -> None:
        super().__init__(size=size, seed=seed, traits=traits, device=device)
        self.resolution = 16 * size
        self.batch_size = 16 * size
        self._heldout = self._draw(self.HELDOUT, _HELDOUT)

    def build_model(self) -> nn.Module:
        return seeded_model(self.seed, lambda: _UNet(8 * self.size), self.device)

    def _draw(self, n: int, step: int) -> Batch:
        g, res = stream(self.seed, step, _SHAPES), self.resolution
        shapes = 1 if "imbalanced" in self.traits else self.MAX_SHAPES
        lo, hi = (0.06, 0.12) if "imbalanced" in self.traits else (0.12, 0.3)  # half-extent, fraction of the side
        centre = torch.rand(n, shapes, 2, 1, 1, generator=g) * res
        extent = (lo + (hi - lo) * torch.rand(n, shapes, 2, 1, 1, generator=g)) * res
        circle = torch.rand(n, shapes, 1, 1, generator=g) < 0.5
        present = torch.rand(n, shapes, 1, 1, generator=g) < 0.7
        present[:, 0] = True  # at least one shape per image
        coords = torch.arange(res, dtype=torch.float32) + 0.5
        dy, dx = coords[:, None] - centre[:, :, 0], coords[None, :] - centre[:, :, 1]  # (n, shapes, res, res)
        ry, rx = extent[:, :, 0], extent[:, :, 1]
        inside_circle = dy**2 + dx**2 <= ry**2
        inside_rect = (dy.abs() <= ry) & (dx.abs() <= rx)
        masks = (torch.where(circle, inside_circle, inside_rect) & present).any(dim=1, keepdim=True).float()
        sigma = self.NOISY_NOISE if "noisy" in self.traits else self.NOISE
        noise = torch.randn(masks.shape, generator=stream(self.seed, step, _NOISE))
        images = masks + sigma * noise
        if "noisy" in self.traits and step != _HELDOUT:
            flip = torch.rand(masks.shape, generator=stream(self.seed, step, _FLIP)) < self.LABEL_NOISE
            masks = torch.where(flip, 1.0 - masks, masks)
        return images.to(self.device), masks.to(self.device)

    def train_batch(self, step: int) -> Batch:
        return self._draw(self.batch_size, step)

    def heldout_batches(self) -> list[Batch]:
        return [self._heldout]

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        images, target = batch
        masks: torch.Tensor = target
        logits: torch.Tensor = model(images)
        probs = torch.sigmoid(logits)
        bce = F.binary_cross_entropy_with_logits(logits, masks)
        dice = 1 - (2 * (probs * masks).sum() + 1) / (probs.sum() + masks.sum() + 1)
        return bce + dice

    def metric(self, model: nn.Module, batch: Batch) -> float:
        images, masks = batch
        predicted = model(images) > 0
        truth = masks > 0.5
        union = (predicted | truth).sum()
        return float((predicted & truth).sum() / union) if union else 1.0
