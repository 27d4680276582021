"""``train_step``: one correct optimizer step, whatever the optimizer needs.

- closures: L-BFGS re-evaluates the loss in its line search; Newton differentiates the loss twice
  itself; SAM needs a second forward/backward at the perturbed weights;
- Sophia's Hessian estimate needs the gradient's graph (``backward(create_graph=True)``);
- gradient clipping at the recommended max norm; the scheduler stepped once per step;
- mixed precision on CUDA with ``torch.amp`` (autocast + GradScaler) for closure-free optimizers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from .builder import BuildResult
from .errors import BuildError

__all__ = ["train_step"]

LossFn = Callable[[Any, Any], torch.Tensor]


def _backward(loss: torch.Tensor, create_graph: bool = False) -> None:
    loss.backward(create_graph=create_graph)  # type: ignore[no-untyped-call]


def _params(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]


def _clip(built: BuildResult) -> None:
    if built.clipping is not None:
        torch.nn.utils.clip_grad_norm_(_params(built.optimizer), built.clipping)


def train_step(
    model: nn.Module,
    loss_fn: LossFn | None,
    batch: Sequence[Any],
    built: BuildResult,
    *,
    scaler: torch.amp.GradScaler | None = None,
    autocast_dtype: torch.dtype | None = None,
    objective: Callable[[], torch.Tensor] | None = None,
) -> float:
    """Run one training step on ``batch = (inputs, targets)`` and return the loss before the step.

    ``objective`` (no arguments, returns the loss with its graph) replaces ``loss_fn(model(inputs), targets)``
    for training problems that are not input -> output -> loss (a GAN player, a value-learning target);
    ``loss_fn`` is then unused and may be None.

    ``scaler`` / ``autocast_dtype`` enable mixed precision (CUDA; ignored for closure optimizers,
    whose repeated evaluations do not mix with loss scaling).
    """
    optimizer = built.optimizer
    step: Callable[..., Any] = optimizer.step  # closure-taking optimizers return the loss they computed
    name = built.recommendation.optimizer.name
    loss: Any
    model.train()

    if objective is None and loss_fn is None:
        raise BuildError("loss_fn", "give loss_fn(outputs, targets) or an objective")

    def forward() -> torch.Tensor:
        if objective is not None:
            return objective()
        assert loss_fn is not None
        return loss_fn(model(batch[0]), batch[1])

    if name == "newton":
        loss = step(forward)  # Newton takes the graph-carrying loss and differentiates it itself
    elif name == "lbfgs":

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            value = forward()
            _backward(value)
            _clip(built)
            return value

        loss = step(closure)
    elif name == "sam":
        optimizer.zero_grad()
        loss = forward()
        _backward(loss)
        _clip(built)

        def second_pass() -> torch.Tensor:
            value = forward()
            _backward(value)
            _clip(built)  # the second gradient is the one SAM steps with
            return value

        step(second_pass)
        optimizer.zero_grad()
    elif name == "sophia":
        optimizer.zero_grad(set_to_none=True)
        loss = forward()
        params = [p for g in optimizer.param_groups for p in g["params"] if p.requires_grad]
        # the Hessian estimate differentiates the gradient again, so the gradient keeps its graph;
        # autograd.grad (not backward(create_graph=True)) avoids a parameter <-> grad reference cycle
        grads = torch.autograd.grad(loss, params, create_graph=True)
        for p, g in zip(params, grads, strict=True):
            p.grad = g
        _clip(built)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)  # drop the graph-carrying gradients
    else:
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None or autocast_dtype is not None:
            device = next(model.parameters()).device.type
            with torch.autocast(device_type=device, dtype=autocast_dtype or torch.float16):
                loss = forward()
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                _clip(built)
                scaler.step(optimizer)
                scaler.update()
            else:
                _backward(loss)
                _clip(built)
                optimizer.step()
        else:
            loss = forward()
            _backward(loss)
            _clip(built)
            optimizer.step()
    if built.scheduler is not None:
        built.scheduler.step()
    return float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
