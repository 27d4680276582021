"""The Hugging Face export run by the real transformers Trainer, for every profile of the shared table.

Each cell builds ``TrainingArguments(output_dir=..., report_to=[], use_cpu=True, **export)`` and a ``Trainer`` on
two tiny randomly initialised models (a BERT from a config, and a small model with BatchNorm, a layer-scale vector
and an embedding: nothing is downloaded), lets the Trainer create its optimizer and scheduler, and compares them
parameter by parameter with optirec's build() of the same answer: optimizer class, every group's lr, betas, eps,
momentum, which parameters are decayed, the lr at six points of the run against build_scheduler's curve; then two
real training steps check the clipping (the gradient norm after the Trainer clipped it), the samples per optimizer
step and the autocast flag. Every difference between the two must be named in a note; refused cells assert the
reason. The 4.x branch is a table test of ``hf.to_hf(rec, version="4.57")`` (4.57 is not installed).
"""

from __future__ import annotations

import ast
import copy
import importlib.metadata
import importlib.util
import math
import os
import re
from typing import Any, Final

import pytest
from export_profiles import PROFILES, recommendation

from optirec import recommend
from optirec.optimizers.errors import ExportError
from optirec.optimizers.exporters import export, hf, to_hf
from optirec.rules import Recommendation, default_rulebook
from optirec.rules.recommendation import OptimizerChoice, ScheduleSpec

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models come from configs, data is synthetic
pytestmark = pytest.mark.integration
transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

#: profile id -> what the refusal names, for the installed transformers (5.24)
REFUSED: Final = {
    # TrainingArguments.optim names one optimizer class for the whole model: no per-group optimizer
    "sparse-recommender": "parameter split",
    # SchedulerType (trainer_utils.py) has no multi-step curve; warmup_stable_decay drops only once
    "wrn-step": "no multi-step decay",
    # SchedulerType has no exponential (geometric) decay
    "efficientnet-exponential": "no exponential decay",
}
#: transformers 4.57 also drops optim_args for torch SGD/RMSprop (before huggingface/transformers#44203, 5.3); the
#: optimizer is checked before the schedule, so the step and exponential cells name their momentum first
REFUSED_4X: Final = {
    **REFUSED,
    "resnet-b1024": "momentum=0.9",  # SGD momentum
    "vit-transfer": "momentum=0.9",
    "wrn-step": "momentum=0.9, nesterov=True",
    "efficientnet-exponential": "momentum=0.9, alpha=0.9, eps=0.001",  # RMSprop's momentum, smoothing, eps
    "dqn": "alpha=0.95, centered=True",
}
#: TrainingArguments fields of 4.57.6 (src/transformers/training_args.py) the export may write
FIELDS_457: Final = {
    "optim", "learning_rate", "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon", "optim_args",
    "lr_scheduler_type", "lr_scheduler_kwargs", "warmup_steps", "warmup_ratio", "max_steps", "max_grad_norm",
    "per_device_train_batch_size", "gradient_accumulation_steps", "bf16", "fp16",
}  # fmt: skip
#: the run length where the answer states none (the Trainer needs one): 2000 x 0.010486 rounds the same both ways
UNKNOWN_STEPS: Final = 2000
#: optimizer hyperparameters that must be equal on every parameter both optimizers hold
COMPARED: Final = ("betas", "eps", "momentum", "dampening", "nesterov", "alpha", "centered", "lr_decay", "amsgrad")
_CLASS: Final = {"adamw_torch": "AdamW", "sgd": "SGD", "rmsprop": "RMSprop", "adagrad": "Adagrad"}
BOOK = default_rulebook()


