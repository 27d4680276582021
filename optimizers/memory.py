"""Optimizer-state memory, measured from the real state tensors (004 §2.1's memory column, checked)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

__all__ = ["parameter_count", "state_bytes", "state_multiplier"]


def _tensors(value: Any) -> Iterator[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _tensors(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _tensors(v)


def _inner(optimizer: Any) -> Iterator[Any]:
    yield optimizer
    for attr in ("optimizer", "base_optimizer"):  # Lookahead wraps `optimizer`, SAM `base_optimizer`
        inner = getattr(optimizer, attr, None)
        if isinstance(inner, torch.optim.Optimizer) and inner is not optimizer:
            yield from _inner(inner)
    for inner in getattr(optimizer, "optimizers", {}).values():  # HybridOptimizer
        yield from _inner(inner)


def state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes held in optimizer state (each tensor counted once; parameters themselves excluded)."""
    seen: set[int] = set()
    params = {id(p) for opt in _inner(optimizer) for g in opt.param_groups for p in g["params"]}
    total = 0
    for opt in _inner(optimizer):
        for tensor in _tensors(dict(opt.state)):
            key = id(tensor)
            if key in seen or key in params:
                continue
            seen.add(key)
            total += tensor.numel() * tensor.element_size()
    return total


def parameter_count(optimizer: torch.optim.Optimizer) -> int:
    seen: set[int] = set()
    count = 0
    for opt in _inner(optimizer):
        for g in opt.param_groups:
            for p in g["params"]:
                if id(p) not in seen:
                    seen.add(id(p))
                    count += p.numel()
    return count


def state_multiplier(optimizer: torch.optim.Optimizer) -> float:
    """Measured state values per parameter value (fp32 state on fp32 parameters)."""
    n = parameter_count(optimizer)
    if n == 0:
        return 0.0
    bytes_per_value = 4
    return state_bytes(optimizer) / (n * bytes_per_value)
