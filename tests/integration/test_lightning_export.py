"""The Lightning export run by Lightning itself: every profile's methods pasted into a tiny LightningModule, a
``lightning.Trainer`` fit on CPU, and what Lightning ran compared with the answer and with optirec's own build()
of the same module.

The module holds what the parameter groups depend on, directly (no wrapper child): an embedding, a position
embedding that its ``no_weight_decay()`` lists (3-D: only the list spares it), an LSTM (2-D weights, 1-D biases),
a ModuleList of three repeated blocks with LayerNorms (the depth of freezing and layer-wise lr), a BatchNorm and a
head with a bias. A probe callback reads, at each step, every group's lr (``on_train_batch_start``), the gradient
norm before clipping (``on_before_optimizer_step``, which Lightning calls right before configure_gradient_clipping,
plugins/precision/precision.py ``_after_closure``) and after the step (``on_train_batch_end``: the gradients the
optimizer stepped with) and the weights for the EMA check.
"""

from __future__ import annotations

import ast
import math
import sys
from typing import Any

import pytest
from export_checks import assert_groups_as_built, grad_norm, resolve
from export_profiles import PROFILES, recommendation

from optirec.optimizers import ExportError, build, build_scheduler
from optirec.optimizers.exporters import export
from optirec.optimizers.exporters import lightning as lightning_exporter
from optirec.rules import default_rulebook

pytestmark = pytest.mark.integration
torch = pytest.importorskip("torch")
L = pytest.importorskip("lightning")
nn = torch.nn

BOOK = default_rulebook()

#: profile id -> what the refusal names. Lightning refuses no profile of the table: what plain torch cannot express
#: inside configure_optimizers is exported in the build() form instead (BUILD_FORM).
REFUSED: dict[str, str] = {}

#: profile id -> what the "standalone:" note names: the answers only optirec's build() expresses in Lightning
BUILD_FORM = {
    # embeddings -> Adagrad, the rest -> Adam: two optimizers, which Lightning's automatic optimization cannot step;
    # build() joins them in one HybridOptimizer
    "sparse-recommender": "the parameter split (embeddings -> adagrad, dense -> adam)",
}

#: the hyperparameters compared group by group (torch.optim names)

#: Lightning's own warnings on this tiny CPU run (pytest turns warnings into errors)
QUIET = [
    # trainer/connectors/data_connector.py: a test DataLoader has no worker processes
    pytest.mark.filterwarnings("ignore:The 'train_dataloader' does not have many workers"),
    # loops/fit_loop.py: 4 batches per epoch is below the default log_every_n_steps=50
    pytest.mark.filterwarnings("ignore:The number of training batches"),
    # utilities/_pytree.py builds torch's LeafSpec, which torch 2.13 deprecates (a FutureWarning from typing_extensions)
    pytest.mark.filterwarnings(r"ignore:`isinstance\(treespec, LeafSpec\)` is deprecated:FutureWarning"),
]

VOCAB, SEQ, DIM, DEPTH, BATCH, BATCHES = 11, 5, 6, 3, 8, 4


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(DIM)
        self.fc = nn.Linear(DIM, DIM)

    def forward(self, x: Any) -> Any:
        return x + torch.tanh(self.fc(self.norm(x)))


class TinyModule(L.LightningModule):
    #: the loss is scaled so that the gradient norm is far above max_norm where the answer clips (elsewhere an lr of
    #: 0.1 with momentum would diverge on it in three steps)
    loss_scale = 1.0

    def __init__(self) -> None:
        super().__init__()
        self.pos_embed = nn.Parameter(torch.randn(1, SEQ, DIM) * 0.1)
        self.embed = nn.Embedding(VOCAB, DIM)
        self.lstm = nn.LSTM(DIM, DIM, batch_first=True)
        self.blocks = nn.ModuleList(Block() for _ in range(DEPTH))
        self.bn = nn.BatchNorm1d(DIM)
        self.head = nn.Linear(DIM, 2)

    def no_weight_decay(self) -> set[str]:
        return {"pos_embed"}

    def forward(self, ids: Any) -> Any:
        x, _ = self.lstm(self.embed(ids) + self.pos_embed)
        for block in self.blocks:
            x = block(x)
        return self.head(self.bn(x.mean(dim=1)))

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        ids, target = batch
        return ((self(ids).float() - target) ** 2).mean() * self.loss_scale

    def train_dataloader(self) -> Any:
        gen = torch.Generator().manual_seed(1)
        data = torch.utils.data.TensorDataset(
            torch.randint(0, VOCAB, (BATCH * BATCHES, SEQ), generator=gen), torch.randn(BATCH * BATCHES, 2)
        )
        return torch.utils.data.DataLoader(data, batch_size=BATCH)


