"""The two hand-written optimizers of the catalog: exact Newton (004 §4.1) and K-FAC (004 §4.3)."""

from __future__ import annotations

import copy
import io
import itertools
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from optirec.optimizers.errors import BuildError, NewtonTooLarge
from optirec.optimizers.kfac import KFAC
from optirec.optimizers.newton import Newton

# ------------------------------------------------------------------------------------------- Newton


def test_newton_minimises_a_strictly_convex_quadratic_in_one_step() -> None:
    torch.manual_seed(0)
    n = 10
    m = torch.randn(n, n, dtype=torch.float64)
    q = m @ m.T + n * torch.eye(n, dtype=torch.float64)  # symmetric positive definite
    b = torch.randn(n, dtype=torch.float64)
    x = nn.Parameter(torch.randn(n, dtype=torch.float64))
    opt = Newton([x], lr=1.0, damping=0.0)

    opt.step(lambda: 0.5 * x @ q @ x - b @ x)

    torch.testing.assert_close(x.detach(), torch.linalg.solve(q, b), atol=1e-6, rtol=0.0)


def test_newton_solves_linear_least_squares_in_one_step() -> None:
    torch.manual_seed(0)
    features = torch.randn(50, 3, dtype=torch.float64)
    target = features @ torch.tensor([[1.5], [-2.0], [0.5]], dtype=torch.float64) + 0.3
    target += 0.1 * torch.randn(50, 1, dtype=torch.float64)
    model = nn.Linear(3, 1).double()
    opt = Newton(model.parameters(), lr=1.0, damping=0.0)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        return F.mse_loss(model(features), target)

    before = closure().item()
    opt.step(closure)
    after = closure().item()

    design = torch.cat([features, torch.ones(50, 1, dtype=torch.float64)], dim=1)
    best = torch.linalg.lstsq(design, target).solution.squeeze(1)
    torch.testing.assert_close(torch.cat([model.weight.reshape(-1), model.bias]).detach(), best)
    assert after < 0.1 * before


def test_newton_converges_on_logistic_regression() -> None:
    torch.manual_seed(0)
    features = torch.randn(200, 4, dtype=torch.float64)
    logits = features @ torch.tensor([1.0, -2.0, 0.5, 0.0], dtype=torch.float64)
    labels = torch.bernoulli(torch.sigmoid(logits))  # noisy labels: a finite optimum exists
    model = nn.Linear(4, 1).double()
    opt = Newton(model.parameters())  # the catalog defaults: lr 1.0, damping 1e-4

    def closure() -> torch.Tensor:
        opt.zero_grad()
        return F.binary_cross_entropy_with_logits(model(features).squeeze(1), labels)

    losses = [opt.step(closure).item() for _ in range(8)]

    assert all(later <= earlier + 1e-12 for earlier, later in itertools.pairwise(losses))
    assert losses[-1] < 0.7 * losses[0]
    # p.grad is the gradient where the last step started; quadratic convergence has erased it by then.
    grad_norm = torch.cat([p.grad.reshape(-1) for p in model.parameters() if p.grad is not None]).norm()
    assert grad_norm < 1e-8


def test_newton_refuses_ten_thousand_parameters() -> None:
    with pytest.raises(NewtonTooLarge) as info:
        Newton([nn.Parameter(torch.zeros(10_000))])
    assert info.value.field == "num_parameters"
    assert str(info.value).startswith("num_parameters: ")
    assert "5,000" in str(info.value)
    assert isinstance(info.value, BuildError)
    assert isinstance(info.value, ValueError)


def test_newton_limit_is_configurable_and_counts_only_trainable_parameters() -> None:
    frozen = nn.Parameter(torch.zeros(10_000), requires_grad=False)
    Newton([frozen, nn.Parameter(torch.zeros(20))], max_parameters=20)
    with pytest.raises(NewtonTooLarge):
        Newton([nn.Parameter(torch.zeros(21))], max_parameters=20)


def test_newton_step_without_closure_raises() -> None:
    opt = Newton([nn.Parameter(torch.zeros(3))])
    with pytest.raises(ValueError, match="closure"):
        opt.step()


def _backward_styles() -> list[tuple[str, Callable[[torch.Tensor], None]]]:
    return [
        ("no-backward", lambda loss: None),
        ("loss.backward", lambda loss: loss.backward()),
        ("autograd.backward", lambda loss: torch.autograd.backward(loss)),
        ("retain-graph", lambda loss: loss.backward(retain_graph=True)),
    ]


