"""Proxy workloads: deterministic, trainable, traits as documented, registry and Profile mapping."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

from optirec.optimizers import build, run_trial, train_step
from optirec.optimizers.errors import BuildError
from optirec.optimizers.workloads import (
    DOMAIN_WORKLOADS,
    TRAITS,
    WORKLOADS,
    Evaluation,
    Workload,
    make_workload,
    workload_for,
    workload_kwargs_for,
)
from optirec.optimizers.workloads.lm import IGNORE
from optirec.rules import Profile, default_rulebook, recommend

NAMES = sorted(WORKLOADS)
TRAIT_CASES = [(name, trait) for name in NAMES for trait in sorted(WORKLOADS[name].supported_traits)]
BOOK = default_rulebook()


def _tensors(obj: Any) -> list[Any]:
    """Every leaf of a batch (tensors, and the plain values inside tuples and dataclasses)."""
    if isinstance(obj, tuple | list):
        return [leaf for item in obj for leaf in _tensors(item)]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _tensors(tuple(getattr(obj, f.name) for f in dataclasses.fields(obj)))
    return [obj]


def _same(a: Any, b: Any) -> bool:
    left, right = _tensors(a), _tensors(b)
    if len(left) != len(right):
        return False
    for x, y in zip(left, right, strict=True):
        if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor):
            if x.shape != y.shape or not torch.equal(x, y):
                return False
        elif x != y:
            return False
    return True


def _parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _optimizers(workload: Workload, model: nn.Module, lr: float = 2e-3) -> dict[str, torch.optim.Optimizer]:
    betas = (0.5, 0.999) if len(workload.players) > 1 else (0.9, 0.999)  # the usual GAN setting
    return {p: torch.optim.Adam(workload.player_parameters(model, p), lr=lr, betas=betas) for p in workload.players}


def _train(workload: Workload, model: nn.Module, steps: int) -> dict[str, list[float]]:
    optimizers = _optimizers(workload, model)
    losses: dict[str, list[float]] = {p: [] for p in workload.players}
    for step in range(steps):
        batch = workload.train_batch(step)
        for player, optimizer in optimizers.items():
            optimizer.zero_grad(set_to_none=True)
            loss = workload.player_loss(model, batch, player)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            losses[player].append(float(loss.detach()))
    return losses


# ------------------------------------------------------------------------------------------- registry


def test_registry_lists_every_family_sorted() -> None:
    assert list(WORKLOADS) == sorted(WORKLOADS)
    families = {cls.family for cls in WORKLOADS.values()}
    assert families == {"cnn", "vit", "transformer_lm", "rnn", "mlp", "recommender", "gan", "segmentation", "value"}
    for name, cls in WORKLOADS.items():
        assert cls.name == name and cls.description
        assert cls.supported_traits <= TRAITS
        assert set(cls.architectures) <= set(BOOK.valid("architecture")), name
        assert set(cls.domains) <= set(BOOK.valid("domain")), name
    assert WORKLOADS["gan"].players == ("generator", "discriminator")


def test_make_workload_unknown_name_suggests_and_lists_valid_values() -> None:
    with pytest.raises(BuildError) as err:
        make_workload("cnnn")
    assert err.value.field == "workload"
    message = str(err.value)
    assert "unknown workload 'cnnn'" in message and "did you mean 'cnn'?" in message
    assert "valid values: " + ", ".join(NAMES) in message
    with pytest.raises(BuildError, match="valid values") as err:
        make_workload("zzzzzz")
    assert "did you mean" not in str(err.value)


def test_make_workload_passes_options() -> None:
    workload = make_workload("rnn", size=1, seed=2, traits="noisy", cell="gru")
    assert workload.traits == {"noisy"} and workload.seed == 2
    assert any(isinstance(m, nn.GRU) for m in workload.build_model().modules())
    assert any(isinstance(m, nn.LSTM) for m in make_workload("rnn").build_model().modules())
    with pytest.raises(ValueError, match="cell"):
        make_workload("rnn", cell="transformer")
    with pytest.raises(ValueError, match="size"):
        make_workload("mlp", size=0)


@pytest.mark.parametrize("name", NAMES)
def test_unknown_trait_raises_and_unsupported_ones_are_reported(name: str) -> None:
    with pytest.raises(ValueError, match="unknown data traits"):
        make_workload(name, traits=["bogus"])
    unsupported = TRAITS - WORKLOADS[name].supported_traits
    workload = make_workload(name, traits=sorted(TRAITS))
    assert workload.traits == WORKLOADS[name].supported_traits
    assert workload.ignored_traits == unsupported
    assert workload.describe()["ignored_traits"] == sorted(unsupported)


# ------------------------------------------------------------------------------------------- the contract


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_given_seed_and_step(name: str) -> None:
    a, b, other = make_workload(name, seed=3), make_workload(name, seed=3), make_workload(name, seed=4)
    assert _same(a.train_batch(0), b.train_batch(0))
    assert _same(a.train_batch(5), b.train_batch(5))
    assert _same(a.heldout_batches(), b.heldout_batches())
    assert not _same(a.train_batch(0), a.train_batch(1))
    assert not _same(a.train_batch(0), other.train_batch(0))
    rng = torch.get_rng_state()
    model_a, model_b = a.build_model(), b.build_model()
    assert torch.equal(rng, torch.get_rng_state()), "build_model must not disturb the global RNG"
    states = zip(model_a.state_dict().values(), model_b.state_dict().values(), strict=True)
    assert all(torch.equal(x, y) for x, y in states)
    first, second = a.evaluate(model_a), b.evaluate(model_b)
    assert isinstance(first, Evaluation) and first == second
    assert math.isfinite(first.loss) and math.isfinite(first.metric)
    assert first.metric_name == WORKLOADS[name].metric_name


@pytest.mark.parametrize("name", NAMES)
def test_adam_trains_it(name: str) -> None:
    workload = make_workload(name, seed=0)
    model = workload.build_model()
    before = workload.evaluate(model)
    losses = _train(workload, model, 50)
    after = workload.evaluate(model)
    assert model.training, "evaluate restores train mode"
    assert all(math.isfinite(v) for series in losses.values() for v in series)
    if name == "gan":  # no loss to minimise: both players' objectives move and the sample score stays finite
        for series in losses.values():
            assert abs(sum(series[-5:]) / 5 - series[0]) > 0.02
        assert after.loss != before.loss and 0.0 <= after.metric <= 1.0
        return
    assert after.loss < 0.95 * before.loss, (before, after)
    improved = after.metric > before.metric if after.higher_is_better else after.metric < before.metric
    assert improved, (before, after)


@pytest.mark.parametrize("traits", [["imbalanced"], ["imbalanced", "sparse_features", "noisy"]], ids="+".join)
def test_adam_trains_the_tabular_rare_outcome_classifier(traits: list[str]) -> None:
    workload = make_workload("mlp", seed=0, traits=traits)
    model = workload.build_model()
    before = workload.evaluate(model)
    _train(workload, model, 50)
    after = workload.evaluate(model)
    assert after.metric_name == "auc" and after.higher_is_better
    assert after.loss < 0.7 * before.loss and after.metric > max(0.75, before.metric), (before, after)


@pytest.mark.parametrize("name", NAMES)
def test_size_scales_the_model_and_data(name: str) -> None:
    small, large = make_workload(name, size=1), make_workload(name, size=2)
    assert _parameters(large.build_model()) > _parameters(small.build_model())
    small_numel = sum(t.numel() for t in _tensors(small.train_batch(0)) if isinstance(t, torch.Tensor))
    large_numel = sum(t.numel() for t in _tensors(large.train_batch(0)) if isinstance(t, torch.Tensor))
    assert large_numel >= small_numel if name == "mlp" else large_numel > small_numel  # diabetes has 442 rows
    assert large.describe()["size"] == 2


@pytest.mark.parametrize("name", NAMES)
def test_batch_size_is_what_a_training_batch_holds(name: str) -> None:
    """``batch_size`` is what a Profile's batch_size would say (the quality bench reads it from there)."""
    for size in (1, 2):
        workload = make_workload(name, size=size)
        leading = {t.shape[0] for t in _tensors(workload.train_batch(0)) if isinstance(t, torch.Tensor) and t.ndim}
        assert leading == {workload.batch_size}, leading