def _exponent(name: str) -> int:
    """The layer-wise decay exponent: what comes before the blocks 4, blocks.i 3 - i, BatchNorm and head 0."""
    if name.startswith(("embed.", "pos_embed", "lstm.")):
        return DEPTH + 1
    if name.startswith("blocks."):
        return DEPTH - int(name.split(".")[1])
    return 0


#: transfer learning freezes the stem (embeddings, LSTM) and the first ceil(3 / 2) = 2 blocks
FROZEN_BY_TRANSFER = ("pos_embed", "embed.", "lstm.", "blocks.0.", "blocks.1.")


class Probe(L.Callback):
    """Reads what Lightning did at each step."""

    def __init__(self) -> None:
        self.lrs: list[list[float]] = []  # each group's lr / its peak, as the step uses it
        self.raw: list[float] = []  # gradient norm before clipping
        self.clipped: list[float] = []  # gradient norm the optimizer stepped with
        self.weights: list[Any] = []  # head.weight after each step

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self.lrs.append([g["lr"] for g in trainer.optimizers[0].param_groups])

    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        self.raw.append(grad_norm(pl_module))

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.clipped.append(grad_norm(pl_module))
        self.weights.append(pl_module.head.weight.detach().clone())


def _trainer_kwargs(source: str) -> dict[str, Any]:
    """The ``lightning.Trainer(...)`` arguments of the export's header comment."""
    for line in source.splitlines():
        if line.startswith("#   lightning.Trainer("):
            call = ast.parse(line[len("#   ") :], mode="eval").body
            assert isinstance(call, ast.Call) and not call.args
            return {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg}
        if not line.startswith("#"):
            break
    return {}


def _module_class(source: str) -> type:
    tree = ast.parse(source)
    methods = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert all(isinstance(n, ast.FunctionDef) for n in tree.body), "only methods at the top level"
    namespace: dict[str, Any] = {}
    exec(compile(source, "<lightning export>", "exec"), namespace)
    return type("Exported", (TinyModule,), {name: namespace[name] for name in methods})


def _imports_optirec(source: str) -> bool:
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "optirec" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "optirec":
            return True
    return False


def _fit(module: Any, probe: Probe, **kwargs: Any) -> Any:
    run = {"max_steps": 3} | kwargs
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[probe],
        **run,
    )
    trainer.fit(module)
    return trainer


