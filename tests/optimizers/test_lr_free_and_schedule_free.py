"""The learning-rate-free (Prodigy, D-Adaptation Adam) and Schedule-Free (AdamW, SGD) optimizers of the catalog.

Schedule-Free trains at a point y and is meant to be evaluated at the average x of its iterates (Defazio et al.
2024; the schedule_free README: ``optimizer.eval()`` where ``model.eval()`` is called, ``optimizer.train()``
where ``model.train()`` is). Checked here: ``evaluation_mode`` puts the parameters at x and back, ``train_step``
trains at y, ``run_trial`` scores held-out batches at x, HybridOptimizer forwards the switch and keeps its
parts' own group state, wrappers refuse a Schedule-Free base, and the exporters carry the switch (or refuse).
"""

from __future__ import annotations

import ast
import contextlib
import math
from typing import Any

import pytest
import pytorch_optimizer
import torch
from torch import nn

from optirec.optimizers import (
    BuildError,
    HybridOptimizer,
    build,
    evaluation_mode,
    run_trial,
    train_mode,
    train_step,
)
from optirec.optimizers.errors import ExportError
from optirec.optimizers.exporters import export_notes, to_hf, to_lightning, to_optuna, to_timm, to_torch_code
from optirec.optimizers.workloads.base import Batch, Workload
from optirec.rules import Recommendation, default_rulebook, recommend
from optirec.rules.recommendation import ScheduleSpec

BOOK = default_rulebook()
NEW = ("prodigy", "dadapt_adam", "schedulefree_adamw", "schedulefree_sgd")
SCHEDULE_FREE = ("schedulefree_adamw", "schedulefree_sgd")
#: the interpolation weight of y between z and x: AdamW's beta1, SGD's momentum
BETA = {"schedulefree_adamw": lambda hp: hp["betas"][0], "schedulefree_sgd": lambda hp: hp["momentum"]}


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 1))