@pytest.mark.parametrize("name", NAMES)
def test_the_recommended_optimizer_runs_on_it(name: str) -> None:
    """``build`` + ``train_step`` work on every workload (per player), through a module that returns the loss."""

    class Objective(nn.Module):
        def __init__(self, workload: Workload, model: nn.Module, player: str) -> None:
            super().__init__()
            self.workload, self.model, self.player = workload, model, player

        def forward(self, batch: Any) -> torch.Tensor:
            return self.workload.player_loss(self.model, batch, self.player)

    workload = make_workload(name)
    model = workload.build_model()
    rec = recommend({"architecture": WORKLOADS[name].architectures[0]})
    built = {p: build(workload.player_module(model, p), rec, total_steps=10) for p in workload.players}
    for step in range(3):
        batch = workload.train_batch(step)
        for player in workload.players:
            loss = train_step(Objective(workload, model, player), lambda out, _: out, (batch, None), built[player])
            assert math.isfinite(loss)


def test_gan_players_split_the_model() -> None:
    workload = make_workload("gan")
    model = workload.build_model()
    generator = workload.player_parameters(model, "generator")
    discriminator = workload.player_parameters(model, "discriminator")
    assert {id(p) for p in generator}.isdisjoint(id(p) for p in discriminator)
    assert len(generator) + len(discriminator) == len(list(model.parameters()))
    batch = workload.train_batch(0)
    workload.player_loss(model, batch, "discriminator").backward()  # type: ignore[no-untyped-call]
    assert all(p.grad is None for p in generator), "the discriminator loss detaches the generator's samples"
    with pytest.raises(ValueError, match="unknown player"):
        workload.player_loss(model, batch, "critic")


