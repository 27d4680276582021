"""The statistics the loss-curve detectors of ``optirec.diagnose`` share: robust levels and noise (running
medians, MAD), a least-squares line, number formats, and the :class:`Hit` / :class:`Context` they pass around.

Pure Python (standard library only).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "MAD",
    "Context",
    "Hit",
    "Severity",
    "centered_mean",
    "centered_median",
    "fit",
    "g",
    "median",
    "pct",
    "roughness",
    "signed_pct",
    "trailing_median",
]

Severity = Literal["low", "medium", "high"]
MAD = 1.4826  # MAD -> standard deviation for normal noise


# ---------------------------------------------------------------------------------------- statistics
def median(xs: Sequence[float]) -> float:
    s = sorted(xs)
    n = len(s)
    if n == 0:
        return math.nan
    mid = n // 2
    return s[mid] if n % 2 else 0.5 * (s[mid - 1] + s[mid])


def _window_medians(xs: Sequence[float], starts: Sequence[int], ends: Sequence[int]) -> list[float]:
    """Median of xs[starts[i]:ends[i]] for each i; both bounds non-decreasing (a sorted sliding window)."""
    win: list[float] = []
    a = b = 0
    out: list[float] = []
    for lo, hi in zip(starts, ends, strict=True):
        while b < hi:
            bisect.insort(win, xs[b])
            b += 1
        while a < lo:
            del win[bisect.bisect_left(win, xs[a])]
            a += 1
        n = len(win)
        if n == 0:
            out.append(math.nan)
        else:
            mid = n // 2
            out.append(win[mid] if n % 2 else 0.5 * (win[mid - 1] + win[mid]))
    return out


def centered_median(xs: Sequence[float], h: int) -> list[float]:
    n = len(xs)
    return _window_medians(xs, [max(0, i - h) for i in range(n)], [min(n, i + h + 1) for i in range(n)])


def trailing_median(xs: Sequence[float], w: int) -> list[float]:
    n = len(xs)
    return _window_medians(xs, [max(0, i - w) for i in range(n)], list(range(n)))


def centered_mean(xs: Sequence[float], h: int) -> list[float]:
    n = len(xs)
    prefix = [0.0]
    for x in xs:
        prefix.append(prefix[-1] + x)
    out = []
    for i in range(n):
        lo, hi = max(0, i - h), min(n, i + h + 1)
        out.append((prefix[hi] - prefix[lo]) / (hi - lo))
    return out


def roughness(xs: Sequence[float]) -> list[float]:
    """|x[i] - (x[i-1] + x[i+1]) / 2| / sqrt(1.5) per point: independent noise of sd s gives a median of 0.674 s,
    and a smooth trend (even a steep one) adds almost nothing, unlike residuals from a running median."""
    n = len(xs)
    if n < 3:
        return [0.0] * n
    k = 1 / math.sqrt(1.5)
    inner = [abs(xs[i] - 0.5 * (xs[i - 1] + xs[i + 1])) * k for i in range(1, n - 1)]
    return [inner[0], *inner, inner[-1]]


def fit(ys: Sequence[float]) -> tuple[float, float]:
    """Least-squares line through (i, ys[i]): (slope, intercept)."""
    n = len(ys)
    mx = (n - 1) / 2
    my = sum(ys) / n
    sxx = sum((i - mx) ** 2 for i in range(n)) or 1.0
    sxy = sum((i - mx) * (y - my) for i, y in enumerate(ys))
    slope = sxy / sxx
    return slope, my - slope * mx


def pct(x: float) -> str:
    return f"{x * 100:.0f}%" if abs(x) >= 0.095 else f"{x * 100:.1f}%"


def signed_pct(x: float) -> str:
    """+12%, -0.4%, 0%: a change with its direction."""
    text = pct(abs(x))
    return "0%" if text in ("0.0%", "0%") else ("+" if x > 0 else "-") + text


def g(x: float) -> str:
    return f"{x:.4g}"


# ---------------------------------------------------------------------------------------- detectors
@dataclass
class Hit:
    symptom: str
    curve: Literal["train", "val"]
    start: int | None
    end: int | None
    summary: str
    figures: dict[str, float]
    severity: Severity
    confidence: float


@dataclass
class Context:
    """What the detectors know about the run besides the curves."""

    warmup_known: bool
    has_warmup: bool
    schedule_known: bool
    constant_schedule: bool
    schedule_name: str = "constant"
    #: the caller's step of each point of the main curve (train, else val); None: the index is the step
    steps: list[int] | None = None
    #: the caller's step of each validation point (when a training curve is the main one)
    val_steps: list[int] | None = None
    #: points of the whole training curve (divergence cuts what the detectors see, not where validation sits)
    n_train: int = 0
    hits: list[Hit] = field(default_factory=list)

    def at(self, i: int) -> int:
        """The step of point ``i`` of the main curve."""
        return self.steps[i] if self.steps is not None else i
