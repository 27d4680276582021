"""Plain PyTorch: a snippet with the optimizer, LR scheduler, clipping and ``training_step(compute_loss)``.

Parameter groups are made the way ``build()`` makes them, by the same code: the snippet carries the functions
of optimizers/depth.py (copied by their source, read as text so that this module stays free of torch) and a
``_param_groups`` helper over them. Weight decay spares 1-D parameters, biases and what the model's own
``no_weight_decay()`` / ``no_weight_decay_keywords()`` name; transfer learning freezes the stem and the first
half of the model's real blocks and gives each layer ``lr * decay ** depth`` (the head the full lr).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from optirec.rules import Recommendation
from optirec.rules.recommendation import ParamGroup

from .common import (
    INVERSE_SQRT_TIMESCALE,
    PLACEHOLDER_TOTAL_STEPS,
    RESTART_FIRST_CYCLE,
    WARMUP_START_FACTOR,
    Unsupported,
    describe_schedule,
    has_warmup,
    lookahead_base_hp,
    made_by,
    py_kwargs,
    py_literal,
    rulebook,
    split_groups,
)

#: optimizers/depth.py, whose functions the snippet carries (read as text: importing it would import torch)
_DEPTH_SOURCE = Path(__file__).resolve().parent.parent / "depth.py"
#: what the snippet needs of it: for the weight-decay split, and for freezing / layer-wise lr as well
_DECAY_NAMES = ("_listed", "no_decay_ids")
_DEPTH_NAMES = (
    "FREEZE_FRACTION",
    "_MATCH_PREV_GROUP",
    "_holds_params",
    "unwrap_model",
    "_timm_groups",
    "_repeated_blocks",
    "model_layers",
    "frozen_layer_count",
)
_DECAY_IMPORTS = ("import fnmatch", "from torch import nn")
_DEPTH_IMPORTS = ("import math", "import re", "from typing import Any")


def _param_groups_helper(layered: bool) -> list[str]:
    """``_param_groups(model, parameters, weight_decay=None[, lr=None, layer_decay=None])`` for the snippet."""
    signature = ", lr=None, layer_decay=None" if layered else ""
    doc_layers = (
        [
            "    With layer_decay: layer i of model_layers() gets lr * layer_decay ** (num_layers - 1 - i), the head",
            "    lr.",
        ]
        if layered
        else []
    )
    return [
        f"def _param_groups(model, parameters, weight_decay=None{signature}):",
        '    """The trainable parameters in groups, as optirec\'s build() makes them. With weight_decay: none on 1-D',
        "    parameters, biases and what the model's no_weight_decay() / no_weight_decay_keywords() name.",
        *doc_layers,
        '    """',
        "    names = {id(p): name for name, p in model.named_parameters()}",
        "    exempt = no_decay_ids(model) if weight_decay is not None else set()",
        *(
            [
                "    layer_of, num_layers = {}, 1",
                "    if layer_decay is not None:",
                "        _, layer_of, num_layers, _ = model_layers(model)",
            ]
            if layered
            else []
        ),
        "    groups = {}",
        "    for p in parameters:",
        "        if not p.requires_grad:",
        "            continue",
        f"        layer = {'layer_of.get(id(p), 0)' if layered else '0'}",
        "        spared = weight_decay is not None and (",
        '            p.ndim <= 1 or names.get(id(p), "").endswith(".bias") or id(p) in exempt',
        "        )",
        '        group = groups.setdefault((layer, spared), {"params": []})',
        '        group["params"].append(p)',
        "        if weight_decay is not None:",
        '            group["weight_decay"] = 0.0 if spared else weight_decay',
        *(
            [
                "        if layer_decay is not None:",
                '            group["lr"] = lr * layer_decay ** (num_layers - 1 - layer)',
            ]
            if layered
            else []
        ),
        "    return [groups[key] for key in sorted(groups)]",
    ]


@cache
def _depth_definitions() -> dict[str, str]:
    """name -> source of each top-level function and assignment of optimizers/depth.py."""
    text = _DEPTH_SOURCE.read_text(encoding="utf-8")
    out: dict[str, str] = {}
    for node in ast.parse(text).body:
        if isinstance(node, ast.FunctionDef):
            name = node.name
        elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
        else:
            continue
        segment = ast.get_source_segment(text, node)
        assert segment is not None
        out[name] = segment
    return out