@pytest.mark.parametrize("profile_id", [pytest.param(p, marks=QUIET) for p in PROFILES], ids=list(PROFILES))
def test_lightning_export_trains_as_the_answer_says(profile_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    rec = recommendation(profile_id)
    notes: list[str] = []
    if profile_id in REFUSED:
        with pytest.raises(ExportError) as info:
            export(rec, "lightning", notes=notes)
        assert REFUSED[profile_id] in str(info.value)
        return
    source = export(rec, "lightning", notes=notes)
    assert isinstance(source, str)

    # the form: standalone (torch only: it runs with optirec unimportable) unless BUILD_FORM says why not
    standalone = profile_id not in BUILD_FORM
    assert _imports_optirec(source) is not standalone
    if standalone:
        for name in [m for m in sys.modules if m == "optirec" or m.startswith("optirec.")]:
            monkeypatch.setitem(sys.modules, name, None)  # import optirec... raises ImportError now
    else:
        assert any(n.startswith("standalone:") and BUILD_FORM[profile_id] in n for n in notes), notes
        with pytest.raises(ExportError, match=BUILD_FORM[profile_id].replace("(", r"\(").replace(")", r"\)")):
            lightning_exporter.to_lightning(rec, standalone=True)

    # the Trainer arguments of the header: max_steps is the answer's length (the run here is 3 steps, or 2 epochs
    # of 4 batches where the answer has no length), devices its num_devices (one CPU here), precision its own
    header = _trainer_kwargs(source)
    profile = rec.profile
    assert header.pop("max_steps", None) == rec.schedule.total_steps
    assert header.pop("devices", 1) == (profile.get("num_devices") or 1)
    mixed = profile.get("mixed_precision") or profile.get("precision") in ("bf16", "fp16")
    expected_precision = {"fp16": "16-mixed"}.get(str(profile.get("precision")), "bf16-mixed") if mixed else None
    assert header.get("precision") == expected_precision
    run: dict[str, Any] = {"max_steps": 3} if rec.schedule.total_steps else {"max_steps": -1, "max_epochs": 2}
    total = rec.schedule.total_steps or 2 * BATCHES

    torch.manual_seed(0)
    module = _module_class(source)()
    module.loss_scale = 1e3 if rec.gradient_clipping is not None else 1.0
    torch.manual_seed(0)
    reference = TinyModule()
    probe = Probe()
    trainer = _fit(module, probe, **run, **header)
    monkeypatch.undo()
    built = build(reference, rec, total_steps=None if rec.schedule.total_steps else total)

    # what Lightning ran: one optimizer, its scheduler stepped every optimizer step
    assert len(trainer.optimizers) == 1
    optimizer = trainer.optimizers[0]
    (config,) = trainer.lr_scheduler_configs
    assert config.interval == "step" and config.frequency == 1
    steps = len(probe.lrs)
    assert steps == trainer.global_step == (3 if rec.schedule.total_steps else total)

    # freezing: the stem and the first half of the blocks, never the head
    transfer = any(g.frozen for g in rec.param_groups)
    names = [n for n, _ in module.named_parameters()]
    frozen = [n for n in names if n.startswith(FROZEN_BY_TRANSFER)] if transfer else []
    assert [n for n, p in module.named_parameters() if not p.requires_grad] == frozen == list(built.frozen)

    # every trainable parameter in one group of the right optimizer, with the answer's lr and hyperparameters
    assert_groups_as_built(rec, module, [optimizer], reference, built, frozen, _exponent)

    # clipping: above max_norm before, within it after, at every step; untouched without clipping
    assert len(probe.raw) == len(probe.clipped) == steps
    for raw, clipped in zip(probe.raw, probe.clipped, strict=True):
        assert math.isfinite(raw)
        if rec.gradient_clipping is not None:
            assert raw > rec.gradient_clipping.max_norm
            assert clipped <= rec.gradient_clipping.max_norm * (1 + 1e-5)
        else:
            assert clipped == pytest.approx(raw, rel=1e-6)

    # EMA: Lightning's EMAWeightAveraging, ema = decay * ema + (1 - decay) * weights from the first step's weights,
    # copied into the module when fit ends
    averaging = [c for c in trainer.callbacks if isinstance(c, L.pytorch.callbacks.WeightAveraging)]
    if rec.ema is not None:
        assert [type(c) for c in averaging] == [L.pytorch.callbacks.EMAWeightAveraging]
        d = rec.ema.decay
        expected = probe.weights[0]
        for w in probe.weights[1:]:
            expected = d * expected + (1 - d) * w
        assert torch.allclose(module.head.weight, expected, rtol=1e-6, atol=1e-7)
        assert not torch.allclose(module.head.weight, probe.weights[-1], rtol=1e-6, atol=1e-7)
    else:
        assert averaging == []

    # the lr at every step Lightning ran and at later points of the run, against build_scheduler's curve
    peaks = [g["initial_lr"] for g in optimizer.param_groups]
    s = rec.schedule  # build_scheduler's warmup: the answer's steps with its own length, else the ratio of the run
    warmup = s.warmup_steps if s.total_steps and s.warmup_steps is not None else round(total * s.warmup_ratio)
    later = sorted({p for p in (warmup // 2, warmup, (warmup + total) // 2, 3 * total // 4, total - 1) if p >= steps})
    curve = [[lr / peak for lr, peak in zip(lrs, peaks, strict=True)] for lrs in probe.lrs]
    at = steps
    scheduler = config.scheduler
    for point in later:
        while at < point:
            scheduler.step()
            at += 1
        curve.append([g["lr"] / peak for g, peak in zip(optimizer.param_groups, peaks, strict=True)])
    points = list(range(steps)) + later
    assert len(points) >= 6 or total < 6
    probe_opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    probe_sched = build_scheduler(probe_opt, rec.schedule, total_steps=None if rec.schedule.total_steps else total)
    probe_opt.step()  # (no gradient: nothing moves) so that stepping the scheduler alone is not warned about
    want, at = [], 0
    for point in points:
        while at < point:
            probe_sched.step()
            at += 1
        want.append(probe_opt.param_groups[0]["lr"])
    for point, got, expected_lr in zip(points, curve, want, strict=True):
        assert got == pytest.approx([expected_lr] * len(got), rel=1e-9), point

    # every difference from the answer is named in a note: what the Trainer and the data loader set, an unknown
    # length, and the build() form
    subjects = {note.split(" ", 1)[0].rstrip(":") for note in notes}
    expected_subjects = set()
    if not standalone:
        expected_subjects.add("standalone")
    if rec.schedule.total_steps is None:
        expected_subjects.add("total_steps")  # the Trainer's estimate
    if rec.batch_size is not None:
        expected_subjects.add("batch_size")  # the DataLoader is the user's
    elif (profile.get("num_devices") or 1) > 1:
        expected_subjects.add("num_devices")
    if mixed:
        expected_subjects.add("precision")
    assert subjects == expected_subjects, notes
    if (profile.get("num_devices") or 1) > 1:
        assert any(f"lightning.Trainer(devices={profile['num_devices']})" in n for n in notes)
    if mixed:
        assert any(f'precision="{expected_precision}"' in n for n in notes)


#: profile -> the Trainer arguments of the header and the note subjects (precision, sharding, devices, batch)
TRAINER_CASES = {
    "fp16": (
        {"architecture": "gpt", "precision": "fp16", "mixed_precision": True, "total_steps": 100},
        {"max_steps": 100, "precision": "16-mixed"},
    ),
    "mixed-unspecified": (
        {"architecture": "gpt", "mixed_precision": True, "total_steps": 100},
        {"max_steps": 100, "precision": "bf16-mixed"},
    ),
    "fp32": ({"architecture": "gpt", "precision": "fp32", "total_steps": 100}, {"max_steps": 100}),
    "zero2-clipping": (  # DeepSpeed clips itself: the override would not (strategies/deepspeed.py), the Trainer does
        {"architecture": "gpt", "num_devices": 8, "sharding": "zero2", "total_steps": 100},
        {
            "max_steps": 100,
            "devices": 8,
            "strategy": "deepspeed_stage_2",
            "gradient_clip_val": 1.0,
            "gradient_clip_algorithm": "norm",
        },
    ),
    "fsdp": (
        {"architecture": "gpt", "num_devices": 4, "sharding": "fsdp", "total_steps": 100},
        {"max_steps": 100, "devices": 4, "strategy": "fsdp"},
    ),
    "no-length": ({"architecture": "gpt"}, {}),
}


@pytest.mark.parametrize("case", list(TRAINER_CASES), ids=list(TRAINER_CASES))
def test_lightning_header_states_the_trainer_arguments(case: str) -> None:
    from optirec import recommend

    profile, expected = TRAINER_CASES[case]
    rec = recommend(profile)
    notes: list[str] = []
    source = export(rec, "lightning", notes=notes)
    assert isinstance(source, str)
    assert _trainer_kwargs(source) == expected
    methods = [n.name for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)]
    clips_itself = rec.gradient_clipping is not None and not str(expected.get("strategy", "")).startswith("deepspeed")
    assert ("configure_gradient_clipping" in methods) == clips_itself
    subjects = {note.split(" ", 1)[0].rstrip(":") for note in notes}
    assert ("precision" in subjects) == ("precision" in expected)
    assert ("sharding" in subjects) == ("strategy" in expected)
    if case == "fsdp" and rec.gradient_clipping is not None:
        assert any("refuses norm clipping under FSDP" in n for n in notes)


@pytest.mark.parametrize(("clip_val", "raises"), [(0.5, True), (1.0, False)], ids=["other-value", "same-value"])
@QUIET[0]
@QUIET[1]
@QUIET[2]
def test_lightning_clipping_cannot_disagree_with_the_trainer(clip_val: float, raises: bool) -> None:
    """Trainer(gradient_clip_val=...) that says another value than the answer stops fit (LightningModule.
    clip_gradients raises MisconfigurationException); the same value trains."""
    rec = recommendation("lstm")
    assert rec.gradient_clipping is not None and rec.gradient_clipping.max_norm == 1.0
    source = export(rec, "lightning")
    assert isinstance(source, str)
    module = _module_class(source)()
    module.loss_scale = 1e3
    probe = Probe()
    if raises:
        with pytest.raises(L.pytorch.utilities.exceptions.MisconfigurationException, match="gradient_clip_val"):
            _fit(module, probe, gradient_clip_val=clip_val)
    else:
        _fit(module, probe, gradient_clip_val=clip_val)
        assert max(probe.clipped) <= 1.0 * (1 + 1e-5) < min(probe.raw)


@QUIET[0]
@QUIET[1]
@QUIET[2]
def test_lightning_schedule_free_hooks_switch_the_optimizer_in_a_real_fit() -> None:
    """Schedule-Free (not in the table): the exported hooks put the optimizer in train mode for every training
    batch and in eval mode (the averaged weights) when fit ends, as Lightning calls them."""
    from optirec.rules.recommendation import OptimizerChoice, ScheduleSpec

    base = recommendation("lstm")
    name = "schedulefree_adamw"
    choice = OptimizerChoice(name=name, hyperparameters=dict(BOOK.defaults[name]))
    rec = base.model_copy(
        update={
            "optimizer": choice,
            "schedule": ScheduleSpec(name="constant", warmup_steps=0, warmup_ratio=0.0, total_steps=3),
        }
    )
    source = export(rec, "lightning")
    assert isinstance(source, str) and not _imports_optirec(source)
    module = _module_class(source)()

    modes: list[bool] = []

    class Modes(Probe):
        def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
            modes.append(all(g["train_mode"] for g in trainer.optimizers[0].param_groups))

    trainer = _fit(module, Modes())
    assert type(trainer.optimizers[0]) is resolve(BOOK.optimizers[name].class_path)
    assert modes == [True, True, True]
    assert not any(g["train_mode"] for g in trainer.optimizers[0].param_groups)  # on_train_end: eval()
