"""The torch optimizers the catalog builds follow seed 004 §3.1-§3.2's update rules.

Each rule is written out in NumPy exactly as the seed states it and run for five steps on a fixed least-squares
loss J(theta) = 1/2 ||A theta - b||^2, whose gradient A^T (A theta - b) is computed analytically (no autograd on
the reference side). The torch side is the optimizer ``make_optimizer`` builds from the catalog entry, fed the same
analytic gradient; both run in float64 and must agree to 1e-6.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from optirec.optimizers import make_optimizer
from optirec.rules import default_rulebook

BOOK = default_rulebook()
STEPS = 5
TOL = 1e-6

RNG = np.random.default_rng(4)
A = RNG.normal(size=(6, 4))
B = RNG.normal(size=6)
THETA0 = RNG.normal(size=4)


def grad(theta: np.ndarray) -> np.ndarray:
    """Analytic gradient of J(theta) = 1/2 ||A theta - b||^2."""
    return A.T @ (A @ theta - B)


def run_torch(name: str, hp: dict[str, Any], steps: int = STEPS) -> list[np.ndarray]:
    """The catalog's optimizer for ``name``: parameter values after each of ``steps`` steps."""
    param = torch.nn.Parameter(torch.tensor(THETA0, dtype=torch.float64))
    optimizer = make_optimizer(BOOK, name, [param], hp)
    assert optimizer.param_groups[0]["params"][0] is param
    out = []
    for _ in range(steps):
        optimizer.zero_grad()
        param.grad = torch.from_numpy(grad(param.detach().numpy()))
        optimizer.step()
        out.append(param.detach().numpy().copy())
    return out


def hp_for(name: str, **overrides: Any) -> dict[str, Any]:
    hp = dict(BOOK.defaults[name])
    hp.update(overrides)
    return hp


# ------------------------------------------------------------------------ seed 004 §3, in NumPy


def sgd(lr: float) -> Callable[[], list[np.ndarray]]:
    """§3.1.1: theta_{t+1} = theta_t - eta grad J(theta_t)."""

    def run() -> list[np.ndarray]:
        theta, out = THETA0.copy(), []
        for _ in range(STEPS):
            theta = theta - lr * grad(theta)
            out.append(theta)
        return out

    return run


def momentum(lr: float, beta: float) -> Callable[[], list[np.ndarray]]:
    """§3.1.2: v_{t+1} = beta v_t + grad J(theta_t); theta_{t+1} = theta_t - eta v_{t+1} (v_0 = 0)."""

    def run() -> list[np.ndarray]:
        theta, v, out = THETA0.copy(), np.zeros_like(THETA0), []
        for _ in range(STEPS):
            v = beta * v + grad(theta)
            theta = theta - lr * v
            out.append(theta)
        return out

    return run


def nesterov_lookahead(lr: float, beta: float) -> Callable[[], list[np.ndarray]]:
    """§3.1.3 with the look-ahead point taken where the momentum step will actually carry theta:

        v_{t+1} = beta v_t + grad J(theta_t - eta beta v_t);  theta_{t+1} = theta_t - eta v_{t+1}

    (the seed writes theta_t - beta v_t, which only matches its own update theta - eta v when eta is folded
    into v). Returns the look-ahead sequence phi_t = theta_t - eta beta v_t, which is what torch stores.

    Why torch's ``SGD(nesterov=True)`` is this sequence. Torch keeps p and buf and does
        buf <- beta buf + grad(p);  p <- p - eta (grad(p) + beta buf).
    Put phi_t = theta_t - eta beta v_t and g_t = grad J(phi_t), so v_{t+1} = beta v_t + g_t. Then
        phi_{t+1} = theta_{t+1} - eta beta v_{t+1}
                  = (phi_t + eta beta v_t) - eta v_{t+1} - eta beta v_{t+1}
                  = phi_t - eta (v_{t+1} - beta v_t) - eta beta v_{t+1}
                  = phi_t - eta (g_t + beta v_{t+1}),
    which is torch's update with p = phi and buf = v (torch's first buf is the first gradient, = beta*0 + g_0).
    With v_0 = 0, phi_0 = theta_0: torch starts from the same point, so p_t = phi_t for every t.
    """

    def run() -> list[np.ndarray]:
        theta, v, out = THETA0.copy(), np.zeros_like(THETA0), []
        for _ in range(STEPS):
            v = beta * v + grad(theta - lr * beta * v)
            theta = theta - lr * v
            out.append(theta - lr * beta * v)
        return out

    return run