def test_dqn_target_network_is_refreshed_by_step() -> None:
    workload: Any = make_workload("dqn")
    model = workload.build_model()
    target = workload.target_network(model, 0)
    assert target is not model and not any(p.requires_grad for p in target.parameters())
    _train(workload, model, 3)  # steps 0-2: the same block, the target stays the initial copy
    first = next(iter(target.parameters()))
    assert not torch.equal(first, next(iter(model.parameters())))
    workload.target_network(model, workload.TARGET_EVERY)
    assert torch.equal(first, next(iter(model.parameters())))
    assert workload.target_network(model, workload.TARGET_EVERY) is target  # one target network per model


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_dqn_recommendation_learns_q_star(seed: int) -> None:
    """004 §2.3's DQN row, as torch's RMSprop: centered with alpha 0.95 (the Atari DQN's two averages) and a
    small eps. Copying the Atari table's 0.01, which sits under the square root there, into torch's eps (added
    after it) stalled learning: the held-out error fell by under 20% in 150 steps."""
    workload = make_workload("dqn", seed=seed)
    rec = recommend({"architecture": "dqn", "batch_size": workload.batch_size, "total_steps": 150})
    optimizer = build(nn.Linear(2, 2), rec, total_steps=150).optimizer
    assert isinstance(optimizer, torch.optim.RMSprop)
    group = optimizer.param_groups[0]
    assert group["centered"] is True and group["alpha"] == 0.95 and group["eps"] <= 1e-5
    result = run_trial(rec, workload, 150, "cpu", seed)
    assert result.heldout and result.final_loss is not None and not result.diverged
    assert result.final_loss < 0.25 * result.heldout[0].loss, (result.heldout[0], result.final_loss)


# ------------------------------------------------------------------------------------------- traits


def _digits_noisy(plain: Any, noisy: Any) -> None:
    assert torch.equal(plain.train_batch(0)[0], noisy.train_batch(0)[0])
    labels0 = torch.cat([plain.train_batch(s)[1] for s in range(8)])
    labels1 = torch.cat([noisy.train_batch(s)[1] for s in range(8)])
    assert 0.1 < float((labels0 != labels1).float().mean()) < 0.3
    assert _same(plain.heldout_batches(), noisy.heldout_batches())


