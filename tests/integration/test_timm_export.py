"""The timm export, checked against timm's documented argument names and schedule formulas, for every job of
the shared table (and run by timm itself where timm imports).

timm cannot be installed here: it imports torchvision, and PyPI's torchvision wheels do not load with the CPU
torch of this environment. So the names and defaults timm documents are recorded below as tables, read at

    huggingface/pytorch-image-models @ aa4b5850c1543fa488abf260f18390eda46cf85d (timm 1.0.29.dev0)

with ``git show <commit>:<path>`` (paths in each table's comment). Every key the export writes must be in them,
and the schedule section must give the answer's lr at six points of the run by timm's own formulas
(``_get_lr`` of timm/scheduler/{cosine,poly,step,multistep}_lr.py, transcribed below); the answer's lr is what
optirec's torch scheduler (optimizers/schedulers.py) sets. Where ``timm`` does import, the last test builds the
optimizer and scheduler with timm and compares them with the answer.
"""

from __future__ import annotations

import bisect
import inspect
import math
from typing import Any, Final

import pytest
import torch
from export_profiles import PROFILES, recommendation

from optirec import Recommendation
from optirec.optimizers.errors import ExportError
from optirec.optimizers.exporters import export, to_timm
from optirec.optimizers.exporters.common import PLACEHOLDER_TOTAL_STEPS, WARMUP_START_FACTOR
from optirec.optimizers.schedulers import build_scheduler
from optirec.rules import default_rulebook

pytestmark = pytest.mark.integration

IDS = list(PROFILES)
BOOK = default_rulebook()
SOURCE: Final = "huggingface/pytorch-image-models@aa4b5850c1543fa488abf260f18390eda46cf85d"