def adagrad(lr: float, eps: float) -> Callable[[], list[np.ndarray]]:
    """§3.2.1: G_t = G_{t-1} + g_t^2; theta_{t+1} = theta_t - eta / sqrt(G_t + eps) * g_t (eps inside the root)."""

    def run() -> list[np.ndarray]:
        theta, big_g, out = THETA0.copy(), np.zeros_like(THETA0), []
        for _ in range(STEPS):
            g = grad(theta)
            big_g = big_g + g**2
            theta = theta - lr / np.sqrt(big_g + eps) * g
            out.append(theta)
        return out

    return run


def rmsprop(lr: float, gamma: float, eps: float) -> Callable[[], list[np.ndarray]]:
    """§3.2.2: E_t = gamma E_{t-1} + (1-gamma) g_t^2; theta_{t+1} = theta_t - eta / sqrt(E_t + eps) * g_t."""

    def run() -> list[np.ndarray]:
        theta, e, out = THETA0.copy(), np.zeros_like(THETA0), []
        for _ in range(STEPS):
            g = grad(theta)
            e = gamma * e + (1 - gamma) * g**2
            theta = theta - lr / np.sqrt(e + eps) * g
            out.append(theta)
        return out

    return run


def adam(lr: float, betas: tuple[float, float], eps: float, decoupled_decay: float = 0.0) -> Callable[[], Any]:
    """§3.2.3 (and §3.2.4 with ``decoupled_decay`` = lambda):

    m_t = b1 m + (1-b1) g;  v_t = b2 v + (1-b2) g^2;  m^ = m_t/(1-b1^t);  v^ = v_t/(1-b2^t)
    theta_{t+1} = theta_t - eta (m^ / (sqrt(v^) + eps) + lambda theta_t)
    """
    b1, b2 = betas

    def run() -> list[np.ndarray]:
        theta, m, v, out = THETA0.copy(), np.zeros_like(THETA0), np.zeros_like(THETA0), []
        for t in range(1, STEPS + 1):
            g = grad(theta)
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g**2
            m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
            theta = theta - lr * (m_hat / (np.sqrt(v_hat) + eps) + decoupled_decay * theta)
            out.append(theta)
        return out

    return run


# -------------------------------------------------------------------------------------- the cases

