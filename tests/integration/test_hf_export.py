"""The Hugging Face export run by the real transformers Trainer, for every profile of the shared table.

Each cell builds ``TrainingArguments(**to_hf(rec))`` and a ``Trainer`` on a tiny randomly initialised BERT (from a
config: nothing is downloaded), lets the Trainer create its optimizer and scheduler, and compares them with what
optirec's own build() makes of the answer: optimizer class, every group's lr, betas, eps, weight decay, the lr at
six points of the run, clipping, the batch arithmetic and the precision flag.  Refused cells assert the reason.
"""

from __future__ import annotations

import math
from typing import Any, Final

import pytest
from export_profiles import PROFILES, recommendation

from optirec.optimizers.errors import ExportError
from optirec.optimizers.exporters import export

pytestmark = pytest.mark.integration
transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

#: profile id -> what the refusal names (and why the Trainer cannot do it)
REFUSED: Final = {
    # one optimizer for the whole model: the Trainer has no per-group optimizer choice
    "sparse-recommender": "parameter split",
    # SchedulerType has no multi-step or exponential curve (transformers trainer_utils.py)
    "wrn-step": "no multi-step decay",
    "efficientnet-exponential": "no exponential decay",
}
#: the run length for answers that state none (the Trainer needs max_steps)
_DEFAULT_STEPS: Final = 1000
#: longer runs are compared over their first this many steps (a run of 100,000 steps would take seconds)
_MAX_STEPPED: Final = 2000
_TORCH_CLASS: Final = {
    "adamw_torch": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
    "adagrad": torch.optim.Adagrad,
}


@pytest.fixture(scope="module")
def tiny_bert() -> Any:
    config = transformers.BertConfig(
        vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, num_labels=2
    )
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(config)


def _trainer(model: Any, kwargs: dict[str, Any], tmp_path: Any) -> Any:
    args = transformers.TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True, **kwargs)
    trainer = transformers.Trainer(model=model, args=args)
    trainer.create_optimizer_and_scheduler(num_training_steps=kwargs.get("max_steps", _DEFAULT_STEPS))
    return trainer