@pytest.mark.parametrize("style", [s[1] for s in _backward_styles()], ids=[s[0] for s in _backward_styles()])
def test_newton_takes_the_lbfgs_closure_with_or_without_backward(style: Callable[[torch.Tensor], None]) -> None:
    def run(call: Callable[[torch.Tensor], None]) -> tuple[torch.Tensor, torch.Tensor, float]:
        x = nn.Parameter(torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64))
        opt = Newton([x])

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = (x**4).sum() + x[0] * x[1]
            call(loss)
            return loss

        loss = opt.step(closure).item()
        assert x.grad is not None
        return x.detach().clone(), x.grad.clone(), loss

    reference = run(lambda loss: None)
    after, grad, loss = run(style)
    assert torch.equal(after, reference[0]) and torch.equal(grad, reference[1]) and loss == reference[2]
    # the skipping lasts only while the closure runs: backward works again afterwards
    y = nn.Parameter(torch.ones(2))
    (y**2).sum().backward()
    assert y.grad is not None and torch.equal(y.grad, torch.full((2,), 2.0))


@pytest.mark.parametrize(("lr", "damping"), [(0.0, 1e-4), (-1.0, 1e-4), (1.0, -1e-4)])
def test_newton_rejects_bad_hyperparameters(lr: float, damping: float) -> None:
    with pytest.raises(ValueError):
        Newton([nn.Parameter(torch.zeros(3))], lr=lr, damping=damping)


def test_newton_sets_grad_and_keeps_only_a_step_counter() -> None:
    x = nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = Newton([x], damping=0.0)
    opt.step(lambda: (x**2).sum() + x[0] * x[1])
    torch.testing.assert_close(x.grad, torch.tensor([2.0 * 1.0 - 2.0, 2.0 * -2.0 + 1.0]))
    assert opt.state[x] == {"step": 1}
    torch.testing.assert_close(x.detach(), torch.zeros(2))  # the quadratic's minimum


# --------------------------------------------------------------------------------------------- K-FAC


def _weight(model: nn.Sequential, index: int) -> torch.Tensor:
    layer = model[index]
    assert isinstance(layer, nn.Linear | nn.Conv2d)
    return layer.weight


def _regression_data() -> tuple[torch.Tensor, torch.Tensor]:
    features = torch.randn(128, 8)
    target = torch.tanh(features @ torch.randn(8, 1)) + 0.1 * torch.randn(128, 1)
    return features, target


def _mlp() -> nn.Sequential:
    return nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 1))


def _image_data() -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.randn(64, 1, 8, 8)
    target = 3.0 * images.mean(dim=(1, 2, 3)) + 0.3 * images[:, :, 2:5, 2:5].sum(dim=(1, 2, 3))
    return images, target.unsqueeze(1)


def _convnet() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, stride=2),
        nn.ReLU(inplace=True),
        nn.Flatten(),
        nn.Linear(4 * 3 * 3, 1),
    )


def _train(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    data: tuple[torch.Tensor, torch.Tensor],
    steps: int,
) -> list[float]:
    inputs, target = data
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = F.mse_loss(model(inputs), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize(
    ("data", "make_model", "lr"),
    [(_regression_data, _mlp, 1e-2), (_image_data, _convnet, 1e-2)],
    ids=["mlp", "conv"],
)
def test_kfac_halves_the_loss(
    data: Callable[[], tuple[torch.Tensor, torch.Tensor]], make_model: Callable[[], nn.Module], lr: float
) -> None:
    torch.manual_seed(0)
    batch = data()
    model = make_model()
    opt = KFAC(model, lr=lr)
    losses = _train(model, opt, batch, 100)
    assert losses[-1] < 0.5 * losses[0]
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_kfac_param_groups_and_state() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.LayerNorm(32), nn.Linear(32, 1, bias=False))
    opt = KFAC(model, update_freq=2)
    assert [group["layer"] for group in opt.param_groups] == ["0", "2", None]
    assert [len(group["params"]) for group in opt.param_groups] == [2, 1, 2]  # LayerNorm -> plain SGD

    _train(model, opt, _regression_data(), 2)
    first = opt.state[_weight(model, 0)]
    assert first["A"].shape == (9, 9)  # 8 inputs + the homogeneous 1 for the bias
    assert first["G"].shape == (32, 32)
    assert set(first) == {"step", "A", "G", "A_inv", "G_inv", "momentum_buffer"}
    assert opt.state[_weight(model, 2)]["A"].shape == (32, 32)  # no bias, no extra coordinate
    torch.testing.assert_close(first["A_inv"] @ (first["A"] + 1e-3**0.5 * torch.eye(9)), torch.eye(9))