def _batch(tag: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(10 + tag)
    x = torch.randn(32, 6, generator=gen)
    return x, x.sum(dim=1, keepdim=True) + 0.05 * torch.randn(32, 1, generator=gen)


def _forced(name: str, total_steps: int = 40, **hp: Any) -> Recommendation:
    """The base recommendation with its optimizer replaced by catalog ``name`` at its defaults and schedule."""
    base = recommend({"total_steps": total_steps})
    spec = BOOK.optimizers[name]
    warmup = round(0.1 * total_steps) if spec.warmup else 0
    schedule = ScheduleSpec(
        name=spec.schedule,
        warmup_steps=warmup,
        warmup_ratio=warmup / total_steps,
        total_steps=total_steps,
    )
    optimizer = base.optimizer.model_copy(update={"name": name, "hyperparameters": dict(BOOK.defaults[name]) | hp})
    return base.model_copy(update={"optimizer": optimizer, "schedule": schedule})


def _params(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


# ------------------------------------------------------------------------------------------ the catalog
CATALOG = [
    # name, class, needs_eval_mode, schedule, lr_scaling, state per parameter
    ("prodigy", pytorch_optimizer.Prodigy, False, "cosine", "none", 4),
    ("dadapt_adam", pytorch_optimizer.DAdaptAdam, False, "cosine", "none", 3),
    ("schedulefree_adamw", pytorch_optimizer.ScheduleFreeAdamW, True, "constant", "sqrt", 2),
    ("schedulefree_sgd", pytorch_optimizer.ScheduleFreeSGD, True, "constant", "linear", 1),
]


@pytest.mark.parametrize(("name", "cls", "eval_mode", "schedule", "scaling", "state"), CATALOG, ids=NEW)
def test_catalog_entry(name: str, cls: type, eval_mode: bool, schedule: str, scaling: str, state: int) -> None:
    spec = BOOK.optimizers[name]
    assert spec.needs_eval_mode is eval_mode
    assert (spec.schedule, spec.lr_scaling, spec.state_multiplier) == (schedule, scaling, state)
    assert set(BOOK.defaults[name]) == set(spec.defaults_sources)
    for source in spec.defaults_sources.values():
        assert BOOK.bibliography.resolve(source) is not None, source
    model = _mlp()
    built = build(model, _forced(name))
    assert type(built.optimizer) is cls
    for key, value in BOOK.defaults[name].items():  # the catalog's defaults reach the class
        group = built.optimizer.param_groups[0]
        got = group.get("initial_lr", group[key]) if key == "lr" else group[key]  # (the warmup scales lr)
        assert (list(got) if isinstance(got, tuple) else got) == value, key


DEFAULTS = [
    ("prodigy", {"lr": 1.0, "betas": [0.9, 0.999], "weight_decay": 0.0}),
    ("dadapt_adam", {"lr": 1.0, "betas": [0.9, 0.999]}),
    ("schedulefree_adamw", {"lr": 0.0025, "betas": [0.9, 0.999], "weight_decay": 0.0}),
    ("schedulefree_sgd", {"lr": 1.0, "momentum": 0.9, "weight_decay": 0.0}),
]


@pytest.mark.parametrize(("name", "expected"), DEFAULTS, ids=[n for n, _ in DEFAULTS])
def test_defaults_are_the_official_ones(name: str, expected: dict[str, Any]) -> None:
    """The values of the official implementations' READMEs and of the pytorch_optimizer classes."""
    assert BOOK.defaults[name] == expected


@pytest.mark.parametrize("name", NEW, ids=NEW)
def test_new_optimizer_trains_with_train_step(name: str) -> None:
    model, batch = _mlp(), _batch()
    built = build(model, _forced(name, total_steps=150))
    loss_fn = nn.MSELoss()
    first = train_step(model, loss_fn, batch, built)
    for _ in range(149):
        last = train_step(model, loss_fn, batch, built)
    with evaluation_mode(built.optimizer), torch.no_grad():
        heldout = float(loss_fn(model(batch[0]), batch[1]))
    assert last < 0.5 * first and heldout < 0.5 * first, (first, last, heldout)


# ------------------------------------------------------------------------------------ evaluation_mode
@pytest.mark.parametrize("name", SCHEDULE_FREE, ids=SCHEDULE_FREE)
def test_evaluation_mode_puts_the_parameters_at_the_average(name: str) -> None:
    model, batch = _mlp(), _batch()
    built = build(model, _forced(name))
    for step in range(15):
        train_step(model, nn.MSELoss(), _batch(step), built)
    beta = BETA[name](BOOK.defaults[name])
    y = _params(model)  # train mode: y = (1 - beta) z + beta x
    z = [built.optimizer.state[p]["z"].clone() for p in model.parameters()]
    averaged = [(yi - (1 - beta) * zi) / beta for yi, zi in zip(y, z, strict=True)]
    with evaluation_mode(built.optimizer):
        inside = _params(model)
        assert all(not g["train_mode"] for g in built.optimizer.param_groups)
    for got, want, train_point in zip(inside, averaged, y, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(got, train_point)  # x differs from y after real steps
    for got, train_point in zip(_params(model), y, strict=True):  # back at y
        torch.testing.assert_close(got, train_point, rtol=1e-5, atol=1e-6)
    assert all(g["train_mode"] for g in built.optimizer.param_groups)
    assert math.isfinite(train_step(model, nn.MSELoss(), batch, built))  # and training goes on from y


NO_SWITCH = ["adamw", "sgd_momentum", "prodigy", "dadapt_adam", "lookahead", "lbfgs"]


@pytest.mark.parametrize("name", NO_SWITCH, ids=NO_SWITCH)
def test_evaluation_mode_is_a_no_op_for_other_optimizers(name: str) -> None:
    model = _mlp()
    built = build(model, _forced(name))
    train_step(model, nn.MSELoss(), _batch(), built)
    before = _params(model)
    with evaluation_mode(built.optimizer, None, object()):
        for got, want in zip(_params(model), before, strict=True):
            assert torch.equal(got, want)
    train_mode(built.optimizer)
    for got, want in zip(_params(model), before, strict=True):
        assert torch.equal(got, want)


def test_evaluation_mode_nests_and_survives_an_exception() -> None:
    model = _mlp()
    built = build(model, _forced("schedulefree_adamw"))
    for step in range(5):
        train_step(model, nn.MSELoss(), _batch(step), built)
    y = _params(model)
    groups = built.optimizer.param_groups
    with contextlib.suppress(RuntimeError), evaluation_mode(built.optimizer):
        x = _params(model)
        with evaluation_mode(built.optimizer):  # already at x: left there on exit
            pass
        assert not groups[0]["train_mode"]
        for got, want in zip(_params(model), x, strict=True):
            assert torch.equal(got, want)
        raise RuntimeError("an evaluation that fails")
    assert groups[0]["train_mode"]
    for got, want in zip(_params(model), y, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_train_step_trains_at_the_training_point() -> None:
    """A step taken after an evaluation left the optimizer in eval mode still takes its gradient at y."""
    model = _mlp()
    built = build(model, _forced("schedulefree_sgd"))
    for step in range(3):
        train_step(model, nn.MSELoss(), _batch(step), built)
    built.optimizer.eval()
    seen: list[bool] = []
    step = built.optimizer.step

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(all(g["train_mode"] for g in built.optimizer.param_groups))
        return step(*args, **kwargs)

    built.optimizer.step = spy  # type: ignore[method-assign]
    train_step(model, nn.MSELoss(), _batch(5), built)
    assert seen == [True]


# ------------------------------------------------------------------------------------------ run_trial
class Regression(Workload):
    """A seeded regression workload whose held-out evaluation records whether the optimizers stood at x."""

    name = "sf_regression"
    family = "mlp"
    description = "y = sum(x) + noise"

    def build_model(self) -> nn.Module:
        return _mlp().to(self.device)

    def train_batch(self, step: int) -> Batch:
        return _batch(step % 6)

    def heldout_batches(self) -> list[Batch]:
        return [_batch(100)]

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return nn.functional.mse_loss(model(batch[0]), batch[1])


@pytest.mark.parametrize("name", SCHEDULE_FREE, ids=SCHEDULE_FREE)
def test_trial_evaluates_schedule_free_at_the_average(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cls = type(build(_mlp(), _forced(name)).optimizer)
    live: list[Any] = []
    original_eval = cls.eval

    def eval_spy(self: Any) -> None:
        live.append(self)
        original_eval(self)

    monkeypatch.setattr(cls, "eval", eval_spy)
    work = Regression()
    modes: list[bool] = []
    original_evaluate = work.evaluate

    def evaluate_spy(model: nn.Module) -> Any:
        assert live, "evaluate ran before optimizer.eval()"
        modes.append(all(not g["train_mode"] for opt in live for g in opt.param_groups))
        return original_evaluate(model)

    monkeypatch.setattr(work, "evaluate", evaluate_spy)
    result = run_trial(_forced(name, total_steps=20), work, steps=20, device="cpu", seed=0, eval_every=5)
    assert result.status == "succeeded"
    assert len(modes) >= 4 and all(modes), modes  # every held-out evaluation, the final one included
    assert all(g["train_mode"] for opt in live for g in opt.param_groups)  # and back to training weights


def test_trial_heldout_loss_is_the_averaged_models() -> None:
    """run_trial's final held-out loss is the loss at x, the same run evaluated by hand inside evaluation_mode."""
    rec = _forced("schedulefree_adamw", total_steps=20)
    result = run_trial(rec, Regression(), steps=20, device="cpu", seed=0)
    torch.manual_seed(0)
    work = Regression()
    model = work.build_model()
    built = build(model, rec, total_steps=20)
    for step in range(20):
        train_step(
            model, None, work.train_batch(step), built, objective=lambda s=step: work.loss(model, work.train_batch(s))
        )
    with evaluation_mode(built.optimizer):
        at_x = work.evaluate(model).loss
    at_y = work.evaluate(model).loss
    assert result.final_loss == pytest.approx(at_x, rel=1e-5)
    assert at_x != pytest.approx(at_y, rel=1e-6)


# ------------------------------------------------------------------------------------- HybridOptimizer
def _two_layer() -> tuple[nn.Module, list[nn.Parameter], list[nn.Parameter]]:
    model = _mlp()
    first, second = model[0], model[2]
    return model, list(first.parameters()), list(second.parameters())


def _loss_step(model: nn.Module, optimizer: torch.optim.Optimizer, tag: int) -> None:
    optimizer.zero_grad()
    x, y = _batch(tag)
    nn.functional.mse_loss(model(x), y).backward()
    optimizer.step()


PARTS = [
    ("schedulefree_adamw", lambda p: pytorch_optimizer.ScheduleFreeAdamW(p, lr=0.01)),
    ("prodigy", lambda p: pytorch_optimizer.Prodigy(p)),
    ("dadapt_adam", lambda p: pytorch_optimizer.DAdaptAdam(p)),
]


@pytest.mark.parametrize(("name", "make"), PARTS, ids=[n for n, _ in PARTS])
def test_hybrid_part_keeps_its_own_group_state(name: str, make: Any) -> None:
    """Prodigy's and D-Adaptation's step-size estimate d and Schedule-Free's averaging weights live in the param
    groups: inside a HybridOptimizer the part must follow the same trajectory as on its own."""
    alone, a1, a2 = _two_layer()
    opt_a, opt_b = make(a1), torch.optim.Adam(a2, lr=1e-2)
    hybrid_model, h1, h2 = _two_layer()
    hybrid = HybridOptimizer({name: make(h1), "adam": torch.optim.Adam(h2, lr=1e-2)})
    for step in range(8):
        opt_a.zero_grad()
        opt_b.zero_grad()
        x, y = _batch(step)
        nn.functional.mse_loss(alone(x), y).backward()
        opt_a.step()
        opt_b.step()
        _loss_step(hybrid_model, hybrid, step)
    for got, want in zip(hybrid_model.parameters(), alone.parameters(), strict=True):
        torch.testing.assert_close(got, want)


def test_hybrid_forwards_train_and_eval() -> None:
    model, first, second = _two_layer()
    hybrid = HybridOptimizer(
        {"schedulefree_adamw": pytorch_optimizer.ScheduleFreeAdamW(first, lr=0.01), "adam": torch.optim.Adam(second)}
    )
    for step in range(5):
        _loss_step(model, hybrid, step)
    before_first, before_second = _params(model[0]), _params(model[2])
    with evaluation_mode(hybrid):
        assert not any(torch.equal(a, b) for a, b in zip(_params(model[0]), before_first, strict=True))
        assert all(torch.equal(a, b) for a, b in zip(_params(model[2]), before_second, strict=True))
        assert all(not g["train_mode"] for g in hybrid.optimizers["schedulefree_adamw"].param_groups)
    for got, want in zip(_params(model[0]), before_first, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert all(g["train_mode"] for g in hybrid.optimizers["schedulefree_adamw"].param_groups)


def test_hybrid_scheduler_still_reaches_the_parts() -> None:
    model, first, second = _two_layer()
    hybrid = HybridOptimizer({"prodigy": pytorch_optimizer.Prodigy(first), "adam": torch.optim.Adam(second, lr=0.1)})
    scheduler = torch.optim.lr_scheduler.LambdaLR(hybrid, lambda t: 0.5**t)
    for step in range(3):
        _loss_step(model, hybrid, step)
        scheduler.step()
    _loss_step(model, hybrid, 3)
    assert hybrid.optimizers["prodigy"].param_groups[0]["lr"] == pytest.approx(0.125)
    assert hybrid.optimizers["adam"].param_groups[0]["lr"] == pytest.approx(0.0125)
    assert hybrid.optimizers["prodigy"].param_groups[0]["d"] > 1e-6  # the estimate grew and was not reset


# ------------------------------------------------------------------------------------------- wrappers
WRAPPED = [(w, b) for w in ("lookahead", "sam") for b in SCHEDULE_FREE]


@pytest.mark.parametrize(("wrapper", "base"), WRAPPED, ids=[f"{w}-{b}" for w, b in WRAPPED])
def test_wrappers_refuse_a_schedule_free_base(wrapper: str, base: str) -> None:
    rec = _forced(wrapper, base=base)
    with pytest.raises(BuildError) as info:
        build(_mlp(), rec)
    assert info.value.field == "optimizer.hyperparameters.base"
    message = info.value.message
    assert f"cannot wrap {base}" in message and "optimizer.eval()" in message
    valid = message.split("valid bases: ")[1].split(", ")
    assert "adamw" in valid and "prodigy" in valid
    assert not set(SCHEDULE_FREE) & set(valid)


@pytest.mark.parametrize("base", ["prodigy", "dadapt_adam"], ids=["prodigy", "dadapt_adam"])
def test_lookahead_wraps_a_learning_rate_free_base(base: str) -> None:
    model = _mlp()
    built = build(model, _forced("lookahead", base=base))
    assert type(built.optimizer.optimizer).__name__ == BOOK.optimizers[base].class_path.rsplit(".", 1)[1]
    losses = [train_step(model, nn.MSELoss(), _batch(), built) for _ in range(40)]
    assert losses[-1] < losses[0]


# ------------------------------------------------------------------------------------------ exporters
def _constant(
    name: str, *, total: int | None = 100, warmup: int | None = 10, ratio: float = 0.1, **hp: Any
) -> Recommendation:
    rec = _forced(name, **hp)
    ratio = ratio if warmup != 0 else 0.0
    schedule = ScheduleSpec(name="constant", warmup_steps=warmup, warmup_ratio=ratio, total_steps=total)
    return rec.model_copy(update={"schedule": schedule})


@pytest.mark.parametrize(
    ("name", "optim"),
    [("schedulefree_adamw", "schedule_free_adamw"), ("schedulefree_sgd", "schedule_free_sgd")],
    ids=SCHEDULE_FREE,
)
def test_hf_runs_schedule_free_with_its_own_warmup(name: str, optim: str) -> None:
    rec = _constant(name)
    kw = to_hf(rec)
    assert kw["optim"] == optim
    assert kw["lr_scheduler_type"] == "constant"  # not constant_with_warmup: the optimizer warms up itself
    assert kw["warmup_steps"] == 10 and isinstance(kw["warmup_steps"], int)
    assert kw["learning_rate"] == BOOK.defaults[name]["lr"]
    if name == "schedulefree_adamw":
        assert (kw["adam_beta1"], kw["adam_beta2"]) == (0.9, 0.999)
    assert "optim_args" not in kw
    notes = export_notes(rec, "hf")
    assert any("pip install schedulefree" in n for n in notes)
    assert any("own linear warmup" in n for n in notes)


REFUSED_HF = [
    ("cosine-with-warmup", "schedulefree_adamw", {"schedule": "cosine"}, "applied twice"),
    ("warmup-as-ratio", "schedulefree_adamw", {"total": None, "warmup": None}, "ratio"),
    ("sgd-momentum-0.5", "schedulefree_sgd", {"momentum": 0.5}, "momentum=0.5"),
    ("prodigy", "prodigy", {}, "'prodigy'"),
    ("dadapt_adam", "dadapt_adam", {}, "'dadapt_adam'"),
]


@pytest.mark.parametrize(("case", "name", "change", "why"), REFUSED_HF, ids=[c for c, *_ in REFUSED_HF])
def test_hf_refuses_what_the_trainer_cannot_run(case: str, name: str, change: dict[str, Any], why: str) -> None:
    change = dict(change)
    schedule = change.pop("schedule", None)
    rec = _constant(name, **change)
    if schedule is not None:
        rec = rec.model_copy(update={"schedule": rec.schedule.model_copy(update={"name": schedule})})
    with pytest.raises(ExportError) as info:
        to_hf(rec)
    message = str(info.value)
    assert why in message
    assert "formats that can express this recommendation:" in message and "torch" in message.rsplit(":", 1)[1]


def test_hf_schedule_free_without_warmup_keeps_a_decay_schedule() -> None:
    rec = _constant("schedulefree_adamw", warmup=0)
    rec = rec.model_copy(update={"schedule": rec.schedule.model_copy(update={"name": "cosine"})})
    kw = to_hf(rec)
    assert (kw["optim"], kw["lr_scheduler_type"], kw["warmup_steps"]) == ("schedule_free_adamw", "cosine", 0)


@pytest.mark.parametrize("name", NEW, ids=NEW)
def test_timm_refuses_them(name: str) -> None:
    with pytest.raises(ExportError, match=rf"'{name}'.*no such optimizer"):
        to_timm(_constant(name))


def _exec_torch(rec: Recommendation) -> tuple[str, dict[str, Any], nn.Module]:
    code = to_torch_code(rec)
    ast.parse(code)
    model = _mlp()
    namespace: dict[str, Any] = {"model": model}
    exec(compile(code, "<torch code>", "exec"), namespace)
    return code, namespace, model


@pytest.mark.parametrize("name", SCHEDULE_FREE, ids=SCHEDULE_FREE)
def test_torch_code_switches_schedule_free_weights(name: str) -> None:
    code, ns, model = _exec_torch(_constant(name))
    assert "    optimizer.train()  # Schedule-Free" in code
    assert "def averaged_weights():" in code and "with averaged_weights():" in code
    assert isinstance(ns["optimizer"], getattr(pytorch_optimizer, BOOK.optimizers[name].class_path.rsplit(".")[-1]))
    batch = _batch()

    def compute_loss() -> torch.Tensor:
        return nn.functional.mse_loss(model(batch[0]), batch[1])

    ns["optimizer"].eval()  # a training_step after an evaluation must switch back first
    for _ in range(6):
        ns["training_step"](compute_loss)
    assert all(g["train_mode"] for g in ns["optimizer"].param_groups)
    y = _params(model)
    with ns["averaged_weights"]():
        assert all(not g["train_mode"] for g in ns["optimizer"].param_groups)
        assert any(not torch.equal(a, b) for a, b in zip(_params(model), y, strict=True))
    for got, want in zip(_params(model), y, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert any("averaged_weights" in n for n in export_notes(_constant(name), "torch"))


@pytest.mark.parametrize("name", ["prodigy", "dadapt_adam"], ids=["prodigy", "dadapt_adam"])
def test_torch_code_of_a_learning_rate_free_optimizer_has_no_switch(name: str) -> None:
    code, ns, model = _exec_torch(_forced(name))
    assert f"pytorch_optimizer.{BOOK.optimizers[name].class_path.rsplit('.')[-1]}(" in code
    assert ".train()" not in code and "averaged_weights" not in code
    batch = _batch()
    losses = [float(ns["training_step"](lambda: nn.functional.mse_loss(model(batch[0]), batch[1]))) for _ in range(5)]
    assert losses[-1] < losses[0]


HOOKS = [
    "configure_optimizers",
    "_schedule_free",
    "on_train_batch_start",
    "on_validation_epoch_start",
    "on_test_epoch_start",
    "on_predict_epoch_start",
    "on_train_epoch_end",
    "on_train_end",
]


def test_lightning_source_switches_schedule_free_weights() -> None:
    rec = _constant("schedulefree_adamw")
    source = to_lightning(rec)
    tree = ast.parse(source)
    assert [n.name for n in tree.body if isinstance(n, ast.FunctionDef)] == HOOKS
    namespace: dict[str, Any] = {}
    exec(source, namespace)

    class Module(nn.Module):
        locals().update({name: namespace[name] for name in HOOKS})

        def __init__(self) -> None:
            super().__init__()
            self.net = _mlp()
            self._optimizer: Any = None

        def optimizers(self, use_pl_optimizer: bool = True) -> Any:  # Lightning's, with one optimizer
            assert use_pl_optimizer is False
            return self._optimizer

    module = Module()
    config = module.configure_optimizers()
    module._optimizer = optimizer = config["optimizer"]
    batch = _batch()
    module.on_validation_epoch_start()  # the sanity check runs before any step
    for step in range(4):
        module.on_train_batch_start(batch, step)
        assert all(g["train_mode"] for g in optimizer.param_groups)
        optimizer.zero_grad()
        nn.functional.mse_loss(module.net(batch[0]), batch[1]).backward()
        optimizer.step()
    for hook in ("on_validation_epoch_start", "on_train_epoch_end", "on_test_epoch_start", "on_train_end"):
        getattr(module, hook)()
        assert all(not g["train_mode"] for g in optimizer.param_groups), hook
        module.on_train_batch_start(batch, 0)
        assert all(g["train_mode"] for g in optimizer.param_groups)
    assert any("hooks" in n for n in export_notes(rec, "lightning"))


@pytest.mark.parametrize("name", ["prodigy", "dadapt_adam"], ids=["prodigy", "dadapt_adam"])
def test_lightning_source_of_other_optimizers_has_no_hooks(name: str) -> None:
    tree = ast.parse(to_lightning(_forced(name)))
    assert [n.name for n in tree.body if isinstance(n, ast.FunctionDef)] == ["configure_optimizers"]


@pytest.mark.parametrize("name", ["prodigy", "dadapt_adam"], ids=["prodigy", "dadapt_adam"])
def test_optuna_notes_that_lr_is_a_multiplier(name: str) -> None:
    rec = _forced(name)
    space = to_optuna(rec)
    assert "lr" in space["params"]
    assert any("multiplies" in n for n in export_notes(rec, "optuna"))


@pytest.mark.parametrize(("wrapper", "base"), WRAPPED, ids=[f"{w}-{b}" for w, b in WRAPPED])
def test_exporters_refuse_a_wrapped_schedule_free_base(wrapper: str, base: str) -> None:
    rec = _forced(wrapper, base=base)
    with pytest.raises(ExportError, match=rf"'{base}'.*training and evaluation weights"):
        to_torch_code(rec)
    with pytest.raises(ExportError):  # (timm has neither SAM nor Lookahead at k=5, nor a Schedule-Free base)
        to_timm(rec)