def _digits_imbalanced(plain: Any, skewed: Any) -> None:
    def counts(w: Any) -> torch.Tensor:
        return torch.bincount(torch.cat([w.train_batch(s)[1] for s in range(10)]), minlength=10)

    balanced, imbalanced = counts(plain), counts(skewed)
    assert balanced.max() < 2 * balanced.min()
    assert imbalanced[0] > 5 * imbalanced[9] and imbalanced[9] > 0
    assert _same(plain.heldout_batches(), skewed.heldout_batches())


def _digits_high_dimensional(plain: Any, wide: Any) -> None:
    x0, x1 = plain.train_batch(0)[0], wide.train_batch(0)[0]
    assert x1.shape[-2:] == (4 * x0.shape[-2], 4 * x0.shape[-1])
    assert math.isfinite(float(wide.loss(wide.build_model(), wide.train_batch(0)).detach()))


def _lm_noisy(plain: Any, noisy: Any) -> None:
    ids0, (ids1, t1) = plain.train_batch(0)[0], noisy.train_batch(0)
    changed = float((ids0 != ids1).float().mean())
    assert 0.05 < changed < 0.15
    assert torch.equal(ids1[:, 1:], t1[:, :-1]), "targets are the (corrupted) text shifted by one"
    assert _same(plain.heldout_batches(), noisy.heldout_batches())


def _lm_variable_length(plain: Any, varied: Any) -> None:
    ids0, t0 = plain.train_batch(0)
    ids1, t1 = varied.train_batch(0)
    assert not (ids0 == plain.pad).any() and not (t0 == IGNORE).any()
    lengths = (t1 != IGNORE).sum(1)
    assert len(set(lengths.tolist())) > 3 and int(lengths.min()) >= varied.context // 4
    assert torch.equal(ids1 == varied.pad, t1 == IGNORE)
    assert math.isfinite(float(varied.loss(varied.build_model(), (ids1, t1)).detach()))


