"""The export format names: one home that the exporters, the CLI and the service all import (torch-free)."""

from __future__ import annotations

from typing import Final, Literal

__all__ = ["FORMATS", "LABELS", "ExportFormat"]

#: ``?format=`` / ``--format`` values, in the order they are listed to users
ExportFormat = Literal["json", "hf", "lightning", "timm", "torch", "optuna"]
FORMATS: Final[tuple[str, ...]] = ("json", "hf", "lightning", "timm", "torch", "optuna")

#: what each format is, in words (error messages and docs)
LABELS: Final = {
    "json": "JSON",
    "hf": "Hugging Face TrainingArguments",
    "lightning": "Lightning configure_optimizers",
    "timm": "timm create_optimizer_v2, create_scheduler_v2 and train.py arguments",
    "torch": "PyTorch code",
    "optuna": "Optuna/Ray Tune search space",
}