D = BOOK.defaults
CASES: dict[str, tuple[str, dict[str, Any], Callable[[], list[np.ndarray]]]] = {
    "sgd": ("sgd", hp_for("sgd", lr=0.05), sgd(0.05)),
    "sgd_momentum": ("sgd_momentum", hp_for("sgd_momentum", lr=0.02), momentum(0.02, D["sgd_momentum"]["momentum"])),
    "nag": ("nag", hp_for("nag", lr=0.02), nesterov_lookahead(0.02, D["nag"]["momentum"])),
    # torch puts eps outside the root (g / (sqrt(G) + eps)); with the catalog's eps = 1e-10 and G = O(1) the two
    # forms differ by ~lr * eps / G per step, far below the tolerance (checked below, not assumed)
    "adagrad": ("adagrad", hp_for("adagrad", lr=0.1), adagrad(0.1, D["adagrad"]["eps"])),
    "rmsprop": ("rmsprop", hp_for("rmsprop", lr=0.01), rmsprop(0.01, D["rmsprop"]["alpha"], D["rmsprop"]["eps"])),
    "adam": ("adam", hp_for("adam", lr=0.05), adam(0.05, tuple(D["adam"]["betas"]), D["adam"]["eps"])),
    "adamw": (
        "adamw",
        hp_for("adamw", lr=0.05, weight_decay=0.1),
        adam(0.05, tuple(D["adamw"]["betas"]), D["adamw"]["eps"], decoupled_decay=0.1),
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_update_rule_matches_seed_formula(case: str) -> None:
    name, hp, reference = CASES[case]
    expected = reference()
    actual = run_torch(name, hp)
    # the loss actually moved, so the comparison is not between two copies of theta_0
    assert np.abs(expected[-1] - THETA0).max() > 1e-2
    for step, (a, e) in enumerate(zip(actual, expected, strict=True), start=1):
        np.testing.assert_allclose(a, e, rtol=0, atol=TOL, err_msg=f"{case}, step {step}")


def test_catalog_hyperparameters_used_are_the_seed_ones() -> None:
    """The cases above take beta, gamma and eps from the catalog: make sure those are the seed's typical values."""
    assert D["sgd_momentum"]["momentum"] == 0.9 and D["sgd_momentum"]["nesterov"] is False
    assert D["nag"]["momentum"] == 0.9 and D["nag"]["nesterov"] is True
    assert D["rmsprop"]["alpha"] == 0.9  # §3.2.2: gamma, typically 0.9 (torch's default would be 0.99)
    assert D["rmsprop"]["momentum"] == 0.0
    assert tuple(D["adam"]["betas"]) == (0.9, 0.999)
    assert D["adam"]["weight_decay"] == 0.0
    assert D["adamw"]["weight_decay"] > 0.0


@pytest.mark.parametrize(("case", "eps"), [("adagrad", D["adagrad"]["eps"]), ("rmsprop", D["rmsprop"]["eps"])])
def test_eps_placement_difference_is_below_tolerance(case: str, eps: float) -> None:
    """Torch: g / (sqrt(G) + eps); seed: g / sqrt(G + eps). Run torch's form in NumPy too and show that the
    difference from the seed's form is below the 1e-6 tolerance at the catalog's eps (and that it is *not* at a
    large eps, so the comparison above would notice a wrong formula)."""

    def torch_form(eps_: float, seed_form: bool) -> np.ndarray:
        theta, acc = THETA0.copy(), np.zeros_like(THETA0)
        lr = 0.1 if case == "adagrad" else 0.01
        gamma = D["rmsprop"]["alpha"]
        for _ in range(STEPS):
            g = grad(theta)
            acc = acc + g**2 if case == "adagrad" else gamma * acc + (1 - gamma) * g**2
            denom = np.sqrt(acc + eps_) if seed_form else np.sqrt(acc) + eps_
            theta = theta - lr * g / denom
        return theta

    assert np.abs(torch_form(eps, True) - torch_form(eps, False)).max() < TOL / 100
    assert np.abs(torch_form(1e-1, True) - torch_form(1e-1, False)).max() > TOL
    # and torch really is the eps-outside form
    np.testing.assert_allclose(
        run_torch(case, hp_for(case, lr=0.1 if case == "adagrad" else 0.01))[-1],
        torch_form(eps, False),
        rtol=0,
        atol=1e-12,
    )


def test_nesterov_differs_from_classical_momentum() -> None:
    """The NAG comparison is not vacuous: its sequence differs from heavy-ball momentum's."""
    classical = momentum(0.02, 0.9)()[-1]
    lookahead = nesterov_lookahead(0.02, 0.9)()[-1]
    assert np.abs(classical - lookahead).max() > 1e-4


def test_adamw_decay_is_decoupled() -> None:
    """AdamW's decay is not Adam's L2 term: torch.optim.Adam(weight_decay) follows a different sequence."""
    decoupled = run_torch("adamw", hp_for("adamw", lr=0.05, weight_decay=0.1))[-1]
    l2 = run_torch("adam", hp_for("adam", lr=0.05, weight_decay=0.1))[-1]
    assert np.abs(decoupled - l2).max() > 1e-4