@pytest.mark.parametrize("pid", list(PROFILES), ids=list(PROFILES))
def test_the_trainer_builds_what_the_answer_says(pid: str, tiny_bert: Any, tmp_path: Any) -> None:
    from optirec.optimizers import build

    rec = recommendation(pid)
    notes: list[str] = []
    if pid in REFUSED:
        with pytest.raises(ExportError) as err:
            export(rec, "hf", notes)
        assert REFUSED[pid] in str(err.value)
        return
    kwargs = export(rec, "hf", notes)
    assert isinstance(kwargs, dict)
    kwargs = dict(kwargs)
    if "max_steps" not in kwargs:
        assert any("total_steps is unknown" in n for n in notes)
        kwargs["max_steps"] = _DEFAULT_STEPS
    stated_warmup = kwargs["warmup_steps"] if isinstance(kwargs["warmup_steps"], int) else 0
    # both sides get the same length, past the warmup
    kwargs["max_steps"] = total = min(kwargs["max_steps"], max(_MAX_STEPPED, 2 * stated_warmup))
    trainer = _trainer(tiny_bert, kwargs, tmp_path)
    opt, sched = trainer.optimizer, trainer.lr_scheduler
    warmup = kwargs["warmup_steps"] if isinstance(kwargs["warmup_steps"], int) else None  # the Trainer's, in steps
    if rec.schedule.warmup_steps is None and rec.schedule.warmup_ratio > 0:  # the Trainer rounds a ratio up
        assert any("ceil(ratio x steps)" in n for n in notes)
        warmup = math.ceil(rec.schedule.warmup_ratio * total)
    ours = build(tiny_bert, rec, total_steps=total, warmup_steps=warmup)

    # optimizer class and hyperparameters
    assert type(opt) is _TORCH_CLASS[kwargs["optim"]]
    hp = rec.optimizer.hyperparameters
    for group in opt.param_groups:
        assert group["lr"] == pytest.approx(hp["lr"]) or sched is not None  # the scheduler may have moved it at 0
        if "betas" in hp:
            assert tuple(group["betas"]) == pytest.approx(tuple(hp["betas"]))
        if "eps" in hp:
            assert group["eps"] == pytest.approx(hp["eps"])
        for key in ("momentum", "alpha", "centered", "nesterov"):
            if key in hp and key in group:
                assert group[key] == hp[key], f"{key}: the Trainer has {group[key]}, the answer {hp[key]}"

    # which parameters are decayed: the Trainer's split against build()'s, any difference named in a note
    def decayed(optimizer: Any) -> set[int]:
        return {id(p) for g in optimizer.param_groups if g.get("weight_decay", 0) for p in g["params"]}

    if hp.get("weight_decay"):
        if decayed(opt) != decayed(ours.optimizer):
            assert any("get_decay_parameter_names" in n for n in notes)
        for g in opt.param_groups:
            assert g["weight_decay"] in (0.0, pytest.approx(hp["weight_decay"]))
    else:
        assert not decayed(opt)

    # the lr at six points of the run, against optirec's own scheduler for the same length
    points = sorted({0, 1, total // 10, total // 3, total // 2, total - 1})
    theirs, mine = [], []
    for step in range(total):
        if step in points:
            theirs.append(opt.param_groups[0]["lr"])
            mine.append(max(g["lr"] for g in ours.optimizer.param_groups))  # the head's lr under layer decay
        opt.step()
        sched.step()
        ours.optimizer.step()
        if ours.scheduler is not None:
            ours.scheduler.step()
    assert theirs == pytest.approx(mine, rel=0.02, abs=1e-3 * hp["lr"]), (points, theirs, mine)

    # what the Trainer cannot do is named: freezing and layer-wise lr (one lr for every parameter here)
    for g in rec.param_groups:
        if g.frozen:
            assert any(n.startswith(f"param_groups.{g.name}: freeze") for n in notes)
        if g.layerwise_lr_decay is not None:
            assert any(n.startswith(f"param_groups.{g.name}: layer-wise lr decay") for n in notes)
            assert len({grp["lr"] for grp in opt.param_groups}) == 1

    # clipping, batch arithmetic, precision
    clip = rec.gradient_clipping.max_norm if rec.gradient_clipping else 0.0
    assert trainer.args.max_grad_norm == clip
    if not clip:
        assert any("switched off" in n for n in notes)
    devices = int(rec.profile.get("num_devices") or 1)
    if rec.batch_size is not None:
        per_device = trainer.args.per_device_train_batch_size
        assert per_device * devices * trainer.args.gradient_accumulation_steps == rec.batch_size
    precision = rec.profile.get("precision")
    assert bool(trainer.args.bf16) == (precision == "bf16") and bool(trainer.args.fp16) == (precision == "fp16")


def test_a_batch_that_does_not_divide_over_the_devices_is_refused() -> None:
    from optirec import recommend

    rec = recommend({"architecture": "bert", "phase": "fine_tuning", "batch_size": 30, "num_devices": 8})
    with pytest.raises(ExportError) as err:
        export(rec, "hf")
    assert "global batch 30 over 8 devices" in str(err.value)


def test_clipping_reaches_the_gradients(tiny_bert: Any, tmp_path: Any) -> None:
    """One real training step: the Trainer clips the gradient norm at the answer's max_norm."""
    rec = recommendation("gpt-pretrain")  # clips at 1.0
    kwargs = {**export(rec, "hf"), "max_steps": 1, "bf16": False, "per_device_train_batch_size": 4}
    kwargs.pop("gradient_accumulation_steps", None)
    data = [
        {"input_ids": torch.randint(0, 99, (8,)), "labels": torch.tensor(i % 2), "attention_mask": torch.ones(8)}
        for i in range(4)
    ]
    args = transformers.TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True, **kwargs)
    norms: list[float] = []

    class Probe(transformers.TrainerCallback):  # type: ignore[misc]
        def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            grads = [p.grad for p in tiny_bert.parameters() if p.grad is not None]
            norms.append(float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))))

    trainer = transformers.Trainer(model=tiny_bert, args=args, train_dataset=data, callbacks=[Probe()])
    trainer.train()
    assert norms and math.isfinite(norms[0])
    assert norms[0] <= rec.gradient_clipping.max_norm * (1 + 1e-4)


@pytest.mark.parametrize(
    ("pid", "major", "expected"),
    [
        # no total_steps: the warmup is a ratio; 5.x takes it in warmup_steps, 4.x only in warmup_ratio
        ("llm-7b-memory", 5, {"warmup_steps": pytest.approx(0.010486)}),
        ("llm-7b-memory", 4, {"warmup_steps": 0, "warmup_ratio": pytest.approx(0.010486)}),
        # a known length: integer warmup steps, the same for both
        ("bert-finetune", 4, {"warmup_steps": 100}),
        ("bert-finetune", 5, {"warmup_steps": 100}),
    ],
    ids=["ratio-5x", "ratio-4x", "steps-4x", "steps-5x"],
)
def test_the_export_is_written_for_the_transformers_version(pid: str, major: int, expected: dict[str, Any]) -> None:
    from optirec.optimizers.exporters import to_hf

    out = to_hf(recommendation(pid), transformers_major=major)
    for key, value in expected.items():
        assert out[key] == value
    if major < 5:
        assert "warmup_ratio" in out or not isinstance(out["warmup_steps"], float)


def test_optim_args_are_refused_on_4x_which_drops_them() -> None:
    """transformers 4.x builds torch SGD from the lr alone (huggingface/transformers#44075): momentum would be lost."""
    from optirec.optimizers.exporters import to_hf

    rec = recommendation("resnet-b1024")  # SGD, momentum 0.9
    assert to_hf(rec, transformers_major=5)["optim_args"] == "momentum=0.9"
    with pytest.raises(ExportError) as err:
        to_hf(rec, transformers_major=4)
    assert "transformers 4.x" in str(err.value) and "momentum=0.9" in str(err.value) and "#44075" in str(err.value)