class TinyBN(torch.nn.Module):  # type: ignore[misc]
    """Conv + BatchNorm named like torchvision (bn) and HF ResNet (normalization), a layer-scale vector, a head."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(99, 8)
        self.conv = torch.nn.Conv1d(8, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm1d(8)
        self.normalization = torch.nn.BatchNorm1d(8)
        self.gamma = torch.nn.Parameter(torch.ones(8))
        self.head = torch.nn.Linear(8, 2)

    def forward(self, input_ids: Any, labels: Any = None) -> dict[str, Any]:
        x = self.normalization(self.bn(self.conv(self.embed(input_ids).transpose(1, 2))))
        logits = self.head((x * self.gamma[:, None]).mean(-1))
        return {"loss": torch.nn.functional.cross_entropy(logits, labels), "logits": logits}


@pytest.fixture(scope="module")
def models() -> dict[str, Any]:
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, num_labels=2
    )
    return {"bert": transformers.BertForSequenceClassification(config), "bn": TinyBN()}


class Data(torch.utils.data.Dataset):  # type: ignore[misc]
    def __init__(self, n: int) -> None:
        gen = torch.Generator().manual_seed(n)
        self.x = torch.randint(0, 99, (n, 8), generator=gen)
        self.y = torch.randint(0, 2, (n,), generator=gen)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"input_ids": self.x[i], "labels": self.y[i]}


def _args(kw: dict[str, Any], tmp_path: Any, **override: Any) -> Any:
    merged = {**kw, **override}
    return transformers.TrainingArguments(
        output_dir=str(tmp_path), report_to=[], use_cpu=True, save_strategy="no", disable_tqdm=True, **merged
    )


def _per_param(optimizer: Any, model: Any) -> dict[str, dict[str, Any]]:
    names = {id(p): n for n, p in model.named_parameters()}
    out = {}
    for group in optimizer.param_groups:
        hp = {k: v for k, v in group.items() if k != "params"}
        hp["lr"] = group.get("initial_lr", group["lr"])  # the peak, before the scheduler's factor at step 0
        for p in group["params"]:
            out[names[id(p)]] = hp
    return out


def _curve(scheduler: Any, optimizer: Any, points: list[int]) -> list[float]:
    """The lr of the first group after ``t`` scheduler steps, at each t of ``points``."""
    optimizer.step()  # no gradients: nothing moves (torch wants a step before the scheduler's)
    out, t = [], 0
    for point in points:
        while t < point:
            scheduler.step()
            t += 1
        out.append(optimizer.param_groups[0]["lr"])
    return out


def _expected_curve(rec: Recommendation, total: int, points: list[int]) -> list[float]:
    from optirec.optimizers.schedulers import build_scheduler

    dummy = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=rec.optimizer.hyperparameters["lr"])
    return _curve(build_scheduler(dummy, rec.schedule, total_steps=total), dummy, points)


def _points(warmup: int, total: int) -> list[int]:
    return sorted({0, max(1, warmup // 2), max(2, warmup), warmup + (total - warmup) // 3, total * 2 // 3, total - 1})


def _check_schedule(trainer: Any, rec: Recommendation, kw: dict[str, Any], total: int, notes: list[str]) -> None:
    warmup = trainer.args.get_warmup_steps(total)
    points = _points(warmup, total)
    theirs = _curve(trainer.lr_scheduler, trainer.optimizer, points)
    mine = _expected_curve(rec, total, points)
    peak = kw["learning_rate"]
    for t, a, b in zip(points, theirs, mine, strict=True):
        if t < warmup:  # the Trainer warms up from 0, the answer from 0.001 x lr: named in a note
            assert abs(a - b) <= 1e-3 * peak * (1 + 1e-9), (t, a, b)
            assert any("rises linearly from 0" in n for n in notes)
        else:
            assert a == pytest.approx(b, rel=1e-6, abs=1e-12), (t, theirs, mine, points)
    if warmup:
        assert theirs[0] == 0.0


def _check_optimizer(
    pid: str, rec: Recommendation, kw: dict[str, Any], trainer: Any, model: Any, notes: list[str]
) -> None:
    from optirec.optimizers import build

    total = trainer.args.max_steps
    twin = copy.deepcopy(model)  # the same parameter names for build()
    ours = build(twin, rec, total_steps=total if rec.schedule.total_steps is None else None)
    assert type(trainer.optimizer).__name__ == _CLASS[kw["optim"]]
    built = type(ours.optimizer).__name__
    # torch Adam and AdamW are the same update at weight_decay 0 (the export refuses Adam with decay)
    assert built == _CLASS[kw["optim"]] or (built == "Adam" and not rec.optimizer.hyperparameters["weight_decay"])
    theirs, mine = _per_param(trainer.optimizer, model), _per_param(ours.optimizer, twin)
    assert set(mine) <= set(theirs)
    if set(theirs) - set(mine):  # the Trainer trains what the answer freezes
        assert any(": freeze" in n and "requires_grad_(False)" in n for n in notes), pid
    wd = rec.optimizer.hyperparameters.get("weight_decay", 0.0)
    for name, hp in mine.items():
        other = theirs[name]
        for key in COMPARED:
            if key in hp and key in other:
                a, b = other[key], hp[key]
                assert (tuple(a) if isinstance(a, tuple | list) else a) == (
                    tuple(b) if isinstance(b, tuple | list) else b
                ), (pid, name, key)
        assert other["lr"] == kw["learning_rate"]
        if other["lr"] != pytest.approx(hp["lr"]):  # layer-wise lr: one lr for every parameter in the Trainer
            assert any("layer-wise lr decay" in n for n in notes), (pid, name)
        if other["weight_decay"] != hp["weight_decay"]:
            assert any("Trainer.get_decay_parameter_names" in n for n in notes), (pid, name)
            assert other["weight_decay"] in (0.0, wd) and hp["weight_decay"] in (0.0, wd)


def _train(trainer_kw: dict[str, Any], model: Any, tmp_path: Any) -> dict[str, Any]:
    """Two optimizer steps with the loss scaled by 1e4 (gradients far above any max_norm): the gradient norm the
    Trainer logs (before clipping) and the one the optimizer sees, samples per step, the autocast state."""
    seen: dict[str, Any] = {"samples": 0, "per_step": [], "after": [], "autocast": set()}

    class Scaled(transformers.Trainer):  # type: ignore[misc]
        def compute_loss(self, model: Any, inputs: Any, *a: Any, **k: Any) -> Any:
            seen["samples"] += int(inputs["labels"].shape[0])
            return super().compute_loss(model, inputs, *a, **k) * 1e4

    class Probe(transformers.TrainerCallback):  # type: ignore[misc]
        def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            grads = [p.grad.float() for p in kw["model"].parameters() if p.grad is not None]
            seen["after"].append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))
            seen["per_step"].append(seen["samples"])
            seen["samples"] = 0

    def probe_autocast(module: Any, inputs: Any) -> None:  # inside the forward accelerate wraps in autocast
        seen["autocast"].add((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))

    next(iter(model.children())).register_forward_pre_hook(probe_autocast)
    args = _args(trainer_kw, tmp_path, max_steps=2, logging_steps=1)
    per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps
    trainer = Scaled(model=model, args=args, train_dataset=Data(2 * per_step), callbacks=[Probe()])
    trainer.train()
    seen["before"] = [h["grad_norm"] for h in trainer.state.log_history if "grad_norm" in h]
    return seen


@pytest.mark.parametrize("pid", list(PROFILES), ids=list(PROFILES))
def test_the_trainer_builds_the_answer(pid: str, models: dict[str, Any], tmp_path: Any) -> None:
    rec = recommendation(pid)
    notes: list[str] = []
    if pid in REFUSED:
        with pytest.raises(ExportError) as err:
            export(rec, "hf", notes)
        assert REFUSED[pid] in str(err.value)
        if rec.schedule.name in ("step", "exponential"):  # the nearest scheduler and the exact way are named
            assert "the nearest is lr_scheduler_type=" in str(err.value)
            assert "Trainer(..., optimizers=(optimizer, scheduler))" in str(err.value)
        return
    kw = export(rec, "hf", notes)
    assert isinstance(kw, dict) and kw == to_hf(rec) == hf.to_hf(rec)
    installed = ".".join(importlib.metadata.version("transformers").split(".")[:2])
    assert any(n.startswith(f"written for transformers {installed} (installed)") for n in notes)
    total = kw.get("max_steps", UNKNOWN_STEPS)
    if "max_steps" not in kw:
        assert any("total_steps is unknown" in n for n in notes)
    for key, model in models.items():
        trainer = transformers.Trainer(model=copy.deepcopy(model), args=_args(kw, tmp_path, max_steps=total))
        trainer.create_optimizer_and_scheduler(num_training_steps=total)
        _check_optimizer(pid, rec, kw, trainer, trainer.model, notes)
        if key == "bert":
            _check_schedule(trainer, rec, kw, total, notes)

    # clipping, batch arithmetic and precision in two real steps
    seen = _train(kw, copy.deepcopy(models["bert"]), tmp_path)
    clip = rec.gradient_clipping.max_norm if rec.gradient_clipping is not None else 0.0
    assert kw["max_grad_norm"] == clip
    assert min(seen["before"]) > 10 * max(clip, 1.0)
    if clip:
        assert seen["after"] == pytest.approx([clip] * 2, rel=1e-3)
    else:  # 0.0 switches the Trainer's default clipping at 1.0 off, as the note says
        assert seen["after"] == pytest.approx(seen["before"], rel=1e-4)
        assert any("default clipping at 1.0 is switched off" in n for n in notes)
    devices = int(rec.profile.get("num_devices") or 1)
    if rec.batch_size is None:
        assert "per_device_train_batch_size" not in kw and any("Trainer's default (8" in n for n in notes)
        assert seen["per_step"] == [8, 8]
    else:  # one process here; on `devices` processes each takes its own per-device batch
        assert kw["per_device_train_batch_size"] * kw["gradient_accumulation_steps"] * devices == rec.batch_size
        assert seen["per_step"] == [rec.batch_size // devices] * 2
    mixed = rec.profile.get("precision") in ("bf16", "fp16") or (
        rec.profile.get("precision") is None and bool(rec.profile.get("mixed_precision"))
    )
    assert bool(kw.get("bf16") or kw.get("fp16")) == mixed
    assert seen["autocast"] == {(bool(kw.get("bf16")), torch.bfloat16)}  # bf16 autocast runs on CPU too


def test_the_trainer_decays_1d_parameters_the_answer_does_not(models: dict[str, Any], tmp_path: Any) -> None:
    """5.24's get_decay_parameter_names on BatchNorm named bn / normalization and a layer-scale vector, and the two
    exact ways the note names."""
    from optirec.optimizers import build
    from optirec.optimizers.groups import describe_parameters

    rec = recommendation("resnet-b1024")
    notes: list[str] = []
    kw = hf.to_hf(rec, notes=notes)
    model = copy.deepcopy(models["bn"])
    trainer = transformers.Trainer(model=model, args=_args(kw, tmp_path))
    trainer.create_optimizer_and_scheduler(num_training_steps=kw["max_steps"])
    theirs = {n for n, hp in _per_param(trainer.optimizer, model).items() if hp["weight_decay"]}
    twin = copy.deepcopy(model)
    mine = {n for n, hp in _per_param(build(twin, rec).optimizer, twin).items() if hp["weight_decay"]}
    assert mine == {"embed.weight", "conv.weight", "head.weight"}  # the answer: no 0-/1-D parameter, no norm
    assert theirs - mine == {"bn.weight", "normalization.weight", "gamma"}  # 1-D, named like none of its patterns
    assert mine <= theirs
    assert any("BatchNorm/GroupNorm weights named like bn1 or normalization" in n for n in notes)

    class AnswersSplit(transformers.Trainer):  # type: ignore[misc]  # the note's first way, as written there
        def get_decay_parameter_names(self, model: Any) -> list[str]:
            return [p.name for p in describe_parameters(model) if not p.no_decay]

    exact = AnswersSplit(model=model, args=_args(kw, tmp_path))
    exact.create_optimizer_and_scheduler(num_training_steps=kw["max_steps"])
    assert {n for n, hp in _per_param(exact.optimizer, model).items() if hp["weight_decay"]} == mine
    # the second way: optirec's optimizer and scheduler, which the Trainer steps once per optimizer step
    optimizer, scheduler, _ = build(model, rec)
    own = transformers.Trainer(model=model, args=_args(kw, tmp_path, max_steps=3, per_device_train_batch_size=4),
                               train_dataset=Data(12), optimizers=(optimizer, scheduler))  # fmt: skip
    own.train()
    assert {n for n, hp in _per_param(optimizer, model).items() if hp["weight_decay"]} == mine
    assert scheduler.last_epoch == 3
    assert optimizer.param_groups[0]["lr"] == pytest.approx(_expected_curve(rec, kw["max_steps"], [3])[0])


@pytest.mark.parametrize("pid", ["wrn-step", "efficientnet-exponential"])
def test_the_nearest_scheduler_is_as_near_as_the_refusal_says(pid: str) -> None:
    rec = recommendation(pid)
    with pytest.raises(ExportError) as err:
        export(rec, "hf")
    found = re.search(
        r"lr_scheduler_type='(\w+)' with lr_scheduler_kwargs=(\{.*?\}), on average ([\d.]+)% \(at most ([\d.]+)%\)",
        str(err.value),
    )
    assert found is not None, str(err.value)
    name, kwargs, mean, worst = found[1], ast.literal_eval(found[2]), float(found[3]), float(found[4])
    total, lr = rec.schedule.total_steps, rec.optimizer.hyperparameters["lr"]
    assert total is not None
    steps = list(range(total))
    answer = _expected_curve(rec, total, steps)

    def gaps(kind: str, extra: dict[str, Any]) -> list[float]:
        dummy = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
        sched = transformers.get_scheduler(kind, dummy, num_warmup_steps=rec.schedule.warmup_steps or 0,
                                           num_training_steps=total, scheduler_specific_kwargs=extra)  # fmt: skip
        return [abs(a - b) / lr for a, b in zip(_curve(sched, dummy, steps), answer, strict=True)]

    real = gaps(name, kwargs)  # the named scheduler built by transformers itself
    assert sum(real) / total * 100 == pytest.approx(mean, abs=0.06)
    assert max(real) * 100 == pytest.approx(worst, abs=0.06)
    for other in ("linear", "cosine", "constant", "inverse_sqrt"):  # the plain types are no nearer
        assert sum(gaps(other, {})) / total * 100 >= mean - 0.06, other


def _with(rec: Recommendation, **update: Any) -> Recommendation:
    return Recommendation.model_validate(rec.model_copy(update=update).model_dump(mode="json"))


def _schedule(name: str, warmup: int, total: int = 400, **fields: Any) -> ScheduleSpec:
    return ScheduleSpec(name=name, warmup_steps=warmup, warmup_ratio=warmup / total, total_steps=total, **fields)


#: what already was exported, against the real library: (case id, optimizer, schedule, expected Trainer optimizer)
EXTRA: Final = [
    ("nag", "nag", _schedule("cosine", 40), "SGD"),
    ("cosine-to-fraction", "adamw", _schedule("cosine", 40, final_lr_fraction=0.1), "AdamW"),
    ("linear-to-fraction", "adamw", _schedule("linear", 40, final_lr_fraction=0.1), "AdamW"),
    ("poly", "adamw", _schedule("poly", 0, power=0.9), "AdamW"),
    ("constant-warmup", "adamw", _schedule("constant", 40), "AdamW"),
    ("inverse-sqrt-no-warmup", "adamw", _schedule("inverse_sqrt", 0), "AdamW"),
    ("adafactor", "adafactor", _schedule("linear", 40), "Adafactor"),
    ("lion", "lion", _schedule("cosine", 40), "bitsandbytes"),
    ("schedule-free-adamw", "schedulefree_adamw", _schedule("constant", 0), "schedulefree"),
]


@pytest.mark.parametrize(("case", "name", "schedule", "cls"), EXTRA, ids=[e[0] for e in EXTRA])
def test_the_other_exports_against_the_trainer(
    case: str, name: str, schedule: ScheduleSpec, cls: str, models: dict[str, Any], tmp_path: Any
) -> None:
    base = recommendation("bert-finetune")
    rec = _with(
        base, optimizer=OptimizerChoice(name=name, hyperparameters=dict(BOOK.defaults[name])), schedule=schedule
    )
    notes: list[str] = []
    kw = hf.to_hf(rec, notes=notes)
    args = _args(kw, tmp_path)
    if cls in ("bitsandbytes", "schedulefree") and importlib.util.find_spec(cls) is None:
        with pytest.raises(ImportError, match=cls):  # the note names the package to install
            transformers.Trainer.get_optimizer_cls_and_kwargs(args)
        assert any(f"pip install {cls}" in n for n in notes)
        return
    trainer = transformers.Trainer(model=copy.deepcopy(models["bert"]), args=args)
    trainer.create_optimizer_and_scheduler(num_training_steps=kw["max_steps"])
    assert type(trainer.optimizer).__name__ == cls
    if cls == "Adafactor":  # transformers' own, with an absolute step size (noted)
        group = trainer.optimizer.param_groups[0]
        assert (group["scale_parameter"], group["relative_step"], group["decay_rate"]) == (False, False, -0.8)
        assert any("scale_parameter=False" in n for n in notes)
    else:
        _check_optimizer(case, rec, kw, trainer, trainer.model, notes)
    _check_schedule(trainer, rec, kw, kw["max_steps"], notes)


@pytest.mark.parametrize("pid", list(PROFILES), ids=list(PROFILES))
def test_the_4x_branch(pid: str) -> None:
    """transformers 4.57: warmup_steps must be an int (its __post_init__ raises otherwise) and a ratio goes in
    warmup_ratio; optim_args are dropped for torch SGD/Adagrad/RMSprop, so a non-default value is refused."""
    rec = recommendation(pid)
    notes: list[str] = []
    if pid in REFUSED_4X:
        with pytest.raises(ExportError) as err:
            hf.to_hf(rec, version="4.57")
        assert str(err.value).startswith("format: hf (Hugging Face TrainingArguments, transformers 4.57) cannot")
        assert REFUSED_4X[pid] in str(err.value)
        if pid != "sparse-recommender":
            assert "huggingface/transformers#44203" in str(err.value)
        return
    v4, v5 = hf.to_hf(rec, version="4.57", notes=notes), hf.to_hf(rec, version="5.24")
    assert set(v4) <= FIELDS_457
    assert isinstance(v4["warmup_steps"], int) if "warmup_steps" in v4 else "warmup_ratio" in v4
    if rec.schedule.warmup_steps is None and rec.schedule.warmup_ratio > 0:
        assert v4 == {**{k: v for k, v in v5.items() if k != "warmup_steps"}, "warmup_ratio": v5["warmup_steps"]}
        assert any(n.startswith("warmup_ratio=") for n in notes)
    else:
        assert v4 == v5
    assert any(n.startswith("written for transformers 4.57 (asked)") for n in notes)
    assert to_hf(rec, version="4.57") == v4  # the package's to_hf forwards the version


@pytest.mark.parametrize(
    ("version", "fits", "note"),
    [
        ("5.2", False, "#44203"),  # 5.0-5.2 still build SGD from the lr alone
        ("5.3.0", True, None),  # the first release with huggingface/transformers#44203
        ("5.25.0.dev0", True, None),
        ("6.1", True, "written as for 5.24.0, the newest release checked"),
        ("4.40", False, "#44203"),
        ("latest", False, "not a transformers release number"),
    ],
)
def test_the_version_decides_the_optim_args(version: str, fits: bool, note: str | None) -> None:
    rec = recommendation("resnet-b1024")  # SGD with momentum 0.9
    notes: list[str] = []
    if not fits:
        with pytest.raises(ExportError, match=re.escape(note or "")):
            hf.to_hf(rec, version=version)
        return
    assert hf.to_hf(rec, version=version, notes=notes)["optim_args"] == "momentum=0.9"
    assert note is None or any(note in n for n in notes)


def test_the_ratio_warmup_is_rounded_up_by_the_trainer(tmp_path: Any) -> None:
    rec = recommendation("llm-7b-memory")  # no total_steps: the warmup is a ratio
    notes: list[str] = []
    kw = hf.to_hf(rec, notes=notes)
    args = _args(kw, tmp_path, max_steps=1000)
    assert args.get_warmup_steps(1000) == math.ceil(1000 * rec.schedule.warmup_ratio) == 11
    assert round(1000 * rec.schedule.warmup_ratio) == 10  # build_scheduler's: one step shorter, as noted
    assert any("math.ceil" in n and "one step longer" in n for n in notes)


@pytest.mark.parametrize(
    ("profile", "expected", "note"),
    [
        ({"precision": "fp16"}, {"fp16": True}, None),
        ({"precision": "bf16", "mixed_precision": True}, {"bf16": True}, None),
        ({"mixed_precision": True}, {"bf16": True}, "does not say bf16 or fp16"),
        ({"precision": "fp32", "mixed_precision": True}, {}, "precision is fp32"),
        ({}, {}, None),
    ],
    ids=["fp16", "bf16", "mixed-unnamed", "fp32-mixed", "fp32"],
)
def test_the_precision_flags(profile: dict[str, Any], expected: dict[str, bool], note: str | None, tmp_path: Any):
    rec = recommend({"architecture": "gpt", "total_steps": 100, **profile})
    notes: list[str] = []
    kw = hf.to_hf(rec, notes=notes)
    assert {k: kw[k] for k in ("bf16", "fp16") if k in kw} == expected
    assert note is None or any(note in n for n in notes)
    # TrainingArguments accepts both on CPU with use_cpu (training_args.py); CPU autocast runs bf16 only
    assert _args(kw, tmp_path).mixed_precision == next(iter(expected), "no")


@pytest.mark.parametrize(("batch", "devices", "ok"), [(30, 8, False), (32, 8, True), (7, 1, True)])
def test_a_global_batch_must_divide_over_the_devices(batch: int, devices: int, ok: bool) -> None:
    rec = recommend({"architecture": "bert", "phase": "fine_tuning", "batch_size": batch, "num_devices": devices})
    if not ok:
        with pytest.raises(ExportError, match=f"the global batch of {batch} over {devices} devices"):
            export(rec, "hf")
        return
    kw = to_hf(rec)
    assert kw["per_device_train_batch_size"] * kw["gradient_accumulation_steps"] * devices == batch


def test_the_accumulation_the_note_describes(models: dict[str, Any], tmp_path: Any) -> None:
    """Halving the per-device batch and doubling gradient_accumulation_steps, as the note says, keeps the samples
    per optimizer step at the global batch."""
    rec = recommendation("bert-finetune")
    kw = to_hf(rec)
    split = {"per_device_train_batch_size": kw["per_device_train_batch_size"] // 2, "gradient_accumulation_steps": 2}
    seen = _train({**kw, **split}, copy.deepcopy(models["bert"]), tmp_path)
    assert seen["per_step"] == [rec.batch_size] * 2
