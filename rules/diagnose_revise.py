"""The fixes of ``optirec.diagnose`` (rules/diagnose.py): the actions of symptoms.toml applied to a copy of a
Recommendation, every change recorded with its reason, rule and source. Pure Python.
"""

from __future__ import annotations

from typing import Any

from .diagnose_models import Change
from .diagnose_stats import pct
from .loader import Rulebook
from .lr_terms import lr_range_holding, lr_search_range
from .recommendation import Recommendation
from .schema import DiagnosisSettings, Symptom

__all__ = ["Reviser"]


# ---------------------------------------------------------------------------------------- revision
class Reviser:
    """Applies the actions of the findings to a copy of the recommendation, recording every change."""

    def __init__(self, rec: Recommendation, book: Rulebook, goal: str | None, family: str | None) -> None:
        self.book = book
        self.ds: DiagnosisSettings = book.diagnosis  # type: ignore[assignment]
        self.data: dict[str, Any] = rec.model_dump(mode="json")
        self.goal = goal
        self.family = family
        self.changes: list[Change] = []
        self.notes: list[str] = []
        self.done: set[str] = set()
        self.applied_by: dict[str, list[Change]] = {}

    @property
    def hp(self) -> dict[str, Any]:
        return self.data["optimizer"]["hyperparameters"]  # type: ignore[no-any-return]

    def _change(self, path: str, old: Any, new: Any, why: str, rule: str, source: str, symptom: str) -> None:
        c = Change.model_validate(
            {"field": path, "from": old, "to": new, "why": why, "rule": rule, "source": source, "symptom": symptom}
        )
        self.changes.append(c)
        self.applied_by.setdefault(symptom, []).append(c)

    def apply(self, action: str, why: str, rule: str, source: str, symptom: str) -> bool:
        """Apply ``action`` once; False when it cannot change anything (or was already applied)."""
        if action in self.done:
            self.notes.append(f"{symptom}: {action} was already applied for another finding.")
            return True
        changed = getattr(self, f"_{action}")(why, rule, source, symptom)
        if changed:
            self.done.add(action)
        return bool(changed)

    # ---- actions
    def _lr_divide_10(self, why: str, rule: str, source: str, symptom: str) -> bool:
        div = self.ds.lr_divisor
        lr = self.hp.get("lr")
        if not isinstance(lr, int | float) or lr <= 0:
            self.notes.append(f"{symptom}: the optimizer has no lr to lower.")
            return False
        new = float(f"{lr / div:.6g}")
        self.hp["lr"] = new
        self._change("optimizer.hyperparameters.lr", lr, new, why, rule, source, symptom)
        space = self.data["search_space"]
        if "lr" in space:
            old = list(space["lr"])
            space["lr"] = list(lr_range_holding(new, old[0] / div, old[1] / div))  # the range moves with the lr
            self._change(
                "search_space.lr",
                old,
                space["lr"],
                f"the search range follows the lr (/{div:g})",
                rule,
                source,
                symptom,
            )
            for hint in self.data["tuning"]:
                if hint["name"] == "lr":
                    hint["low"], hint["high"] = space["lr"]
        for i, g in enumerate(self.data["param_groups"]):
            glr = g["hyperparameters"].get("lr")
            if isinstance(glr, int | float) and glr > 0:
                g["hyperparameters"]["lr"] = float(f"{glr / div:.6g}")
                self._change(
                    f"param_groups[{i}].hyperparameters.lr", glr, g["hyperparameters"]["lr"], why, rule, source, symptom
                )
        for i, ph in enumerate(self.data["phases"]):
            plr = ph["optimizer"]["hyperparameters"].get("lr")
            if ph["optimizer"]["name"] == self.data["optimizer"]["name"] and isinstance(plr, int | float) and plr > 0:
                ph["optimizer"]["hyperparameters"]["lr"] = new
                self._change(f"phases[{i}].optimizer.hyperparameters.lr", plr, new, why, rule, source, symptom)
        return True

    def _add_clipping(self, why: str, rule: str, source: str, symptom: str) -> bool:
        norm = self.book.principles.default_clip_norm
        current = self.data["gradient_clipping"]
        if current is not None and current["max_norm"] <= norm:
            self.notes.append(f"{symptom}: gradients are already clipped at max_norm {current['max_norm']:g}.")
            return False
        self.data["gradient_clipping"] = {"max_norm": norm}
        self._change("gradient_clipping", current, {"max_norm": norm}, why, rule, source, symptom)
        return True

    def _add_warmup(self, why: str, rule: str, source: str, symptom: str) -> bool:
        sched = self.data["schedule"]
        ratio = self.ds.warmup_ratio
        if sched["warmup_ratio"] >= ratio:
            self.notes.append(
                f"{symptom}: the schedule already warms up over {pct(sched['warmup_ratio'])} of the steps."
            )
            return False
        old = sched["warmup_ratio"]
        sched["warmup_ratio"] = ratio
        self._change(
            "schedule.warmup_ratio",
            old,
            ratio,
            why + f" (linear warmup over {pct(ratio)} of the steps)",
            rule,
            source,
            symptom,
        )
        total = sched["total_steps"]
        steps = round(total * ratio) if total else None
        if sched["warmup_steps"] != steps:
            self._change("schedule.warmup_steps", sched["warmup_steps"], steps, why, rule, source, symptom)
            sched["warmup_steps"] = steps
        return True

    def _cosine_annealing(self, why: str, rule: str, source: str, symptom: str) -> bool:
        sched = self.data["schedule"]
        if sched["name"] in ("cosine", "cosine_restarts"):
            self.notes.append(f"{symptom}: the schedule already anneals ({sched['name']}).")
            return False
        old = sched["name"]
        sched.update(name="cosine", milestones=None, milestone_fractions=None, gamma=None)
        self._change("schedule.name", old, "cosine", why, rule, source, symptom)
        return True

    def _raise_weight_decay(self, why: str, rule: str, source: str, symptom: str) -> bool:
        pr = self.book.principles
        family = self.book.optimizers[self.data["optimizer"]["name"]].family
        lo, hi = pr.sgd_weight_decay_range if family == "sgd" else pr.adaptive_weight_decay_range
        wd = float(self.hp.get("weight_decay") or 0.0)
        if wd >= hi:
            self.notes.append(
                f"{symptom}: weight decay {wd:g} is already at the top of the 004 §6.3 range ({lo:g}-{hi:g}); "
                "more data, augmentation or early stopping are the next levers."
            )
            return False
        new = float(f"{min(max(wd * self.ds.weight_decay_factor, lo), hi):.6g}")
        self.hp["weight_decay"] = new
        self._change(
            "optimizer.hyperparameters.weight_decay",
            wd,
            new,
            why + f" (x{self.ds.weight_decay_factor:g}, kept within {lo:g}-{hi:g}, {pr.sources['tuning']})",
            rule,
            source,
            symptom,
        )
        if wd == 0 and not any(g["name"] == "no_decay" for g in self.data["param_groups"]):
            self.data["param_groups"].append(
                {
                    "name": "no_decay",
                    "match": ["bias", "norm weights (BatchNorm/LayerNorm/GroupNorm)", "1-D parameters"],
                    "optimizer": None,
                    "hyperparameters": {"weight_decay": 0.0},
                    "frozen": False,
                    "layerwise_lr_decay": None,
                    "why": "Weight decay is not applied to biases and normalisation weights "
                    "(as timm and Hugging Face do).",
                }
            )
            self._change(
                "param_groups",
                "no no_decay group",
                "no_decay group added",
                "weight decay is now on",
                rule,
                source,
                symptom,
            )
        return True

    def _lower(self, beta: float) -> float:
        ds = self.ds
        return float(f"{max(ds.min_momentum, 1 - ds.momentum_horizon_divisor * (1 - beta)):.4g}")

    def _lower_momentum(self, why: str, rule: str, source: str, symptom: str) -> bool:
        hp = self.hp
        m = hp.get("momentum")
        if isinstance(m, int | float) and m > 0:
            new = self._lower(m)
            if new >= m:
                self.notes.append(f"{symptom}: momentum {m:g} is already at the floor {self.ds.min_momentum:g}.")
                return False
            hp["momentum"] = new
            self._change("optimizer.hyperparameters.momentum", m, new, why, rule, source, symptom)
            space = self.data["search_space"]
            if "momentum" in space and space["momentum"][0] > new:
                old = list(space["momentum"])
                space["momentum"] = [new, old[1]]
                self._change(
                    "search_space.momentum",
                    old,
                    space["momentum"],
                    "the search range includes the lowered momentum",
                    rule,
                    source,
                    symptom,
                )
                for hint in self.data["tuning"]:
                    if hint["name"] == "momentum":
                        hint["low"] = new
            return True
        betas = hp.get("betas")
        if isinstance(betas, list | tuple) and len(betas) == 2 and betas[0] > 0:
            new = self._lower(betas[0])
            if new >= betas[0]:
                self.notes.append(f"{symptom}: beta1 {betas[0]:g} is already at the floor {self.ds.min_momentum:g}.")
                return False
            old = list(betas)
            hp["betas"] = [new, betas[1]]
            self._change(
                "optimizer.hyperparameters.betas",
                old,
                hp["betas"],
                why + " (beta1 is Adam's momentum)",
                rule,
                source,
                symptom,
            )
            return True
        return False

    def _switch_to_sgd(self, why: str, rule: str, source: str, symptom: str) -> bool:
        book, pr = self.book, self.book.principles
        old_name = self.data["optimizer"]["name"]
        if old_name == "sgd_momentum":
            return False
        sgd_hp = dict(book.defaults["sgd_momentum"])
        for ph in self.data["phases"]:
            if ph["optimizer"]["name"] == "sgd_momentum":
                sgd_hp = dict(ph["optimizer"]["hyperparameters"])
        old = {"name": old_name, "hyperparameters": dict(self.hp)}
        self.data["optimizer"] = {"name": "sgd_momentum", "hyperparameters": sgd_hp}
        self._change("optimizer", old, self.data["optimizer"], why, rule, source, symptom)
        lr = sgd_hp.get("lr")
        space = self.data["search_space"]
        old_space = {k: list(v) for k, v in space.items()}
        if isinstance(lr, int | float) and lr > 0:
            space["lr"] = list(lr_search_range(lr, pr))
        space["weight_decay"] = list(pr.sgd_weight_decay_range)
        space["momentum"] = list(pr.momentum_range)
        self._change(
            "search_space",
            old_space,
            {k: list(v) for k, v in space.items()},
            "ranges for SGD + momentum (004 §6.3)",
            rule,
            source,
            symptom,
        )
        self.data["tuning"] = [h for h in self.data["tuning"] if h["name"] in space]
        for h in self.data["tuning"]:
            h["low"], h["high"] = space[h["name"]]
        if "momentum" not in {h["name"] for h in self.data["tuning"]}:
            priority, reason = book.tuning_why["momentum"]
            lo, hi = pr.momentum_range
            self.data["tuning"].append(
                {
                    "name": "momentum",
                    "priority": priority,
                    "low": lo,
                    "high": hi,
                    "scale": "linear",
                    "why": reason,
                    "source": pr.sources["tuning"],
                }
            )
        if self.data["phases"]:
            self._change(
                "phases",
                [p["name"] for p in self.data["phases"]],
                [],
                "the switch is made now: one phase left",
                rule,
                source,
                symptom,
            )
            self.data["phases"] = []
        mem = self.data["memory"]
        mult = book.state_multiplier("sgd_momentum")
        if mem["state_multiplier"] != mult:
            old_mult = mem["state_multiplier"]
            mem["state_multiplier"] = mult
            n = mem.get("parameters")
            if n and mem.get("optimizer_state_bytes") is not None and old_mult:
                value_bytes = mem["optimizer_state_bytes"] / (old_mult * n)  # bytes per state value, whole job
                state = int(mult * value_bytes * n)
                delta = state - mem["optimizer_state_bytes"]
                mem["optimizer_state_bytes"] = state
                if mem.get("total_bytes") is not None:
                    mem["total_bytes"] += delta
                per_value = mem.get("state_value_bytes_per_device")
                if mem.get("per_device_bytes") is not None and per_value is not None:
                    mem["per_device_bytes"] = int(mem["per_device_bytes"] + (mult - old_mult) * n * per_value)
                if mem.get("device_memory_bytes") and mem.get("per_device_bytes") is not None:
                    mem["fits"] = mem["per_device_bytes"] <= mem["device_memory_bytes"]
            self._change(
                "memory.state_multiplier",
                old_mult,
                mult,
                "SGD + momentum keeps one state value per parameter",
                rule,
                source,
                symptom,
            )
        if isinstance(lr, int | float):
            self.data["lr_scaling"] = {
                "rule": "none",
                "base_lr": lr,
                "base_batch_size": None,
                "batch_size": self.data["batch_size"],
                "factor": 1.0,
                "reason": f"lr of SGD + momentum for the final phase after {old_name} ({source})",
            }
        return True

    # ---- symptoms
    def symptom(self, sym: Symptom, why_prefix: str) -> None:
        gated = self._gate(sym)
        if gated is not None:
            self.notes.append(gated)
            return
        why = f"{why_prefix}: {sym.cause}, so {sym.fix}"
        applied = [self.apply(a, why, sym.id, sym.source, sym.name) for a in sym.actions]
        if not any(applied) and sym.fallback is not None:
            self.apply(sym.fallback, f"{why_prefix}: {sym.fallback_why}", sym.id, sym.source, sym.name)
        for ctx in self.book.symptom_contexts:
            if self.family in ctx.when_family and sym.name in ctx.when_symptoms:
                for a in ctx.actions:
                    self.apply(a, f"{why_prefix} in a recurrent network: {ctx.why}", ctx.id, ctx.source, sym.name)

    def _gate(self, sym: Symptom) -> str | None:
        name = self.data["optimizer"]["name"]
        parts = []
        if sym.requires_optimizer is not None and name not in sym.requires_optimizer:
            parts.append(f"the optimizer is {name}, not one of {', '.join(sym.requires_optimizer)}")
        if sym.requires_goal is not None and self.goal not in sym.requires_goal:
            parts.append(f"the goal is {self.goal or 'not given'}, not {' or '.join(sym.requires_goal)}")
        if not parts:
            return None
        return (
            f"{sym.name}: '{sym.fix}' ({sym.source}) does not apply here: "
            + "; ".join(parts)
            + (". The recommendation is left as it is for this finding.")
        )
