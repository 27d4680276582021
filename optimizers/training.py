"""``train_step``: one correct optimizer step, whatever the optimizer needs.

- closures: L-BFGS re-evaluates the loss in its line search; Newton differentiates the loss twice
  itself; SAM needs a second forward/backward at the perturbed weights;
- Sophia's Hessian estimate needs the gradient's graph (``backward(create_graph=True)``);
- gradient clipping at the recommended max norm; the scheduler stepped once per step;
- mixed precision on CUDA with ``torch.amp`` (autocast + GradScaler) for closure-free optimizers;
- Schedule-Free optimizers train at one point and are evaluated at another (their average): ``train_step``
  puts them in train mode first, and :func:`evaluation_mode` switches them to the averaged weights for an
  evaluation or a checkpoint and back (Defazio et al. 2024; the schedule_free README: ``optimizer.eval()``
  where ``model.eval()`` is called, ``optimizer.train()`` where ``model.train()`` is).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from .builder import BuildResult
from .errors import BuildError

__all__ = ["evaluation_mode", "train_mode", "train_step"]

LossFn = Callable[[Any, Any], torch.Tensor]


def _switch(optimizer: Any, mode: str) -> bool:
    """Call ``optimizer.<mode>()`` if the optimizer has such a method (True when it did)."""
    method = getattr(optimizer, mode, None)
    if not callable(method):
        return False
    method()
    return True


def _in_train_mode(optimizer: Any) -> bool | None:
    """Whether a train/eval optimizer stands at its training weights (None when it does not say).

    pytorch_optimizer's and the official Schedule-Free classes keep a ``train_mode`` flag in every param
    group (HybridOptimizer mirrors its parts' groups); ScheduleFreeWrapper keeps it on itself.
    """
    flag = getattr(optimizer, "train_mode", None)
    if isinstance(flag, bool):
        return flag
    modes = {g["train_mode"] for g in getattr(optimizer, "param_groups", ()) if "train_mode" in g}
    return modes.pop() if len(modes) == 1 else None


def train_mode(*optimizers: Any) -> None:
    """Put each optimizer that has a ``train()`` method (Schedule-Free) at its training weights; a no-op for
    the others. Call it before the forward pass of a training step (``train_step`` does)."""
    for optimizer in optimizers:
        _switch(optimizer, "train")


@contextmanager
def evaluation_mode(*optimizers: Any) -> Iterator[None]:
    """Evaluate (or save a checkpoint) at the weights an optimizer means to be evaluated at.

    ``optimizer.eval()`` on entry and ``optimizer.train()`` on exit, for the optimizers that have those methods
    (Schedule-Free: the averaged weights x instead of the training point y); a no-op for every other optimizer.
    An optimizer already in eval mode on entry is left in eval mode on exit, so the blocks nest::

        with evaluation_mode(built.optimizer):
            heldout_loss = evaluate(model)
    """
    switched: list[Any] = []
    try:
        for optimizer in optimizers:
            if _in_train_mode(optimizer) is False:
                continue  # already at its evaluation weights (an enclosing block): leave it there on exit
            if _switch(optimizer, "eval"):
                switched.append(optimizer)
        yield
    finally:
        for optimizer in reversed(switched):
            _switch(optimizer, "train")


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
    train_mode(optimizer)  # Schedule-Free: the gradient is taken at the training point, not the average

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
