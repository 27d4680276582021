"""The job profiles every export is run against (the issue-21 table): one place, so that each library's
integration tests and ``bench/exports.py`` cover the same jobs under the same ids."""

from __future__ import annotations

from typing import Any, Final

from optirec import Recommendation, recommend

__all__ = ["PROFILES", "recommendation"]

#: id -> profile; the ids name the test cases (``<format>-<id>``) and the rows of bench/exports.py
PROFILES: Final[dict[str, dict[str, Any]]] = {
    "resnet-b1024": {"architecture": "resnet", "batch_size": 1024, "total_steps": 2000},
    "bert-finetune": {"architecture": "bert", "phase": "fine_tuning", "total_steps": 1000},
    "gpt-pretrain": {
        "architecture": "gpt",
        "phase": "pretraining",
        "batch_size": 512,
        "total_steps": 5000,
        "num_devices": 8,
        "precision": "bf16",
        "mixed_precision": True,
    },
    "vit": {"architecture": "vit", "batch_size": 4096, "total_steps": 3000},
    "gan": {"architecture": "dcgan", "total_steps": 1000},
    "dqn": {"architecture": "dqn", "total_steps": 1000},
    "lstm": {"architecture": "lstm", "total_steps": 1000},
    "sparse-recommender": {"domain": "recommender", "data": ["sparse"], "total_steps": 1000},
    "llm-7b-memory": {"architecture": "llama", "num_parameters": 7_000_000_000, "device_memory_gb": 24},
    "vit-transfer": {"architecture": "vit", "goal": "transfer_learning", "total_steps": 500},
    "bert-transfer": {"architecture": "bert", "goal": "transfer_learning", "total_steps": 500},
    "wrn-step": {"architecture": "wide_resnet", "total_steps": 1000},
    "efficientnet-exponential": {"architecture": "efficientnet", "total_steps": 1000},
    "transformer-inverse-sqrt": {
        "architecture": "transformer",
        "domain": "nlp",
        "phase": "from_scratch",
        "num_parameters": 65_000_000,
        "total_steps": 100_000,
        "num_devices": 8,
    },
}


def recommendation(profile_id: str) -> Recommendation:
    """The live answer for one of :data:`PROFILES` (never a stored copy: the table follows the rules)."""
    return recommend(PROFILES[profile_id])
