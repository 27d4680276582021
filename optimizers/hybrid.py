"""One optimizer object over several: embeddings -> Adagrad with dense -> Adam (004 §5.6.1), or Muon
with AdamW.  It is a real ``torch.optim.Optimizer``, so LR schedulers, ``zero_grad``,
``state_dict`` and ``load_state_dict`` work as usual.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = ["HybridOptimizer"]


class HybridOptimizer(torch.optim.Optimizer):
    """Steps each inner optimizer over its own parameters.

    Its ``param_groups`` mirror the inner optimizers' groups (same tensors, plus an ``optimizer`` key);
    hyperparameters a scheduler changes here (lr, momentum, betas) are copied to the inner groups
    before every step.
    """

    def __init__(self, optimizers: dict[str, torch.optim.Optimizer]) -> None:
        if not optimizers:
            raise ValueError("HybridOptimizer needs at least one optimizer")
        self.optimizers = dict(optimizers)
        self._inner_groups: list[dict[str, Any]] = []
        groups: list[dict[str, Any]] = []
        for name, opt in self.optimizers.items():
            for g in opt.param_groups:
                self._inner_groups.append(g)
                groups.append({**g, "optimizer": name})
        super().__init__(groups, defaults={})

    def _sync(self) -> None:
        for mine, inner in zip(self.param_groups, self._inner_groups, strict=True):
            for key, value in mine.items():
                if key not in ("params", "optimizer") and key in inner:
                    inner[key] = value

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._sync()
        for opt in self.optimizers.values():
            opt.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        self._sync()
        return {
            "hybrid": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "group_hyperparameters": [
                {k: v for k, v in g.items() if k not in ("params", "optimizer")} for g in self.param_groups
            ],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        inner = state_dict.get("hybrid")
        if not isinstance(inner, dict) or set(inner) != set(self.optimizers):
            raise ValueError(
                f"state_dict is for optimizers {sorted(inner) if isinstance(inner, dict) else inner!r}, "
                f"this HybridOptimizer has {sorted(self.optimizers)}"
            )
        for name, opt in self.optimizers.items():
            opt.load_state_dict(inner[name])
        self._inner_groups = [g for opt in self.optimizers.values() for g in opt.param_groups]
        for mine, saved in zip(self.param_groups, state_dict.get("group_hyperparameters", []), strict=False):
            mine.update(saved)
        self._sync()
