"""K-FAC: Kronecker-factored approximate curvature (seed 004 §4.3; Martens & Grosse 2015).

Natural-gradient descent preconditions the gradient with the inverse Fisher information matrix,
which is far too large to store for a network. K-FAC approximates it layer by layer: the gradient
of a layer's weight matrix is ``g a^T`` (``a`` the layer's input, ``g`` the gradient of the loss
with respect to the layer's output), and if ``a`` and ``g`` are treated as independent the layer's
Fisher block factorises as the Kronecker product ``A (x) G`` with ``A = E[a a^T]`` and
``G = E[g g^T]``. The inverse of a Kronecker product is the product of the inverses, so the
preconditioned gradient of a weight matrix ``W`` is ``G^-1 dW A^-1``: two small inversions (input
width and output width) instead of one of size ``(in * out)^2``.

This module implements the factors for ``nn.Linear`` and ``nn.Conv2d`` (convolutions see their
input as unfolded patches, one row per output position, following Grosse & Martens 2016). The bias
rides along through homogeneous coordinates: a constant 1 is appended to ``a`` so ``[dW | db]`` is
preconditioned as one matrix. Every other trainable parameter gets plain SGD with momentum.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim.optimizer import StateDict
from torch.utils.hooks import RemovableHandle

from optirec.optimizers.errors import BuildError

__all__ = ["KFAC"]

_Supported = nn.Linear | nn.Conv2d


@dataclass(eq=False)
class _Layer:
    """One hooked layer and the statistics its hooks gathered since the last ``step``."""

    name: str
    module: _Supported
    weight: Tensor
    bias: Tensor | None
    a_sum: Tensor | None = None  # sum over input rows of a a^T
    a_rows: int = 0
    g_sum: Tensor | None = None  # sum over backward passes of (g^T g) * batch
    g_calls: int = 0
    handles: list[RemovableHandle] = field(default_factory=list)

    def reset(self) -> None:
        self.a_sum, self.a_rows, self.g_sum, self.g_calls = None, 0, None, 0


class KFAC(torch.optim.Optimizer):
    """Kronecker-factored natural-gradient optimizer for ``nn.Linear`` and ``nn.Conv2d`` layers (004 §4.3).

    It takes the *model*, because it hooks the supported layers: a forward pre-hook records each
    layer's input ``a`` and a gradient hook on its output the gradient ``g`` flowing back into it,
    whenever the model is in training mode and autograd is on. At every ``step``, for each layer:

    * the running factors are updated with an exponential moving average (``ema_decay``):
      ``A`` from ``a^T a / rows`` (``in + 1`` square with a bias) and ``G`` from ``g^T g * batch``
      (``out`` square; ``batch`` turns the gradient of a batch-mean loss back into per-example
      scale). A convolution contributes one row per output position.
    * every ``update_freq`` steps the Tikhonov-damped inverses ``(A + sqrt(damping) I)^-1`` and
      ``(G + sqrt(damping) I)^-1`` are recomputed (by eigendecomposition, the factors being
      symmetric positive semi-definite);
    * the update direction is ``G^-1 [dW | db] A^-1`` (convolution weights seen as
      ``out x (in * kh * kw)``), or the plain gradient until the first inverses exist;
    * then, as in SGD, weight decay ``d += weight_decay * p`` (weights only), momentum ``buf = momentum * buf + d``
      and ``p -= lr * buf``.

    Param groups: one per supported layer (its weight, plus its bias if trainable; the group's
    ``layer`` entry is the module's qualified name) and a last one with every other trainable
    parameter, trained with SGD + momentum. The factors, their inverses, the step counter and the
    momentum buffers all live in ``self.state`` (the factors under the layer's weight), so
    ``state_dict`` / ``load_state_dict`` round-trip them and memory accounting sees them.

    Grouped convolutions (``groups != 1``) are not supported. A parameter shared by several layers
    is preconditioned with the factors of the first layer that owns it. Call :meth:`remove_hooks`
    when done with the optimizer if the model lives on.
    """

    def __init__(
        self,
        model: nn.Module,
        lr: float = 1e-3,
        momentum: float = 0.9,
        damping: float = 1e-3,
        weight_decay: float = 0.0,
        update_freq: int = 10,
        ema_decay: float = 0.95,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(
                f"KFAC takes the model (an nn.Module) so it can hook its layers, not {type(model).__name__}"
            )
        if not lr > 0.0:
            raise ValueError(f"Invalid learning rate: {lr} (must be > 0)")
        if not momentum >= 0.0:
            raise ValueError(f"Invalid momentum: {momentum} (must be >= 0)")
        if not damping > 0.0:
            raise ValueError(f"Invalid damping: {damping} (must be > 0: the factors are often singular)")
        if not weight_decay >= 0.0:
            raise ValueError(f"Invalid weight_decay: {weight_decay} (must be >= 0)")
        if isinstance(update_freq, bool) or not isinstance(update_freq, int) or update_freq < 1:
            raise ValueError(f"Invalid update_freq: {update_freq} (must be an integer >= 1)")
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"Invalid ema_decay: {ema_decay} (must be in [0, 1))")

        layers: list[_Layer] = []
        seen: set[int] = set()
        for name, module in model.named_modules():
            if not isinstance(module, _Supported) or not module.weight.requires_grad or id(module.weight) in seen:
                continue
            if isinstance(module, nn.Conv2d) and module.groups != 1:
                raise BuildError(
                    "model",
                    f"K-FAC supports Conv2d layers with groups=1 only; layer {name or '(model)'!r} has "
                    f"groups={module.groups} (grouped or depthwise convolution)",
                )
            bias = module.bias
            if bias is not None and (not bias.requires_grad or id(bias) in seen):
                bias = None
            layer = _Layer(name or "(model)", module, module.weight, bias)
            seen.update(id(p) for p in _layer_params(layer))
            layers.append(layer)
        others = [p for p in model.parameters() if p.requires_grad and id(p) not in seen]

        groups: list[dict[str, Any]] = [{"params": _layer_params(layer), "layer": layer.name} for layer in layers]
        if others:
            groups.append({"params": others, "layer": None})
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "damping": damping,
            "weight_decay": weight_decay,
            "update_freq": update_freq,
            "ema_decay": ema_decay,
            "layer": None,
        }
        super().__init__(groups, defaults)
        self._layers: dict[str, _Layer] = {layer.name: layer for layer in layers}
        for layer in layers:
            layer.handles.append(layer.module.register_forward_pre_hook(_input_hook(layer), with_kwargs=True))
            layer.handles.append(layer.module.register_forward_hook(_output_hook(layer)))

    def remove_hooks(self) -> None:
        """Detach the optimizer from the model's layers (the optimizer then behaves as SGD + momentum
        with frozen curvature: the existing inverses keep being used, the factors stop moving)."""
        for layer in self._layers.values():
            for handle in layer.handles:
                handle.remove()
            layer.handles.clear()
            layer.reset()

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimization step; ``closure`` (optional) recomputes the loss with backward."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with torch.no_grad():
            for group in self.param_groups:
                name = group.get("layer")
                layer = self._layers.get(name) if name is not None else None
                if layer is None:
                    directions = [(p, p.grad) for p in group["params"] if p.grad is not None]
                else:
                    directions = self._precondition(layer, group)
                for p, direction in directions:
                    self._apply(p, direction, group)
        return loss

    def load_state_dict(self, state_dict: StateDict) -> None:
        """Load a state saved by ``state_dict``; the layer names of both models must match."""
        saved = [group.get("layer") for group in state_dict["param_groups"]]
        current = [group.get("layer") for group in self.param_groups]
        if saved != current:
            raise ValueError(f"KFAC state is for layers {saved}, this optimizer hooks {current}")
        super().load_state_dict(state_dict)

    # ------------------------------------------------------------------------------------- internals

    def _precondition(self, layer: _Layer, group: dict[str, Any]) -> list[tuple[Tensor, Tensor]]:
        """Fold the hooks' statistics into the factors and return ``(param, direction)`` pairs."""
        weight, bias = layer.weight, layer.bias
        if weight.grad is None:  # the layer took no part in this step's loss
            layer.reset()
            return [(bias, bias.grad)] if bias is not None and bias.grad is not None else []

        state = self.state[weight]
        state["step"] = int(state.get("step", 0)) + 1
        self._update_factors(layer, state, float(group["ema_decay"]))
        refresh = state["step"] % int(group["update_freq"]) == 0 and "A" in state
        # Non-finite factors mean training has diverged: keep the last inverses and let the NaNs show in
        # the loss, as any torch optimizer would, instead of failing inside the eigensolver.
        if refresh and bool(torch.isfinite(state["A"]).all()) and bool(torch.isfinite(state["G"]).all()):
            eps = math.sqrt(float(group["damping"]))
            state["A_inv"] = _damped_inverse(state["A"], eps)
            state["G_inv"] = _damped_inverse(state["G"], eps)

        bias_grad = None if bias is None else bias.grad
        if "A_inv" not in state:  # no curvature yet: plain SGD
            directions = [(weight, weight.grad)]
            return directions + ([(bias, bias_grad)] if bias is not None and bias_grad is not None else [])

        a_inv, g_inv = state["A_inv"], state["G_inv"]
        matrix = weight.grad.reshape(weight.shape[0], -1)
        if bias is not None:
            column = weight.grad.new_zeros(weight.shape[0]) if bias_grad is None else bias_grad
            matrix = torch.cat([matrix, column.reshape(-1, 1)], dim=1)
        natural = g_inv @ matrix.to(g_inv.dtype) @ a_inv
        directions = [(weight, natural[:, : matrix.shape[1] - (bias is not None)].reshape_as(weight).to(weight.dtype))]
        if bias is not None and bias_grad is not None:
            directions.append((bias, natural[:, -1].to(bias.dtype)))
        return directions

    def _update_factors(self, layer: _Layer, state: dict[str, Any], decay: float) -> None:
        """Exponential moving averages ``A``, ``G`` of this step's statistics (the first ones start them)."""
        if layer.a_sum is not None and layer.g_sum is not None and layer.a_rows > 0 and layer.g_calls > 0:
            a_new = layer.a_sum / layer.a_rows
            g_new = layer.g_sum / layer.g_calls
            if "A" not in state:
                state["A"], state["G"] = a_new, g_new
            else:
                state["A"].mul_(decay).add_(a_new.to(state["A"].dtype), alpha=1.0 - decay)
                state["G"].mul_(decay).add_(g_new.to(state["G"].dtype), alpha=1.0 - decay)
        layer.reset()

    def _apply(self, p: Tensor, direction: Tensor, group: dict[str, Any]) -> None:
        """SGD tail: weight decay (never on biases and norm weights: 0-/1-D tensors), heavy-ball momentum, update."""
        weight_decay, momentum = float(group["weight_decay"]), float(group["momentum"])
        if weight_decay != 0.0 and p.ndim > 1:
            direction = direction.add(p, alpha=weight_decay)
        if momentum != 0.0:
            state = self.state[p]
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = direction.detach().clone()
            else:
                buf.mul_(momentum).add_(direction)
            direction = buf
        p.add_(direction, alpha=-float(group["lr"]))


def _layer_params(layer: _Layer) -> list[Tensor]:
    return [layer.weight] if layer.bias is None else [layer.weight, layer.bias]


def _factor_dtype(dtype: torch.dtype) -> torch.dtype:
    """Factors are accumulated in float32 at least (covariances in half precision lose too much)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _input_hook(layer: _Layer) -> Callable[[nn.Module, tuple[Any, ...], dict[str, Any]], None]:
    def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        # ``module is layer.module`` keeps a deep copy of the model (which copies its hooks) from
        # feeding this optimizer.
        if module is not layer.module or not module.training or not torch.is_grad_enabled():
            return
        x = args[0] if args else kwargs.get("input")
        if not isinstance(x, Tensor):
            return
        rows = _input_rows(layer.module, x.detach(), with_bias=layer.bias is not None)
        cov = rows.T @ rows
        layer.a_sum = cov if layer.a_sum is None else layer.a_sum + cov
        layer.a_rows += rows.shape[0]

    return hook


def _output_hook(layer: _Layer) -> Callable[[nn.Module, tuple[Any, ...], Any], None]:
    """Forward hook that hangs a gradient hook on the layer's output.

    A tensor hook rather than ``register_full_backward_hook``: the latter warns on every backward
    through a first layer (its input needs no gradient), and a tensor hook registered before an
    in-place op (``ReLU(inplace=True)``) still receives the gradient of the layer's own output.
    """

    def grad_hook(g: Tensor) -> None:
        rows, batch = _output_grad_rows(layer.module, g.detach())
        cov = (rows.T @ rows) * batch
        layer.g_sum = cov if layer.g_sum is None else layer.g_sum + cov
        layer.g_calls += 1

    def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        if module is not layer.module or not module.training or not torch.is_grad_enabled():
            return
        if isinstance(output, Tensor) and output.requires_grad:
            output.register_hook(grad_hook)  # type: ignore[no-untyped-call]  # torch leaves it unannotated

    return hook


def _input_rows(module: _Supported, x: Tensor, *, with_bias: bool) -> Tensor:
    """The layer input as a matrix with one row per "example" the weight sees, ``(rows, in[+1])``.

    Linear: every leading position is a row. Conv2d: the unfolded receptive-field patches, one row
    per output position, ordered ``(in_channels, kh, kw)`` like ``weight.reshape(out, -1)``.
    """
    x = x.to(_factor_dtype(x.dtype))
    if isinstance(module, nn.Linear):
        rows = x.reshape(-1, x.shape[-1])
    else:
        if x.dim() == 3:  # unbatched (C, H, W)
            x = x.unsqueeze(0)
        mode = "constant" if module.padding_mode == "zeros" else module.padding_mode
        x = F.pad(x, _conv_padding(module), mode=mode)
        patches = F.unfold(x, module.kernel_size, dilation=module.dilation, padding=0, stride=module.stride)
        rows = patches.transpose(1, 2).reshape(-1, patches.shape[1])
    if with_bias:
        rows = torch.cat([rows, rows.new_ones(rows.shape[0], 1)], dim=1)
    return rows


def _output_grad_rows(module: _Supported, g: Tensor) -> tuple[Tensor, int]:
    """The gradient at the layer output as ``(rows, out)`` plus the batch size."""
    g = g.to(_factor_dtype(g.dtype))
    if isinstance(module, nn.Linear):
        batch = g.shape[0] if g.dim() > 1 else 1
        return g.reshape(-1, g.shape[-1]), batch
    if g.dim() == 3:  # unbatched (C, H, W)
        g = g.unsqueeze(0)
    return g.permute(0, 2, 3, 1).reshape(-1, g.shape[1]), g.shape[0]


def _conv_padding(module: nn.Conv2d) -> tuple[int, int, int, int]:
    """Padding of a Conv2d as ``F.pad`` wants it: ``(left, right, top, bottom)``."""
    if isinstance(module.padding, str):
        if module.padding == "valid":
            return (0, 0, 0, 0)
        # "same": the total padding dilation * (k - 1), the odd pixel on the right/bottom, as torch does.
        sides: list[int] = []
        for dilation, kernel in zip(reversed(module.dilation), reversed(module.kernel_size), strict=True):
            total = dilation * (kernel - 1)
            sides += [total // 2, total - total // 2]
        return (sides[0], sides[1], sides[2], sides[3])
    pad_h, pad_w = module.padding[0], module.padding[1]
    return (pad_w, pad_w, pad_h, pad_h)


def _damped_inverse(factor: Tensor, eps: float) -> Tensor:
    """``(factor + eps I)^-1`` for a symmetric PSD ``factor``, via its eigendecomposition."""
    symmetric = (factor + factor.T) / 2
    inverse: Tensor
    try:
        eigenvalues, eigenvectors = torch.linalg.eigh(symmetric)
    except RuntimeError:  # the eigensolver did not converge (torch.linalg.LinAlgError): invert directly
        identity = torch.eye(factor.shape[0], dtype=factor.dtype, device=factor.device)
        inverse = torch.linalg.inv(symmetric + eps * identity)
        return inverse
    # Rounding can leave tiny negative eigenvalues on a PSD matrix; clamp them so the damping dominates.
    scale = 1.0 / (eigenvalues.clamp(min=0.0) + eps)
    inverse = (eigenvectors * scale) @ eigenvectors.T
    return inverse
