"""``TinyViT``: patch embedding + a pre-norm transformer encoder classifying scikit-learn's digits."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from ._common import seeded_model
from ._digits import DigitsWorkload

__all__ = ["TinyViT"]


class _ViT(nn.Module):
    def __init__(self, resolution: int, patch: int, dim: int, depth: int, heads: int, classes: int) -> None:
        super().__init__()
        tokens = (resolution // patch) ** 2
        self.patches = nn.Conv2d(1, dim, patch, stride=patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.position = nn.Parameter(torch.randn(1, tokens + 1, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(
            dim, heads, 2 * dim, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patches(x).flatten(2).transpose(1, 2)  # (B, tokens, dim)
        tokens = torch.cat([self.cls.expand(len(x), -1, -1), tokens], dim=1) + self.position
        return self.head(self.norm(self.encoder(tokens)[:, 0]))  # type: ignore[no-any-return]


class TinyViT(DigitsWorkload):
    """Digits with a small vision transformer; ``size`` sets width (32 * size), depth (1 + size) and pixels.

    Patches are ``resolution // 8`` pixels (at least 2), so an image is 16 tokens at 8x8 and 64 above.
    """

    name: ClassVar[str] = "vit"
    family: ClassVar[str] = "vit"
    description: ClassVar[str] = "vision transformer (patches + transformer encoder) classifying scikit-learn's digits"
    architectures: ClassVar[tuple[str, ...]] = ("vit", "deit", "swin", "mae", "dino", "clip", "detr", "dit")

    def build_model(self) -> nn.Module:
        patch = max(2, self.resolution // 8)
        dim = 32 * self.size
        return seeded_model(
            self.seed, lambda: _ViT(self.resolution, patch, dim, 1 + self.size, 4, self.CLASSES), self.device
        )
