"""``SequenceRNN``: an LSTM (or GRU) forecasting a synthetic seasonal series one step ahead."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import torch
from torch import nn
from torch.nn import functional as F

from ._common import seeded_model, stream
from .base import Batch, Workload

__all__ = ["SequenceRNN"]

_PHASE, _NOISE, _LENGTH, _DRIFT = 1, 2, 3, 4
_HELDOUT = -1

Cell = Literal["lstm", "gru"]


class _Forecaster(nn.Module):
    def __init__(self, cell: Cell, hidden: int, layers: int) -> None:
        super().__init__()
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn(1, hidden, layers, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, inputs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        series, lengths = inputs  # (B, T, 1) right-padded, (B,)
        out, _ = self.rnn(series)
        last = out[torch.arange(len(lengths), device=out.device), lengths - 1]  # causal: padding comes after
        return self.head(last).squeeze(-1)  # type: ignore[no-any-return]


class SequenceRNN(Workload):
    """One-step-ahead forecasting of ``sin(2πt/12) + 0.5 sin(2πt/5)`` from a window of ``24 * size`` values.

    Batches are ``((series (B, T, 1), lengths (B,)), next_value (B,))``; windows start at random
    (continuous) times, so the model has to read the phase off the window. ``size`` scales the
    window, the hidden width (32 * size), the layers (1, 2 from size 2) and the batch (32 * size).
    ``cell`` picks ``"lstm"`` (default) or ``"gru"``.

    Traits:

    - ``non_stationary``: the amplitude, the main period and a linear trend drift with the
      training step (slow sines of periods 97, 151 and 211 steps). The held-out windows come from the
      stream's near future: drift times just after the last training step served (``now``), in
      ``(now, now + AHEAD]``, with their own fixed phases. A forecaster on a drifting stream is
      judged walk-forward, on the regime it has to predict next; regimes far from anything it has
      trained on measure luck, not the optimizer;
    - ``variable_length_sequences``: window lengths uniform in [T / 4, T], right-padded with zeros
      (held-out too); the model reads its state at each window's last real value;
    - ``noisy``: Gaussian noise (σ = ``NOISE``) on the training series and targets (held-out clean).
    """

    name: ClassVar[str] = "rnn"
    family: ClassVar[str] = "rnn"
    description: ClassVar[str] = "LSTM/GRU forecasting a synthetic seasonal series one step ahead"
    architectures: ClassVar[tuple[str, ...]] = (
        "lstm", "gru", "rnn", "deepspeech", "tacotron", "deepar", "nbeats", "informer", "patchtst", "tft",
        "timesnet", "awd_lstm", "dlinear",
    )  # fmt: skip
    domains: ClassVar[tuple[str, ...]] = ("time_series",)
    supported_traits: ClassVar[frozenset[str]] = frozenset({"non_stationary", "variable_length_sequences", "noisy"})
    metric_name: str = "mse"
    higher_is_better: bool = False

    NOISE: ClassVar[float] = 0.3
    HELDOUT: ClassVar[int] = 256
    AHEAD: ClassVar[int] = 10  # non_stationary: held-out drift times lie this many steps ahead at most

    def __init__(
        self,
        *,
        size: int = 1,
        seed: int = 0,
        traits: Sequence[str] = (),
        device: str | torch.device = "cpu",
        cell: Cell = "lstm",
    ) -> None:
        super().__init__(size=size, seed=seed, traits=traits, device=device)
        if cell not in ("lstm", "gru"):
            raise ValueError(f"cell must be 'lstm' or 'gru', got {cell!r}")
        self.cell: Cell = cell
        self.window = 24 * size
        self.batch_size = 32 * size
        self.now = 0  # the last training step served: a drifting stream's present

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "cell": self.cell}

    def build_model(self) -> nn.Module:
        return seeded_model(
            self.seed, lambda: _Forecaster(self.cell, 32 * self.size, 1 if self.size == 1 else 2), self.device
        )

    def _windows(self, drift_time: torch.Tensor, generator: torch.Generator, key: tuple[int, int]) -> Batch:
        """Windows of T + 1 values (the last is the target), at drift times ``drift_time`` (one per window)."""
        n, span = len(drift_time), self.window + 1
        start = torch.rand(n, 1, generator=generator, dtype=torch.float64) * 1000.0
        t = start + torch.arange(span, dtype=torch.float64)
        amplitude = torch.ones(n, 1, dtype=torch.float64)
        period = torch.full((n, 1), 12.0, dtype=torch.float64)
        slope = torch.zeros(n, 1, dtype=torch.float64)
        if "non_stationary" in self.traits:
            s = drift_time[:, None].double()
            amplitude = 1.0 + 0.5 * torch.sin(2 * math.pi * s / 97)
            period = 12.0 * (1.0 + 0.25 * torch.sin(2 * math.pi * s / 151))
            slope = 0.05 * torch.sin(2 * math.pi * s / 211)
        values = amplitude * torch.sin(2 * math.pi * t / period) + 0.5 * torch.sin(2 * math.pi * t / 5.0)
        values = values + slope * (t - start)
        seed, step = key
        if "noisy" in self.traits and step != _HELDOUT:
            values = values + self.NOISE * torch.randn(
                values.shape, generator=stream(seed, step, _NOISE), dtype=torch.float64
            )
        values = values.float()
        lengths = torch.full((n,), self.window, dtype=torch.long)
        if "variable_length_sequences" in self.traits:
            lengths = torch.randint(self.window // 4, self.window + 1, (n,), generator=stream(seed, step, _LENGTH))
        rows = torch.arange(n)
        target = values[rows, lengths]
        series = torch.where(torch.arange(self.window) < lengths[:, None], values[:, :-1], 0.0)
        return (series.unsqueeze(-1).to(self.device), lengths.to(self.device)), target.to(self.device)

    def train_batch(self, step: int) -> Batch:
        self.now = step
        drift = torch.full((self.batch_size,), float(step))
        return self._windows(drift, stream(self.seed, step, _PHASE), (self.seed, step))

    def heldout_batches(self) -> list[Batch]:
        ahead = torch.rand(self.HELDOUT, generator=stream(self.seed, _HELDOUT, _DRIFT)) * self.AHEAD
        drift = self.now + 1 + ahead.floor()  # whole steps, as the training stream has
        return [self._windows(drift, stream(self.seed, _HELDOUT, _PHASE), (self.seed, _HELDOUT))]

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        inputs, target = batch
        return F.mse_loss(model(inputs), target)