def _depth_helpers(names: tuple[str, ...]) -> list[str]:
    """The snippet lines defining ``names`` from optimizers/depth.py, in that module's order."""
    definitions = _depth_definitions()
    missing = set(names) - set(definitions)
    assert not missing, f"optimizers/depth.py lost {sorted(missing)}"
    lines: list[str] = []
    for name, source in definitions.items():
        if name in names:
            function = source.startswith("def ")
            if function and lines:
                lines += ["", ""]
            lines += source.splitlines()
    return lines


class _TorchCode:
    """Builds the PyTorch snippet: header comments, imports, optimizers, schedulers, training_step."""

    def __init__(self, rec: Recommendation, notes: list[str]) -> None:
        self.rec = rec
        self.notes = notes
        self.book = rulebook()
        self.imports: list[str] = ["import torch"]
        self.body: list[str] = []
        #: (optimizer variable, scheduler variable, catalog name), the main optimizer first
        self.optimizers: list[tuple[str, str, str]] = []
        self.needs_groups_helper = False  # _param_groups and no_decay_ids
        self.needs_depth = False  # model_layers and the rest of optimizers/depth.py
        by_name = {g.name: g for g in rec.param_groups}
        self.freezes = "frozen" in by_name
        self.layer_decay = by_name["layerwise"].layerwise_lr_decay if "layerwise" in by_name else None
        self.layer_decay_applied = False

    # -------------------------------------------------------------- pieces
    def _import(self, line: str) -> None:
        if line not in self.imports:
            self.imports.append(line)

    def _import_for(self, class_path: str) -> None:
        module = class_path.rsplit(".", 1)[0]
        line = "import torch" if module.split(".")[0] == "torch" else f"import {module}"
        if line not in self.imports:
            self.imports.append(line)

    def _spec(self, name: str) -> Any:
        spec = self.book.optimizers.get(name)
        if spec is None:
            raise Unsupported(f"the optimizer {name!r}", "it is not in the optimizer catalog")
        return spec

    def _params(self, name: str, hp: Mapping[str, Any], params: str) -> str:
        """The parameter expression: split for weight decay where the recommendation asks for it, in layers for
        layer-wise lr decay, the frozen parameters left out (build()'s groups, optimizers/groups.py)."""
        has_no_decay = any(g.name == "no_decay" for g in self.rec.param_groups)
        second_order = self._spec(name).family == "second_order"
        decays = has_no_decay and bool(hp.get("weight_decay")) and not second_order
        layered = self.layer_decay is not None and hp.get("lr") is not None and not second_order
        if not (decays or layered or self.freezes):
            return params
        self.needs_groups_helper = True
        args = [f"model, {params}"]
        if decays:
            args.append(f"weight_decay={py_literal(hp['weight_decay'])}")
        if layered:
            self.needs_depth = self.layer_decay_applied = True
            args.append(f"lr={py_literal(hp['lr'])}, layer_decay={py_literal(self.layer_decay)}")
        return f"_param_groups({', '.join(args)})"

    def construct(self, var: str, name: str, hp: Mapping[str, Any], params: str) -> None:
        """``var = <class>(...)`` for catalog optimizer ``name``; wrappers get their base built too."""
        spec = self._spec(name)
        self._import_for(spec.class_path)
        hp = dict(hp)
        base = str(hp.pop("base", "sgd_momentum" if name == "sam" else "adam"))
        if name == "lookahead":
            self.construct("base_optimizer", base, lookahead_base_hp(base, hp), params)
            wrapper = {k: v for k, v in hp.items() if k in ("k", "lookahead_alpha")}
            self.body.append(f"{var} = {_call(spec.class_path, 'base_optimizer', py_kwargs(wrapper))}")
            return
        if name == "sam":
            base_hp = lookahead_base_hp(base, hp)
            base_path = self._spec(base).class_path
            self._import_for(base_path)
            sam = {k: v for k, v in hp.items() if k in ("rho", "adaptive")}
            first = self._params(base, base_hp, params)
            args = f"base_optimizer={base_path}, " + ", ".join(a for a in (py_kwargs(sam), py_kwargs(base_hp)) if a)
            self.body.append(f"{var} = {_call(spec.class_path, first, args)}")
            return
        takes_model = spec.torch_call.replace(" ", "").startswith(
            (f"{spec.class_path}(model,", f"{spec.class_path}(model)")
        )
        first = "model" if takes_model else self._params(name, hp, params)
        self.body.append(f"{var} = {_call(spec.class_path, first, py_kwargs(hp))}")

    def schedule(self, opt_var: str, sched_var: str) -> None:
        """``sched_var = ...`` for the recommendation's schedule, as optimizers/schedulers.py builds it."""
        s = self.rec.schedule
        t = "torch.optim.lr_scheduler"
        main_steps = "max(1, total_steps - warmup_steps)"
        if s.name == "one_cycle":
            self.body.append(
                f"{sched_var} = {t}.OneCycleLR({opt_var}, "
                f'max_lr=[g["lr"] for g in {opt_var}.param_groups], total_steps=total_steps, '
                "pct_start=min(0.5, max(warmup_steps / total_steps, 0.05)), "
                f'cycle_momentum="momentum" in {opt_var}.defaults or "betas" in {opt_var}.defaults)'
            )
            return
        final = s.final_lr_fraction or 0.0
        if s.name == "constant":
            main = f"{t}.ConstantLR({opt_var}, factor=1.0, total_iters=0)"
        elif s.name == "cosine" and final:
            self._import("import math")
            main = (
                f"{t}.LambdaLR({opt_var}, lambda t: {py_literal(final)} + (1 - {py_literal(final)}) * 0.5 * "
                f"(1 + math.cos(math.pi * min(t, {main_steps}) / {main_steps})))"
            )
        elif s.name == "cosine":
            main = f"{t}.CosineAnnealingLR({opt_var}, T_max={main_steps})"
        elif s.name == "linear":
            main = (
                f"{t}.LinearLR({opt_var}, start_factor=1.0, end_factor={py_literal(final)}, total_iters={main_steps})"
            )
        elif s.name == "poly" and final:
            power = py_literal(s.power if s.power is not None else 1.0)
            main = (
                f"{t}.LambdaLR({opt_var}, lambda t: {py_literal(final)} + (1 - {py_literal(final)}) * "
                f"(1 - min(t, {main_steps}) / {main_steps}) ** {power})"
            )
        elif s.name == "poly":
            power = py_literal(s.power if s.power is not None else 1.0)
            main = f"{t}.PolynomialLR({opt_var}, total_iters={main_steps}, power={power})"
        elif s.name == "inverse_sqrt":
            self._import("import math")
            scale = f"(warmup_steps if warmup_steps > 0 else {INVERSE_SQRT_TIMESCALE})"
            main = f"{t}.LambdaLR({opt_var}, lambda t: math.sqrt({scale} / ({scale} + t)))"
        elif s.name == "step":
            if s.milestones is not None and s.total_steps is not None:
                steps = f"({', '.join(str(m) for m in s.milestones)},)"
            else:
                fractions = ", ".join(py_literal(f) for f in (s.milestone_fractions or [0.5, 0.75]))
                steps = f"(max(1, round(f * total_steps)) for f in ({fractions},))"
            milestones = f"sorted({{m - warmup_steps for m in {steps} if m > warmup_steps}}) or [{main_steps}]"
            main = f"{t}.MultiStepLR({opt_var}, milestones={milestones}, gamma={py_literal(s.gamma or 0.1)})"
        elif s.name == "exponential":
            gamma = py_literal(s.gamma) if s.gamma is not None else f"{py_literal(final or 0.01)} ** (1 / {main_steps})"
            main = f"{t}.ExponentialLR({opt_var}, gamma={gamma})"
        else:  # cosine_restarts: first cycle a quarter of the post-warmup steps, each next one twice as long
            main = (
                f"{t}.CosineAnnealingWarmRestarts({opt_var}, "
                f"T_0=max(1, round({main_steps} * {RESTART_FIRST_CYCLE})), T_mult=2)"
            )
        if not has_warmup(s):
            self.body.append(f"{sched_var} = {main}")
            return
        self.body += [
            f"{sched_var} = {t}.SequentialLR(",
            f"    {opt_var},",
            "    schedulers=[",
            f"        {t}.LinearLR({opt_var}, start_factor={WARMUP_START_FACTOR}, total_iters=warmup_steps),",
            f"        {main},",
            "    ],",
            "    milestones=[warmup_steps],",
            ")",
        ]

    # -------------------------------------------------------------- whole snippet
    def build(self) -> str:
        rec = self.rec
        name = rec.optimizer.name
        spec = self._spec(name)
        if self.freezes:
            self.needs_depth = True
            self.body += [
                "# transfer learning (004 §2.5), as optirec's build(): freeze the stem and the first half of the",
                "# model's blocks (model_layers: its group_matcher(), repeated blocks or top-level children), never",
                "# the head",
                "_kind, _layer_of, _num_layers, _ = model_layers(model)",
                "_frozen_layers = frozen_layer_count(_kind, _layer_of, _num_layers, FREEZE_FRACTION)",
                "for _p in model.parameters():",
                "    if _layer_of[id(_p)] < _frozen_layers:",
                "        _p.requires_grad_(False)",
                "",
            ]
        groups = split_groups(rec)
        if groups:
            self._hybrid_optimizers(groups)
        elif name == "muon":
            self.body.append(
                "# Muon takes the 2-D hidden weight matrices, AdamW the rest "
                "(move the embeddings and the output head there too)"
            )
            self.construct(
                "optimizer", name, rec.optimizer.hyperparameters, "[p for p in model.parameters() if p.ndim == 2]"
            )
            self.construct(
                "adamw_optimizer",
                "adamw",
                self.book.defaults["adamw"],
                "[p for p in model.parameters() if p.ndim != 2]",
            )
            self.optimizers = [("optimizer", "scheduler", name), ("adamw_optimizer", "adamw_scheduler", "adamw")]
        else:
            self.construct("optimizer", name, rec.optimizer.hyperparameters, "model.parameters()")
            self.optimizers = [("optimizer", "scheduler", name)]

        s = rec.schedule
        self.body.append("")
        if s.total_steps is not None:
            self.body.append(f"total_steps = {s.total_steps}")
        else:
            self.body.append(
                f"total_steps = {PLACEHOLDER_TOTAL_STEPS}  # not in the profile: your run's number of optimizer steps"
            )
        if s.warmup_steps is not None:
            self.body.append(f"warmup_steps = {s.warmup_steps}")
        elif s.warmup_ratio > 0:
            self.body.append(f"warmup_steps = max(1, round(total_steps * {py_literal(s.warmup_ratio)}))")
        else:
            self.body.append("warmup_steps = 0")
        for opt_var, sched_var, _ in self.optimizers:
            self.schedule(opt_var, sched_var)

        if rec.ema is not None:
            self.body += [
                "",
                f"# weight EMA (decay {rec.ema.decay}): evaluate with ema_model",
                "ema_model = torch.optim.swa_utils.AveragedModel(",
                f"    model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn({py_literal(rec.ema.decay)})",
                ")",
            ]
        self._training_step()
        return self._assemble(spec)

    def _hybrid_optimizers(self, groups: list[ParamGroup]) -> None:
        rec = self.rec
        chosen = rec.optimizer.name
        main = next((g for g in groups if g.optimizer == chosen), None) or next(
            (g for g in groups if "*" in g.match), groups[-1]
        )
        selectors = [m for g in groups for m in g.match if m.startswith("torch.nn.")]
        if not selectors:
            raise Unsupported("the parameter split", "its groups name no torch.nn module types to select by")
        self.body += [
            "# 004 §5.6.1: each kind of parameter gets its own optimizer",
            "selected_ids = {",
            "    id(p)",
            "    for m in model.modules()",
            f"    if isinstance(m, {py_literal(tuple(selectors)).replace(chr(39), '')})",
            "    for p in m.parameters(recurse=False)",
            "}",
        ]
        ordered = [main, *(g for g in groups if g is not main)]
        for g in ordered:
            assert g.optimizer is not None
            var, sched = ("optimizer", "scheduler") if g is main else (f"{g.name}_optimizer", f"{g.name}_scheduler")
            test = "not in" if "*" in g.match else "in"
            params = f"[p for p in model.parameters() if id(p) {test} selected_ids]"
            hp = rec.optimizer.hyperparameters if g.optimizer == chosen else g.hyperparameters
            self.body.append(f"# {g.name} ({', '.join(g.match)}): {g.optimizer}")
            self.construct(var, g.optimizer, hp, params)
            self.optimizers.append((var, sched, g.optimizer))

    def _training_step(self) -> None:
        """``training_step(compute_loss)``: backward, clipping and step the way each optimizer needs them
        (as optimizers/training.py does)."""
        rec = self.rec
        clip = []
        if rec.gradient_clipping is not None:
            max_norm = py_literal(rec.gradient_clipping.max_norm)
            clip = [f"    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm={max_norm})"]
        main_var, _, main_name = self.optimizers[0]
        body = [
            "",
            "",
            "def training_step(compute_loss):",
            '    """One optimizer step. compute_loss() runs the forward pass and returns the loss (no backward)."""',
        ]
        switching = self._switching()
        body += [
            f"    {var}.train()  # Schedule-Free: the gradient is taken at the training weights" for var in switching
        ]
        if main_name == "lbfgs":
            body += [
                "",
                "    def closure():  # L-BFGS re-evaluates the loss during its line search",
                "        model.zero_grad(set_to_none=True)",
                "        loss = compute_loss()",
                "        loss.backward()",
                *("    " + line for line in clip),
                "        return loss",
                "",
                f"    loss = {main_var}.step(closure)",
            ]
        elif main_name == "newton":
            body += [
                "",
                "    def closure():  # Newton differentiates the loss twice itself: no backward here",
                "        model.zero_grad(set_to_none=True)",
                "        return compute_loss()",
                "",
                f"    loss = {main_var}.step(closure)",
            ]
        elif main_name == "sam":
            body += [
                "    model.zero_grad(set_to_none=True)",
                "    loss = compute_loss()  # the gradients at the current weights first",
                "    loss.backward()",
                *clip,
                "",
                "    def second_pass():  # then the loss at the perturbed weights",
                "        value = compute_loss()",
                "        value.backward()",
                "        return value",
                "",
                f"    {main_var}.step(second_pass)",
                "    model.zero_grad(set_to_none=True)",
            ]
        elif main_name == "sophia":
            body += [
                "    model.zero_grad(set_to_none=True)",
                "    loss = compute_loss()",
                "    # Sophia's Hessian estimate differentiates the gradient again, so the gradient keeps its graph",
                "    params = [p for p in model.parameters() if p.requires_grad]",
                "    grads = torch.autograd.grad(loss, params, create_graph=True)",
                "    for p, g in zip(params, grads):",
                "        p.grad = g",
                *clip,
                f"    {main_var}.step()",
                "    model.zero_grad(set_to_none=True)  # drop the graph-carrying gradients",
            ]
        else:
            body += [
                "    model.zero_grad(set_to_none=True)",
                "    loss = compute_loss()",
                "    loss.backward()",
                *clip,
            ]
            body += [f"    {opt_var}.step()" for opt_var, _, _ in self.optimizers]
        body += [f"    {sched}.step()" for _, sched, _ in self.optimizers]
        if rec.ema is not None:
            body.append("    ema_model.update_parameters(model)")
        body.append("    return loss.detach()")
        if switching:
            self._import("import contextlib")
            body += [
                "",
                "",
                "@contextlib.contextmanager",
                "def averaged_weights():",
                '    """Schedule-Free: evaluate and save checkpoints inside `with averaged_weights():` (the averaged',
                '    weights x, not the training point y); training resumes at the training weights afterwards."""',
                *(f"    {var}.eval()" for var in switching),
                "    try:",
                "        yield",
                "    finally:",
                *(f"        {var}.train()" for var in switching),
            ]
            self.notes.append(
                "Schedule-Free: evaluate and checkpoint inside `with averaged_weights():`; with BatchNorm, recompute "
                "its running statistics at those weights first (a few forward passes in train mode)."
            )
        self.body += body

    def _switching(self) -> list[str]:
        """The optimizer variables that switch weights between training and evaluation (Schedule-Free)."""
        return [var for var, _, name in self.optimizers if self._spec(name).needs_eval_mode]

    def _assemble(self, spec: Any) -> str:
        rec = self.rec
        s = rec.schedule
        details = [f"schedule {describe_schedule(s)}"]
        if rec.gradient_clipping is not None:
            details.append(f"gradient norm clipped at {rec.gradient_clipping.max_norm}")
        header = [
            f"# optirec: {spec.display_name} ({rec.optimizer.name}), {', '.join(details)}",
            f"# {made_by(rec)}; `model` is your torch.nn.Module,",
            "# call training_step(compute_loss) once per batch.",
        ]
        if self._switching():
            header.append("# Schedule-Free: evaluate and save checkpoints inside `with averaged_weights():`.")
        header += [f"# warning: {w}" for w in rec.warnings]
        for g in rec.param_groups:
            if g.frozen or g.layerwise_lr_decay is not None:
                header.append(f"# {g.name} ({', '.join(g.match)}): {g.why}")
            if g.layerwise_lr_decay is not None and not self.layer_decay_applied:
                self.notes.append(
                    f"param_groups.{g.name}: layer-wise lr decay {g.layerwise_lr_decay} is not coded: the "
                    f"optimizer {rec.optimizer.name} takes no lr per parameter group here (lr-free, second-order "
                    "or built from the model)."
                )
        if rec.phases:
            header.append("# phases (004 §6.4.2):")
            for p in rec.phases:
                if p.optimizer.name in self.book.optimizers:
                    path = self._spec(p.optimizer.name).class_path
                    call = _call(path, "model.parameters()", py_kwargs(p.optimizer.hyperparameters))
                    header.append(f"#   {p.name}: {call}  # {p.trigger}")
            self.notes.append("phases: the snippet builds the first phase; switch optimizers yourself.")
        if self.needs_groups_helper or self.needs_depth:
            for line in _DECAY_IMPORTS + (_DEPTH_IMPORTS if self.needs_depth else ()):
                self._import(line)
        lines = [*header, *sorted(self.imports, key=lambda i: (i != "import torch", i.startswith("from "), i))]
        if self.needs_groups_helper or self.needs_depth:
            names = _DECAY_NAMES + (_DEPTH_NAMES if self.needs_depth else ())
            lines += [
                "",
                "",
                "# parameter groups as optirec's build() makes them (copied from optirec's optimizers/depth.py)",
                *_depth_helpers(names),
            ]
            if self.needs_groups_helper:
                lines += ["", "", *_param_groups_helper(self.layer_decay_applied)]
            lines.append("")
        lines += ["", *self.body]
        return "\n".join(lines) + "\n"


