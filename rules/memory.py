"""Memory per device: weights, gradients, master weights and optimizer state, with sharding and precision.

The bytes per parameter follow ZeRO's accounting (Rajbhandari et al. 2020 §3.1): in mixed precision a
model of Ψ parameters keeps 2Ψ bytes of fp16/bf16 weights, 2Ψ of gradients and, on the optimizer's side,
4Ψ of fp32 master weights plus the optimizer's own state (Adam: 8Ψ, two fp32 moments). Sharding splits
those over the data-parallel devices: ZeRO-1 the optimizer side, ZeRO-2 the gradients as well, ZeRO-3 and
FSDP the weights too. 8-bit optimizer state keeps one byte per value (Dettmers et al. 2022).

:class:`MemoryPlan` turns a profile into a *budget*: the optimizer-state values per parameter that fit
next to everything else on one device (004 §2.1's memory column counts state in those units).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .profile import Profile
from .schema import Principles

__all__ = ["GB", "MemoryPlan", "plan_memory"]

GB = 1e9  # decimal gigabytes, as in "56 GB of optimizer state"
_SHARDED = {"none": (), "zero1": ("state",), "zero2": ("state", "grads"), "zero3": ("state", "grads", "weights")}
_SHARDED["fsdp"] = _SHARDED["zero3"]


@dataclass(slots=True)
class MemoryPlan:
    """Bytes per parameter on one device, and the state budget they leave."""

    n: int | None
    weight_bytes: int  # per parameter, at the profile's precision
    master_bytes: int  # fp32 master copy per parameter in mixed precision (0 in fp32)
    state_bytes: int  # per optimizer-state value
    devices: int  # data-parallel devices the sharded parts are split over
    sharded: tuple[str, ...]  # which parts are split: "state" (with master weights), "grads", "weights"
    budget: float | None = None  # optimizer-state values per parameter that fit (None: no hard limit)
    source: str = ""  # what set the budget: memory_limited, on_device, device_memory_gb
    soft_pressure: bool = False
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def share(self, part: str) -> float:
        """The fraction of ``part`` one device holds."""
        return 1.0 / self.devices if part in self.sharded else 1.0

    def fixed_bytes(self) -> float:
        """Bytes per parameter on one device besides the optimizer's own state."""
        return (
            self.weight_bytes * self.share("weights")
            + self.weight_bytes * self.share("grads")
            + self.master_bytes * self.share("state")
        )

    def state_bytes_per_value(self) -> float:
        """Bytes one optimizer-state value of one parameter costs one device."""
        return self.state_bytes * self.share("state")

    def per_device(self, multiplier: float) -> float | None:
        """Bytes one device needs with an optimizer keeping ``multiplier`` state values per parameter."""
        if self.n is None:
            return None
        return self.n * (self.fixed_bytes() + multiplier * self.state_bytes_per_value())

    def estimate(self, multiplier: float, device_memory_gb: float | None) -> dict[str, Any]:
        """The MemoryEstimate fields for an optimizer of ``multiplier`` state values per parameter."""
        n = self.n
        if n is None:
            return {
                "state_multiplier": multiplier,
                "optimizer_state_bytes": None,
                "parameter_bytes": None,
                "gradient_bytes": None,
                "total_bytes": None,
                "device_memory_bytes": None,
                "budget_multiplier": self.budget,
                "fits": None,
                "per_device_bytes": None,
                "master_weight_bytes": None,
                "num_devices": self.devices,
                "sharded": list(self.sharded),
                "state_value_bytes_per_device": None,
                "parameters": None,
            }
        state = int(multiplier * self.state_bytes * n)
        params = self.weight_bytes * n
        master = self.master_bytes * n
        per_device = self.per_device(multiplier)
        assert per_device is not None
        device = int(device_memory_gb * GB) if device_memory_gb is not None else None
        return {
            "state_multiplier": multiplier,
            "optimizer_state_bytes": state,
            "parameter_bytes": params,
            "gradient_bytes": params,
            "total_bytes": state + 2 * params + master,
            "device_memory_bytes": device,
            "budget_multiplier": None if self.budget is None else round(self.budget, 4),
            "fits": None if device is None else per_device <= device,
            "per_device_bytes": int(per_device),
            "master_weight_bytes": master,
            "num_devices": self.devices,
            "sharded": list(self.sharded),
            "state_value_bytes_per_device": self.state_bytes_per_value(),
            "parameters": n,
        }


def plan_memory(p: Profile, pr: Principles) -> MemoryPlan:
    """The profile's memory plan: bytes per parameter per device and the hard or soft state budget."""
    if (
        p.num_parameters is None
        and p.memory_limited is None
        and p.on_device is None
        and p.sharding is None
        and p.num_devices is None
        and p.precision is None
        and p.optimizer_state_precision is None
    ):  # nothing to count with: the usual case of a short profile (a fresh plan, as the engine may set source)
        return MemoryPlan(None, pr.bytes_per_state_value, 0, pr.bytes_per_state_value, 1, ())
    if p.adapter == "lora":
        # gradients, master weights and optimizer state exist only for the adapters, whose count the profile does
        # not give (num_parameters is the frozen model's size, as recipes state it): nothing to budget state with
        plan = MemoryPlan(None, pr.bytes_per_state_value, 0, pr.bytes_per_state_value, p.num_devices or 1, ())
        plan.notes.append(
            "adapter lora: only the low-rank adapters keep gradients and optimizer state, a small share of the "
            "frozen model (Hu et al. 2021 §4), so the optimizer's state does not limit the choice; the memory "
            "estimate is left out because the adapters' size is not given."
        )
        return plan
    mixed = p.precision in ("bf16", "fp16") or (p.precision is None and bool(p.mixed_precision))
    weight = pr.bytes_per_state_value // 2 if mixed else pr.bytes_per_state_value
    state = pr.bytes_8bit_state if p.optimizer_state_precision == "8bit" else pr.bytes_per_state_value
    sharding = p.sharding or "none"
    devices = p.num_devices or 1
    plan = MemoryPlan(
        n=p.num_parameters,
        weight_bytes=weight,
        master_bytes=pr.bytes_per_state_value if mixed else 0,
        state_bytes=state,
        devices=devices,
        sharded=_SHARDED[sharding] if devices > 1 else (),
    )
    if sharding != "none" and p.num_devices is None:
        plan.notes.append(
            f"sharding {sharding} without num_devices: the memory math assumes one device, so nothing is split; "
            "give num_devices to count the sharded state per device."
        )
    if p.memory_limited or p.on_device:
        plan.budget = 1.0
        plan.source = "memory_limited" if p.memory_limited else "on_device"
    n = p.num_parameters
    if n is not None and p.device_memory_gb is not None:
        avail = p.device_memory_gb * GB - n * plan.fixed_bytes()
        device_budget = avail / (n * plan.state_bytes_per_value())
        if device_budget < 0:
            need = n * plan.fixed_bytes() / GB
            plan.warnings.append(
                f"The {n:,} parameters need {need:.1f} GB per device for weights and gradients"
                f"{' (and fp32 master weights)' if plan.master_bytes else ''} alone, more than the "
                f"{p.device_memory_gb:g} GB device: shard the model (FSDP/ZeRO-3 over more devices), offload, or "
                "lower precision; no optimizer choice fixes that."
            )
            device_budget = 0.0
        if plan.budget is None or device_budget < plan.budget:
            plan.budget = device_budget
            plan.source = "device_memory_gb"
        return plan
    if plan.budget is None and n is not None:
        adam = plan.per_device(2.0)
        plan.soft_pressure = adam is not None and adam > pr.reference_device_memory_gb * GB
    return plan