#: timm/optim/_optim_factory.py create_optimizer_v2: argument -> default (the rest, **kwargs, go to the class)
CREATE_OPTIMIZER_V2: Final[dict[str, Any]] = {
    "opt": "sgd", "lr": None, "weight_decay": 0.0, "momentum": 0.9, "foreach": None, "filter_bias_and_bn": True,
    "fallback_list": (), "fallback_no_weight_decay": False, "layer_decay": None, "layer_decay_min_scale": 0.0,
    "layer_decay_no_opt_scale": None, "param_group_fn": None,
}  # fmt: skip
#: timm/optim/_optim_factory.py OptimInfo registrations (the names the export may write): name ->
#: (class, defaults the registry sets, has_momentum); "nesterov" is register_alias('nesterov', 'sgd')
REGISTRY: Final[dict[str, tuple[str, dict[str, Any], bool]]] = {
    "sgd": ("torch.optim.SGD", {"nesterov": True}, True),
    "nesterov": ("torch.optim.SGD", {"nesterov": True}, True),
    "momentum": ("torch.optim.SGD", {"nesterov": False}, True),
    "adam": ("torch.optim.Adam", {}, False),
    "adamw": ("torch.optim.AdamW", {}, False),
    "adamax": ("torch.optim.Adamax", {}, False),
    "nadam": ("torch.optim.NAdam", {}, False),
    "radam": ("torch.optim.RAdam", {}, False),
    "adagrad": ("torch.optim.Adagrad", {"eps": 1e-8}, False),
    "rmsprop": ("torch.optim.RMSprop", {"alpha": 0.9}, True),
    "rmsproptf": ("timm.optim.RMSpropTF", {"alpha": 0.9}, True),
    "lamb": ("timm.optim.Lamb", {}, False),
    "lion": ("timm.optim.Lion", {}, False),
    "adafactor": ("timm.optim.Adafactor", {}, False),
    "muon": ("timm.optim.Muon", {}, True),
}
#: constructor keywords of timm's own classes (timm/optim/rmsprop_tf.py, lamb.py, lion.py, adafactor.py, muon.py
#: __init__); torch's classes are read with inspect.signature
TIMM_CLASS_KWARGS: Final[dict[str, set[str]]] = {
    "timm.optim.RMSpropTF": {
        "lr", "alpha", "eps", "weight_decay", "momentum", "centered", "decoupled_decay", "corrected_weight_decay",
        "lr_in_momentum", "caution",
    },
    "timm.optim.Lamb": {
        "lr", "bias_correction", "betas", "eps", "weight_decay", "grad_averaging", "max_grad_norm", "trust_clip",
        "always_adapt", "caution", "decoupled_decay", "corrected_weight_decay",
    },
    "timm.optim.Lion": {"lr", "betas", "weight_decay", "caution", "corrected_weight_decay", "maximize", "foreach"},
    "timm.optim.Adafactor": {
        "lr", "eps", "eps_scale", "clip_threshold", "decay_rate", "betas", "weight_decay", "scale_parameter",
        "warmup_init", "min_dim_size_to_factor", "caution",
    },
    "timm.optim.Muon": {
        "lr", "weight_decay", "momentum", "nesterov", "ns_steps", "ns_coefficients", "eps", "safety_factor",
        "adjust_lr_fn", "conv_mode", "normalize_spatial", "adamw_lr", "fallback_lr_scale", "betas", "algo",
        "scale_eps", "capturable", "verbose",
    },
}  # fmt: skip
#: timm/scheduler/scheduler_factory.py create_scheduler_v2: argument -> default
CREATE_SCHEDULER_V2: Final[dict[str, Any]] = {
    "sched": "cosine", "num_epochs": 300, "decay_epochs": 90, "decay_milestones": (90, 180, 270),
    "cooldown_epochs": 0, "patience_epochs": 10, "decay_rate": 0.1, "min_lr": 0.0, "warmup_lr": 1e-5,
    "warmup_epochs": 0, "warmup_prefix": False, "noise": None, "noise_pct": 0.67, "noise_std": 1.0,
    "noise_seed": 42, "cycle_mul": 1.0, "cycle_decay": 0.1, "cycle_limit": 1, "k_decay": 1.0, "plateau_mode": "max",
    "step_on_epochs": True, "updates_per_epoch": 0,
}  # fmt: skip
#: the sched values create_scheduler_v2 builds (scheduler_factory.py: any other name gives no scheduler)
SCHEDS: Final = ("cosine", "tanh", "step", "multistep", "plateau", "poly")
#: train.py argparse: dest -> (flag, default)
TRAIN_ARGS: Final[dict[str, tuple[str, Any]]] = {
    "clip_grad": ("--clip-grad", None),
    "clip_mode": ("--clip-mode", "norm"),  # 'One of ("norm", "value", "agc")': timm/utils/clip_grad.py
    "model_ema": ("--model-ema", False),
    "model_ema_decay": ("--model-ema-decay", 0.9998),
    "model_ema_warmup": ("--model-ema-warmup", False),
    "batch_size": ("-b/--batch-size", 128),  # per process: global = batch_size x world_size x grad_accum_steps
    "grad_accum_steps": ("--grad-accum-steps", 1),
    "amp": ("--amp", False),
    "amp_dtype": ("--amp-dtype", "float16"),  # train.py asserts it is 'float16' or 'bfloat16'
}
CLIP_MODES: Final = ("norm", "value", "agc")
AMP_DTYPES: Final = {"fp16": "float16", "bf16": "bfloat16"}

#: profile id -> what the refusal must name, and why timm cannot do it
REFUSED: Final = {
    # create_optimizer_v2 builds one optimizer; the answer gives embeddings Adagrad and the rest Adam
    "sparse-recommender": "parameter split (embeddings -> adagrad, dense -> adam)",
    # timm's factory has cosine, tanh, step, multistep, plateau, poly: nothing decays as 1/sqrt(step)
    "transformer-inverse-sqrt": "'inverse_sqrt' schedule",
}


def _export(pid: str) -> tuple[Recommendation, dict[str, Any], list[str]]:
    rec = recommendation(pid)
    notes: list[str] = []
    out = export(rec, "timm", notes)
    assert isinstance(out, dict)
    return rec, out, notes