def test_kfac_preconditioning_starts_after_update_freq_steps() -> None:
    torch.manual_seed(0)
    data = _regression_data()
    model = _mlp()
    reference = copy.deepcopy(model)
    kfac = KFAC(model, lr=0.05, momentum=0.0, update_freq=5)
    sgd = torch.optim.SGD(reference.parameters(), lr=0.05, momentum=0.0)

    for step in range(1, 6):
        _train(model, kfac, data, 1)
        _train(reference, sgd, data, 1)
        pairs = list(zip(model.parameters(), reference.parameters(), strict=True))
        if step < 5:  # no inverse yet: exactly SGD
            for mine, theirs in pairs:
                torch.testing.assert_close(mine, theirs)
        else:
            assert any(not torch.allclose(mine, theirs) for mine, theirs in pairs)


def test_kfac_state_dict_round_trip() -> None:
    torch.manual_seed(0)
    data = _regression_data()
    model = _mlp()
    opt = KFAC(model, lr=1e-2, weight_decay=1e-4, update_freq=10)
    _train(model, opt, data, 15)

    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)  # a real copy: state_dict() shares the live tensors
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)

    twin = copy.deepcopy(model)
    twin_opt = KFAC(twin, lr=1e-2, weight_decay=1e-4, update_freq=10)
    twin_opt.load_state_dict(saved)

    for _ in range(6):  # crosses step 20, where the inverses are refreshed
        _train(model, opt, data, 1)
        _train(twin, twin_opt, data, 1)
        for mine, theirs in zip(model.parameters(), twin.parameters(), strict=True):
            torch.testing.assert_close(mine, theirs, rtol=0.0, atol=0.0)


def test_kfac_load_state_dict_checks_the_layers() -> None:
    opt = KFAC(_mlp())
    other = KFAC(nn.Sequential(nn.Linear(8, 1)))
    with pytest.raises(ValueError, match="layers"):
        other.load_state_dict(opt.state_dict())


def test_kfac_refuses_grouped_convolution() -> None:
    model = nn.Sequential(nn.Conv2d(4, 4, 3, groups=2), nn.Flatten())
    with pytest.raises(BuildError, match="groups=2") as info:
        KFAC(model)
    assert info.value.field == "model"
    assert "'0'" in info.value.message


def test_kfac_is_deterministic() -> None:
    def run() -> list[float]:
        torch.manual_seed(123)
        data = _image_data()
        model = _convnet()
        return _train(model, KFAC(model, lr=1e-2, update_freq=3), data, 12)

    assert run() == run()


def test_kfac_remove_hooks_and_closure() -> None:
    torch.manual_seed(0)
    features, target = _regression_data()
    model = _mlp()
    opt = KFAC(model, update_freq=1)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.mse_loss(model(features), target)
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert isinstance(loss, torch.Tensor)
    assert "A_inv" in opt.state[_weight(model, 0)]

    opt.remove_hooks()
    assert all(not m._forward_pre_hooks and not m._forward_hooks for m in model.modules())
    factor = opt.state[_weight(model, 0)]["A"].clone()
    opt.step(closure)  # still steps, with the last inverses; the factors no longer move
    torch.testing.assert_close(opt.state[_weight(model, 0)]["A"], factor)


def test_kfac_ignores_eval_mode_and_no_grad_forwards() -> None:
    torch.manual_seed(0)
    features, _ = _regression_data()
    model = _mlp()
    opt = KFAC(model)
    with torch.no_grad():
        model(features)
    model.eval()
    model(features).sum().backward()
    assert all(layer.a_sum is None and layer.g_sum is None for layer in opt._layers.values())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lr": 0.0},
        {"momentum": -0.1},
        {"damping": 0.0},
        {"weight_decay": -1.0},
        {"update_freq": 0},
        {"update_freq": 2.5},
        {"ema_decay": 1.0},
    ],
)
def test_kfac_rejects_bad_hyperparameters(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        KFAC(_mlp(), **kwargs)


def test_kfac_needs_the_model() -> None:
    with pytest.raises(TypeError, match="model"):
        KFAC(_mlp().parameters())  # type: ignore[arg-type]


def test_newton_explains_a_loss_whose_graph_was_freed_before_the_step() -> None:
    x = nn.Parameter(torch.ones(3))
    opt = Newton([x])
    stale = (x**4).sum()
    stale.backward()  # outside the closure: nothing intercepts it, the graph is gone

    with pytest.raises(RuntimeError, match="graph was freed before Newton could differentiate it"):
        opt.step(lambda: stale)