def _call(path: str, first: str, args: str) -> str:
    return f"{path}({first}, {args})" if args else f"{path}({first})"


def torch_source(rec: Recommendation, notes: list[str]) -> str:
    code = _TorchCode(rec, notes).build()
    if rec.schedule.total_steps is None:
        notes.append(f"total_steps is unknown: the snippet uses a placeholder of {PLACEHOLDER_TOTAL_STEPS} steps.")
    _loop_notes(rec, notes)
    return code


def _loop_notes(rec: Recommendation, notes: list[str]) -> None:
    """What the answer says about the loop around training_step, which the snippet leaves to the user."""
    devices = int(rec.profile.get("num_devices") or 1)
    ddp = f" over {devices} devices (DistributedDataParallel and the per-device loaders are yours)"
    if rec.batch_size is not None:
        notes.append(
            f"batch_size: the lr is for {rec.batch_size} samples per optimizer step{ddp if devices > 1 else ''}; "
            "the snippet does not build the data loader."
        )
    elif devices > 1:
        notes.append(f"num_devices: the answer is for training{ddp}.")
    precision = rec.profile.get("precision")
    if rec.profile.get("mixed_precision") or precision in ("bf16", "fp16"):
        half = "float16" if precision == "fp16" else "bfloat16"
        scaler = ", with a torch.amp.GradScaler (unscale_ before clipping)" if half == "float16" else ""
        notes.append(
            f"precision: {precision or 'mixed'} mixed precision is not coded: run compute_loss under "
            f"torch.autocast(device_type, dtype=torch.{half}){scaler}."
        )