def _tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list | tuple) else value


def _class_kwargs(path: str) -> set[str]:
    if path in TIMM_CLASS_KWARGS:
        return TIMM_CLASS_KWARGS[path]
    cls = getattr(torch.optim, path.rsplit(".", 1)[1])
    return set(inspect.signature(cls).parameters) - {"params"}


# ------------------------------------------------------------------------- timm's formulas, transcribed
def timm_lr(kw: dict[str, Any], lr: float, t: int) -> float:
    """The lr timm's scheduler built by ``create_scheduler_v2(**kw)`` sets after ``step_update(num_updates=t)``.

    scheduler_factory.py: with ``step_on_epochs=False`` every count is multiplied by ``updates_per_epoch``;
    the schedulers' ``_get_lr`` (cosine_lr.py, poly_lr.py, step_lr.py, multistep_lr.py): a linear warmup from
    ``warmup_lr_init`` over ``warmup_t``, then (minus ``warmup_t`` with ``warmup_prefix``) the decay.
    """
    a = {**CREATE_SCHEDULER_V2, **kw}
    assert a["step_on_epochs"] is False and a["updates_per_epoch"] > 0
    n = a["updates_per_epoch"]
    t_initial, warmup_t, decay_t = a["num_epochs"] * n, a["warmup_epochs"] * n, a["decay_epochs"] * n
    milestones = [m * n for m in a["decay_milestones"]]
    if t < warmup_t:
        return float(a["warmup_lr"] + t * (lr - a["warmup_lr"]) / warmup_t)
    if a["warmup_prefix"]:
        t -= warmup_t
    if a["sched"] == "step":
        return float(lr * a["decay_rate"] ** (t // decay_t))
    if a["sched"] == "multistep":
        return float(lr * a["decay_rate"] ** bisect.bisect_right(milestones, t + 1))
    assert a["sched"] in ("cosine", "poly")
    mul = a["cycle_mul"]
    if mul != 1:
        i = math.floor(math.log(1 - t / t_initial * (1 - mul), mul))
        t_i = mul**i * t_initial
        t_curr = t - (1 - mul**i) / (1 - mul) * t_initial
    else:
        i = t // t_initial
        t_i = t_initial
        t_curr = t - t_initial * i
    lr_max, lr_min, k = lr * a["cycle_decay"] ** i, a["min_lr"], a["k_decay"]
    if i >= a["cycle_limit"]:
        return float(lr_min)
    if a["sched"] == "cosine":
        return float(lr_min + 0.5 * (lr_max - lr_min) * (1 + math.cos(math.pi * t_curr**k / t_i**k)))
    return float(lr_min + (lr_max - lr_min) * (1 - t_curr**k / t_i**k) ** a["decay_rate"])


def _answer_lrs(rec: Recommendation, points: list[int]) -> dict[int, float]:
    """The answer's lr at each point: optirec's scheduler (optimizers/schedulers.py), stepped once per update."""
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=rec.optimizer.hyperparameters["lr"])
    total = None if rec.schedule.total_steps is not None else PLACEHOLDER_TOTAL_STEPS
    scheduler = build_scheduler(optimizer, rec.schedule, total_steps=total)
    out: dict[int, float] = {}
    for t in range(max(points) + 1):
        if t in points:
            out[t] = optimizer.param_groups[0]["lr"]
        optimizer.step()
        scheduler.step()
    return out


def _points(rec: Recommendation, kw: dict[str, Any]) -> list[int]:
    """At least six points: the first two updates, mid-warmup, the warmup's end, a quarter, half and three
    quarters of the decay, the last update; and both sides of every step-decay milestone."""
    warmup, main = kw["warmup_epochs"], kw["num_epochs"]
    total = rec.schedule.total_steps or PLACEHOLDER_TOTAL_STEPS
    if kw.get("cycle_mul", 1.0) != 1.0:
        main = total - warmup
    points = {0, 1, warmup // 2, warmup, warmup + main // 4, warmup + main // 2, warmup + 3 * main // 4, total - 1}
    for m in rec.schedule.milestones or []:
        points |= {m - 1, m}
    return sorted(p for p in points if 0 <= p < total)


# ---------------------------------------------------------------------------------------------- tests
def test_the_tables_are_timms() -> None:
    """What the other tests lean on: the registry names are timm's (not optirec's), the sched values too."""
    assert set(REGISTRY) >= {"nesterov", "momentum", "rmsprop", "rmsproptf"}
    assert "exponential" not in SCHEDS and "inverse_sqrt" not in SCHEDS and "linear" not in SCHEDS
    assert CREATE_SCHEDULER_V2["warmup_prefix"] is False  # so the export must set it
    assert CREATE_OPTIMIZER_V2["momentum"] == 0.9  # so the export must pass momentum=0 for plain SGD


@pytest.mark.parametrize("pid", IDS, ids=IDS)
def test_timm_export_uses_timms_names_and_matches_the_answer(pid: str) -> None:
    if pid in REFUSED:
        with pytest.raises(ExportError) as info:
            to_timm(recommendation(pid))
        assert REFUSED[pid] in str(info.value)
        return
    rec, out, notes = _export(pid)
    assert set(out) == {"create_optimizer_v2", "create_scheduler_v2", "train_args"}
    opt_kw, sched_kw, train = out["create_optimizer_v2"], out["create_scheduler_v2"], out["train_args"]
    # -- optimizer: every key is create_optimizer_v2's or its class's; the values are the answer's
    opt = opt_kw["opt"]
    assert opt in REGISTRY, opt
    cls, registry_defaults, has_momentum = REGISTRY[opt]
    allowed = set(CREATE_OPTIMIZER_V2) | _class_kwargs(cls)
    assert set(opt_kw) <= allowed, set(opt_kw) - allowed
    hp = dict(rec.optimizer.hyperparameters)
    assert opt_kw["lr"] == hp.pop("lr")
    assert opt_kw["weight_decay"] == hp.pop("weight_decay", 0.0)
    built = {**registry_defaults, **{k: v for k, v in opt_kw.items() if k not in CREATE_OPTIMIZER_V2}}
    if has_momentum:
        built["momentum"] = opt_kw.get("momentum", CREATE_OPTIMIZER_V2["momentum"])
    catalog = BOOK.optimizers[rec.optimizer.name].class_path
    if catalog.startswith("torch.optim."):
        assert cls == catalog  # the same torch class the answer builds
    for key, value in hp.items():  # every other hyperparameter reaches the class unchanged
        assert _tuple(built[key]) == _tuple(value), key
    no_decay = any(g.name == "no_decay" for g in rec.param_groups)
    assert opt_kw["filter_bias_and_bn"] is no_decay
    decay = [g.layerwise_lr_decay for g in rec.param_groups if g.layerwise_lr_decay is not None]
    assert opt_kw.get("layer_decay") == (decay[0] if decay else None)
    # -- scheduler: create_scheduler_v2's names, counted in updates
    assert set(sched_kw) <= set(CREATE_SCHEDULER_V2), set(sched_kw) - set(CREATE_SCHEDULER_V2)
    assert sched_kw["sched"] in SCHEDS
    assert (sched_kw["step_on_epochs"], sched_kw["updates_per_epoch"]) == (False, 1)
    if sched_kw["warmup_epochs"]:
        assert sched_kw["warmup_prefix"] is True  # the answer's decay starts after its warmup
        assert sched_kw["warmup_lr"] == pytest.approx(WARMUP_START_FACTOR * opt_kw["lr"])
    # -- train.py: clipping, EMA, batch, AMP
    assert set(train) <= set(TRAIN_ARGS), set(train) - set(TRAIN_ARGS)
    clip = rec.gradient_clipping
    assert train["clip_grad"] == (clip.max_norm if clip is not None else None)
    if clip is not None:
        assert train["clip_mode"] == "norm" and train["clip_mode"] in CLIP_MODES
    assert train.get("model_ema", False) is (rec.ema is not None)
    if rec.ema is not None:
        assert train["model_ema_decay"] == rec.ema.decay
    devices = rec.profile.get("num_devices") or 1
    if rec.batch_size is not None:
        assert train["batch_size"] * devices == rec.batch_size
    assert train.get("amp", False) is bool(rec.profile.get("mixed_precision"))
    if "amp_dtype" in train:
        assert train["amp_dtype"] == AMP_DTYPES[rec.profile["precision"]]
    # -- every difference from the answer is named in a note
    for g in rec.param_groups:
        if g.frozen:
            assert any(n.startswith(f"param_groups.{g.name}: freeze") for n in notes)
    if decay:
        assert any(n.startswith("layer_decay=") and "lr_scale" in n for n in notes)
    if rec.schedule.total_steps is None:
        assert any(n.startswith("total_steps is unknown") for n in notes)
    if rec.ema is not None:
        assert any(n.startswith("model_ema:") for n in notes)
    if rec.phases:
        assert any(n.startswith("phases:") for n in notes)


@pytest.mark.parametrize("pid", IDS, ids=IDS)
def test_timm_schedule_gives_the_answers_lr(pid: str) -> None:
    if pid in REFUSED:
        with pytest.raises(ExportError):
            to_timm(recommendation(pid))
        return
    rec, out, _ = _export(pid)
    kw = out["create_scheduler_v2"]
    lr = out["create_optimizer_v2"]["lr"]
    points = _points(rec, kw)
    assert len(points) >= 6
    answer = _answer_lrs(rec, points)
    got = {t: timm_lr(kw, lr, t) for t in points}
    assert got == pytest.approx(answer, rel=1e-6, abs=1e-12)


@pytest.mark.parametrize(
    ("pid", "exact"),
    [
        ("efficientnet-exponential", "rmsprop"),  # the answer is torch.optim.RMSprop: rmsproptf is only named
        ("dqn", "rmsprop"),
    ],
    ids=["efficientnet-exponential", "dqn"],
)
def test_rmsprop_is_torchs_and_the_tf_variant_is_named_where_the_rationale_cites_it(pid: str, exact: str) -> None:
    rec, out, notes = _export(pid)
    assert out["create_optimizer_v2"]["opt"] == exact
    names_tf = any("RMSpropTF" in r.effect for r in rec.rationale)
    assert any("rmsproptf" in n for n in notes) is names_tf


@pytest.mark.parametrize("pid", IDS, ids=IDS)
def test_timm_itself_builds_the_answer(pid: str) -> None:
    timm = pytest.importorskip(
        "timm", reason="timm imports torchvision, whose PyPI wheels do not load with this CPU torch"
    )
    if pid in REFUSED:
        pytest.skip(f"refused: {REFUSED[pid]}")
    rec, out, _ = _export(pid)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 2))
    optimizer = timm.optim.create_optimizer_v2(model, **out["create_optimizer_v2"])
    scheduler, _ = timm.scheduler.create_scheduler_v2(optimizer, **out["create_scheduler_v2"])
    points = _points(rec, out["create_scheduler_v2"])
    answer = _answer_lrs(rec, points)
    assert type(optimizer).__name__ == REGISTRY[out["create_optimizer_v2"]["opt"]][0].rsplit(".", 1)[1]
    for t in points:
        scheduler.step_update(num_updates=t)
        for group in optimizer.param_groups:  # layer_decay's lr_scale is applied by the scheduler
            want = answer[t] * group.get("lr_scale", 1.0)
            assert group["lr"] == pytest.approx(want, rel=1e-6, abs=1e-12)
    clip = out["train_args"]["clip_grad"]
    if clip is not None:
        model(torch.randn(3, 4)).pow(2).sum().mul(1e3).backward()
        timm.utils.dispatch_clip_grad(model.parameters(), clip, mode=out["train_args"]["clip_mode"])
        norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()]))
        assert float(norm) <= clip * (1 + 1e-5)
