"""Memory per device with sharding (ZeRO-1/2/3, FSDP), precision and 8-bit optimizer state (rules/memory.py).

Bytes per parameter follow ZeRO's accounting (Rajbhandari et al. 2020 §3.1): mixed precision keeps 2 bytes of
weights, 2 of gradients and 4 of fp32 master weights, plus the optimizer's own state (Adam: 2 x 4 bytes).
"""

from __future__ import annotations

from typing import Any

import pytest

from optirec.rules import default_rulebook, recommend

_65B = 65_000_000_000
_BOOK = default_rulebook()


def test_a_65b_llm_on_2048_fsdp_devices_keeps_adamw() -> None:
    rec = recommend(
        {"domain": "llm", "num_parameters": _65B, "num_devices": 2048, "device_memory_gb": 80, "sharding": "fsdp"}
    )
    assert rec.optimizer.name == "adamw"
    mem = rec.memory
    assert mem.sharded == ["state", "grads", "weights"] and mem.num_devices == 2048
    # fp32: (4 weights + 4 gradients + 2 x 4 state) bytes x 65B over 2048 devices
    assert mem.per_device_bytes == pytest.approx(16 * _65B / 2048, rel=1e-9)
    assert mem.fits is True
    assert not any("no optimizer choice fixes that" in w for w in rec.warnings)


def test_the_same_model_on_one_device_gets_a_warning_and_a_low_memory_choice() -> None:
    rec = recommend({"domain": "llm", "num_parameters": _65B, "device_memory_gb": 80})
    assert _BOOK.state_multiplier(rec.optimizer.name) == 0  # nothing else fits next to 520 GB of weights+grads
    assert any("no optimizer choice fixes that" in w and "FSDP" in w for w in rec.warnings)
    assert rec.memory.fits is False
    assert "adamw" in {a.name for a in rec.avoid}


@pytest.mark.parametrize(
    ("sharding", "expected_per_param"),
    [
        # bf16 mixed precision, Adam-class state (2 values): weights 2, grads 2, master 4, moments 8 = 16 bytes
        ("none", 2 + 2 + 4 + 8),
        ("zero1", 2 + 2 + (4 + 8) / 64),
        ("zero2", 2 + (2 + 4 + 8) / 64),
        ("zero3", (2 + 2 + 4 + 8) / 64),
        ("fsdp", (2 + 2 + 4 + 8) / 64),
    ],
)
def test_zero_stages_divide_what_they_shard(sharding: str, expected_per_param: float) -> None:
    n = 7_000_000_000
    rec = recommend(
        {"architecture": "llama", "num_parameters": n, "precision": "bf16", "num_devices": 64, "sharding": sharding}
    )
    assert rec.optimizer.name == "adamw"
    assert rec.memory.per_device_bytes == pytest.approx(expected_per_param * n, rel=1e-9)
    assert rec.memory.master_weight_bytes == 4 * n


def test_8bit_state_takes_a_byte_per_value() -> None:
    n = 1_000_000_000
    full = recommend({"architecture": "llama", "num_parameters": n})
    small = recommend({"architecture": "llama", "num_parameters": n, "optimizer_state_precision": "8bit"})
    assert full.memory.optimizer_state_bytes == 2 * 4 * n
    assert small.memory.optimizer_state_bytes == 2 * 1 * n


def test_sharding_makes_adamw_fit_where_replication_does_not() -> None:
    base: dict[str, Any] = {"architecture": "gpt", "num_parameters": 7_000_000_000, "device_memory_gb": 80}
    replicated = recommend({**base, "num_devices": 8})
    sharded = recommend({**base, "num_devices": 8, "sharding": "zero1"})
    assert replicated.optimizer.name != "adamw"  # 56 GB of weights+grads leave 24 GB: less than 56 GB of moments
    assert sharded.optimizer.name == "adamw"  # 56 GB of moments over 8 devices: 7 GB each
    assert sharded.memory.fits is True


def test_lora_adapters_do_not_let_the_frozen_models_size_rule_out_adamw() -> None:
    """QLoRA fits a 65B fine-tune on one 48 GB GPU (Dettmers et al. 2023): gradients and state are the adapters'."""
    base: dict[str, Any] = {"architecture": "llama", "phase": "fine_tuning", "num_parameters": 65 * 10**9}
    base |= {"device_memory_gb": 48, "num_devices": 1}
    full = recommend(base)
    lora = recommend({**base, "adapter": "qlora"})
    assert full.optimizer.name != "adamw" and full.memory.fits is not True
    assert lora.optimizer.name == "adamw" and lora.memory.per_device_bytes is None
    assert any(n.startswith("adapter lora: only the low-rank adapters") for n in lora.notes)


def test_sharding_without_devices_is_said_and_shards_nothing() -> None:
    rec = recommend({"architecture": "gpt", "num_parameters": 10**9, "sharding": "zero3"})
    assert rec.memory.sharded == [] and rec.memory.num_devices == 1
    assert any("sharding zero3 without num_devices" in n for n in rec.notes)


def test_soft_memory_warning_counts_per_device() -> None:
    """No device memory given: the 80 GB reference device is compared with what one device holds."""
    alone = recommend({"domain": "llm", "num_parameters": 13_000_000_000})
    spread = recommend({"domain": "llm", "num_parameters": 13_000_000_000, "num_devices": 64, "sharding": "fsdp"})
    assert any("more than one 80 GB device" in w for w in alone.warnings)
    assert not any("more than one 80 GB device" in w for w in spread.warnings)
