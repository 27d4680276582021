"""Newton's method with the exact Hessian (seed 004 §4.1).

The seed writes the step as ``theta <- theta - lr * H^-1 grad J(theta)``: model the loss near the
current point by its second-order Taylor expansion and jump to that model's stationary point.
``H`` is the matrix of all second derivatives of the loss, so for ``n`` trainable parameters it
holds ``n^2`` numbers and solving with it costs ``O(n^3)``; that is why the optimizer refuses
models above ``max_parameters`` (:class:`~optirec.optimizers.errors.NewtonTooLarge`).

A small ``damping`` is added to the diagonal (``H + damping * I``) so that a flat or
ill-conditioned direction cannot produce a huge step; with ``damping = 0`` and ``lr = 1`` a strictly
convex quadratic is minimised in a single step. Damping does not turn a saddle point or a maximum
into a minimum: like every exact Newton method this one is meant for small, (locally) convex
problems such as least squares, logistic regression and tiny networks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.optim.optimizer import ParamsT
from torch.overrides import TorchFunctionMode

from optirec.optimizers.errors import NewtonTooLarge

__all__ = ["Newton"]


class Newton(torch.optim.Optimizer):
    """Exact Newton's method: ``theta <- theta - lr * (H + damping*I)^-1 grad`` (004 §4.1).

    The Hessian couples every trainable parameter, so it is built over all param groups at once;
    each group may still carry its own ``lr`` (applied to its part of the step) and ``damping``
    (added to its diagonal entries).

    ``step`` needs a closure that zeroes the gradients, computes the loss and returns it, the same closure
    ``torch.optim.LBFGS`` and SAM take: it may call ``loss.backward()`` (or ``torch.autograd.backward``)
    or not. Newton differentiates the loss twice itself, so a backward call inside the closure is
    intercepted and skipped (a ``torch.overrides.TorchFunctionMode`` active only while the closure runs),
    which keeps the graph for the Hessian. Afterwards every ``p.grad`` holds the gradient at the point
    where the step started, so gradient clipping and logging keep working.

    The optimizer keeps no tensors between steps (the only state is a step counter): the Hessian is
    rebuilt and discarded every step, so its ``n^2`` values are transient memory, not state.
    """

    def __init__(self, params: ParamsT, lr: float = 1.0, damping: float = 1e-4, max_parameters: int = 5000) -> None:
        if not lr > 0.0:
            raise ValueError(f"Invalid learning rate: {lr} (must be > 0)")
        if not damping >= 0.0:
            raise ValueError(f"Invalid damping: {damping} (must be >= 0)")
        if max_parameters < 1:
            raise ValueError(f"Invalid max_parameters: {max_parameters} (must be >= 1)")
        super().__init__(params, {"lr": lr, "damping": damping})
        self.max_parameters = max_parameters
        n = sum(p.numel() for p in self._trainable())
        if n > max_parameters:
            raise NewtonTooLarge(n, max_parameters)

    def _trainable(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"] if p.requires_grad]

    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor:  # type: ignore[override]
        """Take one Newton step and return the loss at the starting point.

        Args:
            closure: zero grads, compute and return the loss (calling ``loss.backward()`` in it or not, as
                for L-BFGS; Newton skips the call and differentiates the loss twice itself).
        """
        if closure is None:
            raise ValueError(
                "Newton.step needs a closure: a function that zeroes the gradients, computes and returns the loss "
                "(as for L-BFGS; a loss.backward() in it is skipped: Newton differentiates the loss twice itself)"
            )
        params = self._trainable()
        if not params:
            raise ValueError("Newton.step: no parameter requires grad")
        n = sum(p.numel() for p in params)
        if n > self.max_parameters:  # parameters may have been unfrozen or groups added since __init__
            raise NewtonTooLarge(n, self.max_parameters)

        with torch.enable_grad(), _SkipBackward():
            loss = closure()
        with torch.enable_grad():
            if not isinstance(loss, Tensor) or loss.numel() != 1:
                raise TypeError("Newton.step: the closure must return the loss as a scalar tensor")
            if not loss.requires_grad:
                raise ValueError(
                    "Newton.step: the loss returned by the closure does not depend on any parameter that requires "
                    "grad (was it computed under torch.no_grad, or detached?)"
                )
            grad, hessian = _gradient_and_hessian(loss.reshape(()), params)

        diagonal = self._per_param(params, "damping", grad.dtype, grad.device)
        direction = _solve(hessian + torch.diag(diagonal), grad)
        lrs = self._per_param(params, "lr", grad.dtype, grad.device)

        with torch.no_grad():
            offset = 0
            for p in params:
                k = p.numel()
                p.add_((lrs[offset : offset + k] * direction[offset : offset + k]).view_as(p).to(p.dtype), alpha=-1.0)
                p.grad = grad[offset : offset + k].view_as(p).to(p.dtype).clone()
                state = self.state[p]
                state["step"] = int(state.get("step", 0)) + 1
                offset += k
        return loss.detach()

    def _per_param(self, params: list[Tensor], key: str, dtype: torch.dtype, device: torch.device) -> Tensor:
        """Group hyperparameter ``key`` expanded to one value per scalar parameter, in ``params`` order."""
        value_of = {id(p): float(group[key]) for group in self.param_groups for p in group["params"]}
        return torch.cat([torch.full((p.numel(),), value_of[id(p)], dtype=dtype, device=device) for p in params])


class _SkipBackward(TorchFunctionMode):
    """While active (this thread only), ``Tensor.backward`` and ``torch.autograd.backward`` do nothing: a closure
    written for L-BFGS computes its loss as usual and leaves the graph whole for Newton's two derivatives. Both
    functions dispatch through ``handle_torch_function`` (torch/_tensor.py ``Tensor.backward``,
    torch/autograd/__init__.py ``backward``), which consults the active torch-function modes."""

    def __torch_function__(
        self, func: Callable[..., Any], types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        if func is Tensor.backward or func is torch.autograd.backward:
            return None
        return func(*args, **(kwargs or {}))


def _gradient_and_hessian(loss: Tensor, params: list[Tensor]) -> tuple[Tensor, Tensor]:
    """Flat gradient ``g`` (n,) and exact Hessian ``H`` (n, n) of ``loss`` with respect to ``params``.

    ``g`` is computed with ``create_graph=True`` so that it is itself differentiable; row ``i`` of
    ``H`` is then the gradient of ``g[i]``. That costs ``n`` backward passes, exact to rounding.
    """
    try:
        first = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
    except RuntimeError as exc:
        if "second time" in str(exc):
            raise RuntimeError(
                "Newton.step: the loss's graph was freed before Newton could differentiate it (a backward pass in "
                "another thread, or a loss computed before step?); compute the loss inside the closure"
            ) from exc
        raise
    grad = torch.cat(
        [(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, first, strict=True)]
    )
    n = grad.numel()
    hessian = torch.zeros(n, n, dtype=grad.dtype, device=grad.device)
    if grad.requires_grad:  # otherwise the loss is linear in the parameters and H = 0
        for i in range(n):
            row = torch.autograd.grad(grad[i], params, retain_graph=True, allow_unused=True)
            hessian[i] = torch.cat(
                [(torch.zeros_like(p) if r is None else r).reshape(-1) for p, r in zip(params, row, strict=True)]
            )
    return grad.detach(), hessian


def _solve(matrix: Tensor, rhs: Tensor) -> Tensor:
    """``matrix^-1 rhs``; the minimum-norm least-squares solution when ``matrix`` is singular."""
    solution: Tensor
    try:
        solution = torch.linalg.solve(matrix, rhs)
    except RuntimeError:  # torch.linalg.LinAlgError, raised for a singular matrix, subclasses it
        # lstsq's CUDA driver assumes full rank, so go through the pseudo-inverse (SVD) instead.
        solution = torch.linalg.pinv(matrix) @ rhs
    return solution
