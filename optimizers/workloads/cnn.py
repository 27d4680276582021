"""``ResidualCNN``: a small ResNet (BatchNorm, skip connections) classifying scikit-learn's digits."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from ._common import seeded_model
from ._digits import DigitsWorkload

__all__ = ["ResidualCNN"]


class _ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(x + self.bn2(self.conv2(out)))


class _ResNet(nn.Module):
    def __init__(self, resolution: int, width: int, blocks: int, classes: int) -> None:
        super().__init__()
        stem: list[nn.Module] = [nn.Conv2d(1, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
        if resolution > 16:  # large inputs are pooled to 16x16 so compute grows with width, not pixels
            stem.append(nn.MaxPool2d(resolution // 16))
        self.stem = nn.Sequential(*stem)
        self.stage1 = nn.Sequential(*[_ResidualBlock(width) for _ in range(blocks)])
        self.down = nn.Sequential(
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(2 * width), nn.ReLU()
        )
        self.stage2 = nn.Sequential(*[_ResidualBlock(2 * width) for _ in range(blocks)])
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stage2(self.down(self.stage1(self.stem(x)))))  # type: ignore[no-any-return]


class ResidualCNN(DigitsWorkload):
    """Digits with a two-stage residual CNN; ``size`` sets the width (16 * size), blocks per stage and pixels."""

    name: ClassVar[str] = "cnn"
    family: ClassVar[str] = "cnn"
    description: ClassVar[str] = "residual CNN (BatchNorm, skip connections) classifying scikit-learn's digits"
    architectures: ClassVar[tuple[str, ...]] = (
        "resnet", "efficientnet", "yolo", "mask_rcnn", "cnn", "convnext", "mobilenet", "vgg", "wide_resnet",
        "densenet", "simclr", "moco", "byol", "retinanet",
    )  # fmt: skip

    def build_model(self) -> nn.Module:
        return seeded_model(
            self.seed, lambda: _ResNet(self.resolution, 16 * self.size, self.size, self.CLASSES), self.device
        )