def _rnn_non_stationary(plain: Any, drifting: Any) -> None:
    assert _same(plain.train_batch(0), drifting.train_batch(0)), "no drift yet at step 0"
    late0, late1 = plain.train_batch(40)[0][0], drifting.train_batch(40)[0][0]
    assert not torch.allclose(late0, late1)
    assert float(late1.std()) > 1.1 * float(late0.std())  # the amplitude has grown by step 40
    # held-out is walk-forward: windows of the stream just ahead of the last step served, fixed given that step
    assert _same(drifting.heldout_batches(), drifting.heldout_batches())
    spread = {}
    for now in (0, 20, 60):
        drifting.train_batch(now)
        (ahead, _), _ = drifting.heldout_batches()[0]
        (soon, _), _ = drifting.train_batch(now + drifting.AHEAD // 2)
        spread[now] = float(ahead.std())
        assert spread[now] == pytest.approx(float(soon.std()), rel=0.05), "held-out shows the coming regime"
    assert spread[20] > 1.5 * spread[60]  # the amplitude peaks near step 24 and bottoms out near step 73
    plain_before = plain.heldout_batches()
    plain.train_batch(40)
    assert _same(plain_before, plain.heldout_batches()), "a stationary stream has one fixed held-out set"


def _rnn_variable_length(plain: Any, varied: Any) -> None:
    (series, lengths), _ = varied.train_batch(0)
    assert bool((plain.train_batch(0)[0][1] == plain.window).all())
    assert len(set(lengths.tolist())) > 3 and int(lengths.min()) >= varied.window // 4
    padding = torch.arange(varied.window)[None, :] >= lengths[:, None]
    assert bool((series.squeeze(-1)[padding] == 0).all())


def _rnn_noisy(plain: Any, noisy: Any) -> None:
    ((s0, _), y0), ((s1, _), y1) = plain.train_batch(0), noisy.train_batch(0)
    assert 0.2 < float((s1 - s0).std()) < 0.4 and not torch.equal(y0, y1)
    assert _same(plain.heldout_batches(), noisy.heldout_batches())


def _mlp_high_dimensional(plain: Any, wide: Any) -> None:
    (x0, y0), (x1, y1) = plain.train_batch(0), wide.train_batch(0)
    assert x1.shape[1] == x0.shape[1] + wide.EXTRA_FEATURES
    assert torch.equal(x1[:, : x0.shape[1]], x0) and torch.equal(y0, y1)


def _mlp_noisy(plain: Any, noisy: Any) -> None:
    (x0, y0), (x1, y1) = plain.train_batch(0), noisy.train_batch(0)
    assert torch.equal(x0, x1) and 0.3 < float((y1 - y0).std()) < 0.7
    assert _same(plain.heldout_batches(), noisy.heldout_batches())


def _mlp_imbalanced(plain: Any, rare: Any) -> None:
    labels, held = rare.train_y, rare.heldout_batches()[0][1]
    assert set(labels.unique().tolist()) == {0.0, 1.0}
    rate = float(labels.mean())
    assert 0.07 < rate < 0.14 and abs(float(held.mean()) - rate) < 0.03, "stratified: held-out shares the rate"
    assert (rare.metric_name, rare.higher_is_better) == ("auc", True)
    assert (plain.metric_name, plain.higher_is_better) == ("mse", False)
    model = rare.build_model()
    logits = model(rare.heldout_batches()[0][0]).detach()
    assert float(rare.loss(model, rare.heldout_batches()[0]).detach()) == pytest.approx(
        float(torch.nn.functional.binary_cross_entropy_with_logits(logits, held)), rel=1e-6
    )
    assert 0.0 <= rare.evaluate(model).metric <= 1.0


def _mlp_sparse(plain: Any, sparse: Any) -> None:
    (x0, y0), (x1, y1) = plain.train_batch(0), sparse.train_batch(0)
    assert torch.equal(y0, y1) and x1.shape[1] == x0.shape[1] * sparse.BINS
    assert set(x1.unique().tolist()) == {0.0, 1.0}
    assert bool((x1.sum(1) == x0.shape[1]).all()), "one active bin per original feature"
    assert float(x1.mean()) < 0.1


def _recommender_sparse(plain: Any, sparse: Any) -> None:
    assert sparse.num_items == plain.SPARSE_FACTOR * plain.num_items

    def touched(w: Any) -> float:
        return len(torch.unique(w.train_batch(0)[0][:, 1])) / float(w.num_items)

    assert touched(sparse) < touched(plain) / 3


def _recommender_imbalanced(plain: Any, skewed: Any) -> None:
    assert float(plain.heldout_batches()[0][1].mean()) > 0.25
    assert float(skewed.heldout_batches()[0][1].mean()) < 0.08


def _unet_noisy(plain: Any, noisy: Any) -> None:
    (x0, m0), (x1, m1) = plain.heldout_batches()[0], noisy.heldout_batches()[0]
    assert torch.equal(m0, m1), "held-out masks stay clean"
    assert float((x1 - m1).std()) > 2 * float((x0 - m0).std())
    flipped = float((plain.train_batch(0)[1] != noisy.train_batch(0)[1]).float().mean())
    assert 0.02 < flipped < 0.1


def _unet_imbalanced(plain: Any, skewed: Any) -> None:
    assert float(plain.train_batch(0)[1].mean()) > 0.15
    assert float(skewed.train_batch(0)[1].mean()) < 0.08


def _dqn_noisy(plain: Any, noisy: Any) -> None:
    (s0, t0), (s1, t1) = plain.train_batch(0), noisy.train_batch(0)
    assert torch.equal(s0, s1) and 0.3 < float((t1.rewards - t0.rewards).std()) < 0.7
    assert torch.equal(plain.q_star, noisy.q_star)


def _dqn_non_stationary(plain: Any, drifting: Any) -> None:
    drift = [drifting.train_batch(s)[1].rewards - plain.train_batch(s)[1].rewards for s in (0, 12, 25)]
    assert all(float(d.abs().max()) <= drifting.DRIFT + 1e-6 for d in drift)
    assert float(drift[0].abs().mean()) > 0.1 and not torch.allclose(drift[0], drift[1])
    assert torch.equal(plain.q_star, drifting.q_star), "scored against the Q* of the mean reward"


TRAIT_CHECKS: dict[tuple[str, str], Callable[[Any, Any], None]] = {
    ("cnn", "noisy"): _digits_noisy,
    ("cnn", "imbalanced"): _digits_imbalanced,
    ("cnn", "high_dimensional"): _digits_high_dimensional,
    ("vit", "noisy"): _digits_noisy,
    ("vit", "imbalanced"): _digits_imbalanced,
    ("vit", "high_dimensional"): _digits_high_dimensional,
    ("transformer_lm", "noisy"): _lm_noisy,
    ("transformer_lm", "variable_length_sequences"): _lm_variable_length,
    ("rnn", "non_stationary"): _rnn_non_stationary,
    ("rnn", "variable_length_sequences"): _rnn_variable_length,
    ("rnn", "noisy"): _rnn_noisy,
    ("mlp", "high_dimensional"): _mlp_high_dimensional,
    ("mlp", "noisy"): _mlp_noisy,
    ("mlp", "imbalanced"): _mlp_imbalanced,
    ("mlp", "sparse_features"): _mlp_sparse,
    ("recommender", "sparse_features"): _recommender_sparse,
    ("recommender", "imbalanced"): _recommender_imbalanced,
    ("unet", "noisy"): _unet_noisy,
    ("unet", "imbalanced"): _unet_imbalanced,
    ("dqn", "noisy"): _dqn_noisy,
    ("dqn", "non_stationary"): _dqn_non_stationary,
}


def test_every_supported_trait_has_a_check() -> None:
    assert set(TRAIT_CHECKS) == set(TRAIT_CASES)


@pytest.mark.parametrize(("name", "trait"), TRAIT_CASES)
def test_trait_changes_the_data_as_documented(name: str, trait: str) -> None:
    plain, traited = make_workload(name, seed=1), make_workload(name, seed=1, traits=[trait])
    assert traited.traits == {trait}
    TRAIT_CHECKS[(name, trait)](plain, traited)


# ------------------------------------------------------------------------------------------- profile -> workload


@pytest.mark.parametrize("architecture", BOOK.valid("architecture"))
def test_every_architecture_has_a_workload(architecture: str) -> None:
    name = workload_for({"architecture": architecture})
    assert architecture in WORKLOADS[name].architectures


@pytest.mark.parametrize("domain", BOOK.valid("domain"))
def test_every_domain_has_a_workload(domain: str) -> None:
    name = workload_for({"domain": domain})
    assert name == DOMAIN_WORKLOADS[domain] and domain in WORKLOADS[name].domains


def test_workload_for_precedence_and_inputs() -> None:
    assert workload_for({}) == "mlp"
    assert workload_for({"architecture": "lstm", "domain": "computer_vision"}) == "rnn"
    assert workload_for({"architecture": "resnet50"}) == "cnn"  # an alias
    assert workload_for(Profile(domain="nlp")) == "transformer_lm"
    assert workload_for(recommend({"architecture": "unet", "domain": "computer_vision"})) == "unet"
    assert workload_for(recommend({"domain": "recommender"})) == "recommender"


def test_workload_kwargs_for_matches_the_profile() -> None:
    profile = {"architecture": "gru", "data": ["noisy", "large_batch", "variable_length_sequences"]}
    kwargs = workload_kwargs_for(profile)
    assert kwargs == {"traits": ("noisy", "variable_length_sequences"), "cell": "gru"}
    workload = make_workload(workload_for(profile), **kwargs)
    assert workload.traits == {"noisy", "variable_length_sequences"}
    assert workload_kwargs_for(recommend({"architecture": "lstm"})) == {"traits": ()}


# ------------------------------------------------------------------------------------------- GPU


@pytest.mark.gpu
def test_workloads_run_on_cuda() -> None:
    if not torch.cuda.is_available():
        pytest.skip("CUDA is not available")
    for name in NAMES:
        cpu, gpu = make_workload(name), make_workload(name, device="cuda")
        assert _same(cpu.train_batch(0), tuple(_to_cpu(t) for t in gpu.train_batch(0))), name
        model = gpu.build_model()
        assert all(p.is_cuda for p in model.parameters())
        assert all(t.is_cuda for t in _tensors(gpu.train_batch(0)) if isinstance(t, torch.Tensor)), name
        _train(gpu, model, 3)
        assert math.isfinite(gpu.evaluate(model).loss), name


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.cpu()
    if isinstance(obj, tuple):
        return tuple(_to_cpu(o) for o in obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.replace(obj, **{f.name: _to_cpu(getattr(obj, f.name)) for f in dataclasses.fields(obj)})
    return obj
