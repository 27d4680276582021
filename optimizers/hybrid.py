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
    before every step, and what an inner optimizer keeps in its own groups (Prodigy's and D-Adaptation's
    step-size estimate d, Schedule-Free's ``train_mode`` and averaging weights) is copied back after it, so
    the mirror never overwrites that state with a stale value. ``train()`` / ``eval()`` are forwarded to
    the inner optimizers that have them (Schedule-Free).
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
        self._synced: list[dict[str, Any]] = [_hyperparameters(g) for g in self.param_groups]

    def _sync(self) -> None:
        """Copy to the inner groups the values changed here since the last exchange (a scheduler's lr)."""
        for mine, inner, last in zip(self.param_groups, self._inner_groups, self._synced, strict=True):
            for key, value in mine.items():
                if key in _OWN or key not in inner:
                    continue
                if key not in last or _changed(last[key], value):
                    inner[key] = value

    def _refresh(self) -> None:
        """Mirror the inner groups' values (what the inner optimizers changed themselves) and remember them."""
        for mine, inner in zip(self.param_groups, self._inner_groups, strict=True):
            for key, value in inner.items():
                if key not in _OWN:
                    mine[key] = value
        self._synced = [_hyperparameters(g) for g in self.param_groups]

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._sync()
        for opt in self.optimizers.values():
            opt.step()
        self._refresh()
        return loss

    def train(self) -> None:
        """``train()`` on each inner optimizer that has it (Schedule-Free: back to the training weights)."""
        self._forward("train")

    def eval(self) -> None:
        """``eval()`` on each inner optimizer that has it (Schedule-Free: to the averaged weights)."""
        self._forward("eval")

    def _forward(self, mode: str) -> None:
        self._sync()
        for opt in self.optimizers.values():
            method = getattr(opt, mode, None)
            if callable(method):
                method()
        self._refresh()

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
        self._refresh()  # the inner optimizers' restored groups first (what they keep there themselves)
        for mine, saved in zip(self.param_groups, state_dict.get("group_hyperparameters", []), strict=False):
            mine.update(saved)  # then the hyperparameters saved here (a scheduler's lr)
        self._sync()
        self._refresh()


#: keys of a mirror group that are the hybrid's own, never exchanged with the inner groups
_OWN = ("params", "optimizer")


def _hyperparameters(group: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in group.items() if k not in _OWN}


def _changed(before: Any, after: Any) -> bool:
    """Whether a group value was replaced (tensors compare by identity: an inner optimizer's own state)."""
    if before is after:
        return False
    if isinstance(before, torch.Tensor) or isinstance(after, torch.Tensor):
        return True
    try:
        return bool(before != after)
    except (TypeError, ValueError, RuntimeError):  # pragma: no cover - values that do not compare
        return True
