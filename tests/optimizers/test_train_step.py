"""``train_step``: closures, gradient clipping, one scheduler step per call, mixed precision on CUDA."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest
import torch
from torch import nn

from optirec.optimizers import build, build_scheduler, train_step
from optirec.rules import default_rulebook, recommend
from optirec.rules.recommendation import ScheduleSpec

BOOK = default_rulebook()
CLOSURE_OPTIMIZERS = sorted(n for n, spec in BOOK.optimizers.items() if spec.needs_closure)
MAX_NORM = 1.0


def _skip_if_missing(name: str) -> None:
    path = BOOK.optimizers[name].class_path
    if path.startswith("optirec.optimizers."):
        module = path.rsplit(".", 1)[0]
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} does not exist yet (written by another helper)")


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 1))


def _linear() -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(6, 1)


def _batch(scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(48, 6, generator=gen)
    return x, scale * (x @ torch.randn(6, 1, generator=gen))


def _rec(name: str, *, clipping: float | None = None, schedule: dict[str, Any] | None = None, **hp: Any) -> Any:
    rec = recommend({}).model_dump()
    rec["optimizer"] = {"name": name, "hyperparameters": dict(BOOK.defaults[name]) | hp}
    rec["gradient_clipping"] = None if clipping is None else {"max_norm": clipping}
    rec["param_groups"] = []
    rec["schedule"] = schedule or {"name": "constant", "warmup_steps": 0, "warmup_ratio": 0.0, "total_steps": None}
    return rec


def _loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> float:
    with torch.no_grad():
        return float(nn.functional.mse_loss(model(batch[0]), batch[1]))


def _grad_norm(params: list[torch.Tensor]) -> float:
    return float(torch.linalg.vector_norm(torch.stack([p.grad.detach().norm() for p in params if p.grad is not None])))


# ------------------------------------------------------------------------------------------- closures


def test_closure_optimizers_are_the_expected_ones() -> None:
    assert {"lbfgs", "sam", "newton", "sophia"} <= set(CLOSURE_OPTIMIZERS)


@pytest.mark.parametrize("name", sorted({"lbfgs", "sam", "newton", "sophia", *CLOSURE_OPTIMIZERS}))
def test_closure_optimizer_reduces_the_loss(name: str) -> None:
    _skip_if_missing(name)
    # exact Newton is for (locally) convex problems: on the tanh MLP its undamped steps jump around saddles
    model, batch = (_linear() if name == "newton" else _mlp()), _batch()
    built = build(model, _rec(name))
    losses = [train_step(model, nn.MSELoss(), batch, built) for _ in range(20)]
    assert all(torch.isfinite(torch.tensor(losses)))
    # train_step returns the loss at the start of each step: the first one is the untrained model's
    assert losses[0] == pytest.approx(_loss(_linear() if name == "newton" else _mlp(), batch), rel=1e-5)
    assert _loss(model, batch) < losses[0]
    assert losses[-1] < losses[0]


def test_newton_solves_least_squares_in_one_step() -> None:
    _skip_if_missing("newton")
    model, batch = _linear(), _batch()  # y is exactly linear in x: the minimum is 0
    built = build(model, _rec("newton"))
    first = train_step(model, nn.MSELoss(), batch, built)
    assert first > 1.0
    assert _loss(model, batch) < 1e-6


def test_lbfgs_reevaluates_the_loss_inside_one_step() -> None:
    model, batch = _mlp(), _batch()
    calls = 0

    def loss_fn(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        nonlocal calls
        calls += 1
        return nn.functional.mse_loss(output, target)

    built = build(model, _rec("lbfgs"))
    train_step(model, loss_fn, batch, built)
    assert 1 < calls <= BOOK.defaults["lbfgs"]["max_iter"] * 5 // 4 + 1


def test_sam_does_two_passes_and_leaves_no_gradient() -> None:
    model, batch = _mlp(), _batch()
    calls = 0

    def loss_fn(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        nonlocal calls
        calls += 1
        return nn.functional.mse_loss(output, target)

    built = build(model, _rec("sam"))
    before = [p.detach().clone() for p in model.parameters()]
    train_step(model, loss_fn, batch, built)
    assert calls == 2
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


# ------------------------------------------------------------------------------------------- clipping

#: where the gradient the optimizer finally applies can be observed, per optimizer
CLIPPED = ["sgd", "sgd_momentum", "adam", "adamw", "rmsprop", "lion", "lookahead", "sophia", "lbfgs", "sam"]


def _spy_applied_gradient(built: Any, name: str, norms: list[float]) -> None:
    """Record the total gradient norm at the moment the (base) optimizer uses it (a step pre-hook, so that the
    scheduler's wrapping of ``step`` is left alone)."""
    optimizer = built.optimizer
    params = [p for g in optimizer.param_groups for p in g["params"]]
    if name == "lbfgs":  # every closure evaluation's gradient feeds the line search and the history

        def wrap_closure(opt: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            this, closure = args  # a step pre-hook sees step's own arguments, self included

            def observed() -> Any:
                loss = closure()
                norms.append(_grad_norm(params))
                return loss

            return (this, observed), kwargs

        optimizer.register_step_pre_hook(wrap_closure)
        return
    # SAM steps its base optimizer with the gradient of the second (perturbed) pass
    target = optimizer.base_optimizer if name == "sam" else optimizer
    target.register_step_pre_hook(lambda opt, args, kwargs: norms.append(_grad_norm(params)))


@pytest.mark.parametrize("name", CLIPPED)
def test_gradient_clipping_is_applied(name: str) -> None:
    batch = _batch(scale=1e3)  # a huge loss: the raw gradient norm is in the thousands
    model = _mlp()
    raw = torch.autograd.grad(nn.functional.mse_loss(model(batch[0]), batch[1]), list(model.parameters()))
    raw_norm = float(torch.linalg.vector_norm(torch.stack([g.norm() for g in raw])))
    assert raw_norm > 100 * MAX_NORM

    built = build(model, _rec(name, clipping=MAX_NORM))
    assert built.clipping == MAX_NORM
    norms: list[float] = []
    _spy_applied_gradient(built, name, norms)
    train_step(model, nn.MSELoss(), batch, built)
    assert norms, "the spy saw no step"
    assert max(norms) <= MAX_NORM * (1 + 1e-4), f"{name}: applied gradient norms {norms} (raw {raw_norm:.1f})"


def test_clipping_changes_the_update() -> None:
    """Plain SGD: the clipped step moves the parameters by exactly lr * max_norm; the unclipped one by lr * |g|."""
    batch = _batch(scale=1e3)
    lr = BOOK.defaults["sgd"]["lr"]

    def moved(clipping: float | None) -> float:
        model = _mlp()
        before = torch.cat([p.detach().reshape(-1).clone() for p in model.parameters()])
        train_step(model, nn.MSELoss(), batch, build(model, _rec("sgd", clipping=clipping)))
        after = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
        return float((after - before).norm())

    assert moved(MAX_NORM) == pytest.approx(lr * MAX_NORM, rel=1e-4)
    assert moved(None) > 100 * lr * MAX_NORM


def test_no_clipping_when_not_recommended() -> None:
    batch = _batch(scale=1e3)
    model = _mlp()
    built = build(model, _rec("sgd"))
    assert built.clipping is None
    norms: list[float] = []
    _spy_applied_gradient(built, "sgd", norms)
    train_step(model, nn.MSELoss(), batch, built)
    assert norms[0] > 100 * MAX_NORM


# ------------------------------------------------------------------------------------------ scheduler

SCHEDULE = {"name": "cosine", "warmup_steps": 3, "warmup_ratio": 0.1, "total_steps": 30}


@pytest.mark.parametrize("name", ["adam", "sgd_momentum", "lbfgs", "sam", "sophia"])
def test_scheduler_steps_once_per_train_step(name: str) -> None:
    model, batch = _mlp(), _batch()
    built = build(model, _rec(name, schedule=SCHEDULE))
    assert built.scheduler is not None
    # an independent copy of the same schedule on a dummy optimizer, stepped by hand
    dummy = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=built.optimizer.param_groups[0]["initial_lr"])
    reference = build_scheduler(dummy, ScheduleSpec(**SCHEDULE))
    for k in range(1, 8):
        train_step(model, nn.MSELoss(), batch, built)
        dummy.step()
        reference.step()
        assert built.scheduler.last_epoch == k
        assert built.optimizer.param_groups[0]["lr"] == pytest.approx(dummy.param_groups[0]["lr"], rel=1e-12)
    assert built.scheduler.get_last_lr() == pytest.approx(reference.get_last_lr())


# ---------------------------------------------------------------------------------------- mixed precision


def _mixed_precision_run(device: torch.device, dtype: torch.dtype) -> None:
    model = _mlp().to(device)
    x, y = (t.to(device) for t in _batch())
    built = build(model, _rec("adam", clipping=MAX_NORM, lr=1e-2))
    scaler = torch.amp.GradScaler(device.type)
    seen: list[torch.dtype] = []
    handle = model[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    first = train_step(model, nn.MSELoss(), (x, y), built, scaler=scaler, autocast_dtype=dtype)
    handle.remove()
    assert seen == [dtype]  # the forward ran under autocast
    for _ in range(30):
        last = train_step(model, nn.MSELoss(), (x, y), built, scaler=scaler, autocast_dtype=dtype)
    assert scaler.get_scale() > 0
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay fp32
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert last < first


@pytest.mark.gpu
def test_mixed_precision_train_step_with_grad_scaler() -> None:
    if not torch.cuda.is_available():
        pytest.skip("CUDA is not available: mixed precision with torch.amp.GradScaler('cuda') needs a GPU")
    _mixed_precision_run(torch.device("cuda"), torch.float16)


def test_mixed_precision_code_path_on_cpu() -> None:
    """The same autocast + GradScaler path on CPU (torch.amp supports both there), so it runs without a GPU."""
    _mixed_precision_run(torch.device("cpu"), torch.bfloat16)


def test_autocast_without_scaler_on_cpu() -> None:
    model, batch = _mlp(), _batch()
    built = build(model, _rec("adam", lr=1e-2))
    losses = [train_step(model, nn.MSELoss(), batch, built, autocast_dtype=torch.bfloat16) for _ in range(20)]
    assert losses[-1] < losses[0]


def test_train_step_needs_a_loss_fn_or_an_objective() -> None:
    from optirec.optimizers.errors import BuildError

    model = _mlp()
    built = build(model, recommend({"architecture": "mlp", "total_steps": 10}))
    with pytest.raises(BuildError) as info:
        train_step(model, None, _batch(), built)
    assert info.value.field == "loss_fn"
    assert train_step(model, None, _batch(), built, objective=lambda: nn.functional.mse_loss(*_pair(model))) > 0


def _pair(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = _batch()
    return model(x), y
