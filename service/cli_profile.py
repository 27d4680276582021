"""What the ``optirec`` subcommands that take a profile share: the profile flags, the JSON reader, UsageError.

``recommend``, ``trial`` (service/cli.py) and ``diagnose`` (service/cli_diagnose.py) all read a profile
from flags and/or JSON; its one home is here, so that neither command module imports the other.  Only the
standard library is imported, so the CLI still starts fast (tests/test_public_api.py checks it).
"""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal, InvalidOperation
from typing import Any

from .cli_help import UsageError, valid_values, vocabulary

__all__ = [
    "PROFILE_FIELDS",
    "UsageError",
    "add_profile_arguments",
    "number",
    "profile_from_args",
    "read_json_object",
]

# Profile flags: (flag, profile field, type, help); every Profile field has one (tests/service/test_cli_help.py)
_PROFILE_FLAGS: list[tuple[str, str, Any, str]] = [
    ("--domain", "domain", str, "problem domain"),
    ("--architecture", "architecture", str, "model architecture (aliases such as ResNet50 accepted)"),
    ("--backbone", "backbone", str, "the encoder a self-supervised method (moco, dino, ...) trains, e.g. vit"),
    ("--rl-method", "rl_method", str, "reinforcement learning method"),
    ("--phase", "phase", str, "training phase"),
    ("--goal", "goal", str, "what matters most"),
    ("--num-parameters", "num_parameters", int, "trainable parameters, e.g. 7e9 or 124000000"),
    ("--batch-size", "batch_size", int, "global batch size (examples per optimizer step)"),
    ("--total-steps", "total_steps", int, "optimizer steps in the whole run"),
    ("--epochs", "epochs", int, "passes over the data (with --steps-per-epoch or --dataset-size)"),
    ("--steps-per-epoch", "steps_per_epoch", int, "optimizer steps per epoch"),
    ("--dataset-size", "dataset_size", int, "training examples"),
    ("--device-memory-gb", "device_memory_gb", float, "accelerator memory per device, GB"),
    ("--num-devices", "num_devices", int, "accelerators the job trains on"),
    ("--sharding", "sharding", str, "how optimizer state, gradients and weights are split over the devices"),
    ("--adapter", "adapter", str, "which weights train: none (all) or lora (adapters on a frozen model)"),
    ("--precision", "precision", str, "precision of weights and gradients"),
    ("--optimizer-state-precision", "optimizer_state_precision", str, "precision of the optimizer state"),
    ("--sequence-length", "sequence_length", int, "tokens per training sequence"),
    ("--batch-tokens", "batch_tokens", int, "tokens per optimizer step"),
    ("--total-tokens", "total_tokens", int, "training tokens in the whole run, e.g. 1e12"),
]
#: Profile fields whose flags take a word from the vocabulary (shown in --help): rules/profile.py ENUM_FIELDS
_VOCABULARY_FIELDS: tuple[str, ...] = ("domain", "architecture", "backbone", "rl_method", "phase", "goal", "sharding")
_VOCABULARY_FIELDS += ("adapter", "precision", "optimizer_state_precision")
_PROFILE_SWITCHES = [
    ("--memory-limited", "memory_limited", "memory is the binding constraint"),
    ("--on-device", "on_device", "training runs on a phone or an edge device"),
    ("--mixed-precision", "mixed_precision", "fp16/bf16 autocast training"),
]
#: The Profile fields the flags set (with --data)
PROFILE_FIELDS: tuple[str, ...] = (*(f[1] for f in _PROFILE_FLAGS), "data", *(s[1] for s in _PROFILE_SWITCHES))


def number(kind: Any, flag: str) -> Any:
    """An argparse ``type=`` converting to ``kind`` whose error names the flag as a profile field.

    An integer may be written as people write large counts: ``7e9``, ``1.5e6`` or ``1_000_000`` are taken when
    they are whole numbers (exactly: decimal arithmetic, no float rounding); ``7.5`` is refused."""

    def convert(text: str) -> Any:
        field = flag.lstrip("-").replace("-", "_")
        if kind is int:
            try:
                return int(text)
            except ValueError:
                pass
            try:
                value = Decimal(text.strip())
            except InvalidOperation:
                value = None
            if value is not None and value.is_finite() and value == value.to_integral_value():
                return int(value)
            raise argparse.ArgumentTypeError(f"{field}: {text!r} is not an integer (7e9 and 1_000 are)") from None
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{field}: {text!r} is not a number") from None

    return convert


def add_profile_arguments(parser: argparse.ArgumentParser) -> None:
    """The profile flags and switches, ``--data`` and ``--json FILE``, on one subcommand."""
    for flag, field, kind, text in _PROFILE_FLAGS:
        metavar = "NAME" if kind is str else "N"
        action = parser.add_argument(
            flag, dest=field, type=kind if kind is str else number(kind, flag), default=None, metavar=metavar, help=text
        )
        if field in _VOCABULARY_FIELDS:
            valid_values(action, vocabulary(field))
    data = parser.add_argument(
        "--data",
        dest="data",
        action="append",
        default=None,
        metavar="CHARACTERISTIC",
        help="data characteristic (repeatable, or comma-separated)",
    )
    valid_values(data, vocabulary("data"))
    for flag, field, text in _PROFILE_SWITCHES:
        parser.add_argument(flag, dest=field, action="store_true", default=None, help=text)
    parser.add_argument("--json", dest="json_file", metavar="FILE", help="read the profile from FILE ('-' = stdin)")


def read_json_object(source: str | None) -> dict[str, Any]:
    """The JSON object in file ``source`` (stdin for None or ``-``); {} for empty input; UsageError otherwise."""
    where = "stdin" if source in (None, "-") else source
    try:
        if source in (None, "-"):
            text = sys.stdin.read()
        else:
            with open(source, encoding="utf-8") as fh:
                text = fh.read()
    except OSError as exc:
        raise UsageError(f"json: cannot read {source!r}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"profile: {where} is not UTF-8 text (byte {exc.start})") from None
    if not text.strip():
        return {}
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"profile: {where} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    except RecursionError:
        raise UsageError(f"profile: {where} nests JSON too deeply; a profile is a flat object") from None
    if not isinstance(value, dict):
        raise UsageError("profile: must be a JSON object of profile fields")
    return value


def _reject_constant(name: str) -> Any:
    raise UsageError(f"profile: {name} is not a valid JSON number")


def profile_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The profile fields given as flags (those left unset are absent)."""
    profile: dict[str, Any] = {}
    for _, field, _, _ in _PROFILE_FLAGS:
        value = getattr(args, field)
        if value is not None:
            profile[field] = value
    for _, field, _ in _PROFILE_SWITCHES:
        if getattr(args, field):
            profile[field] = True
    if args.data:
        profile["data"] = [d.strip() for chunk in args.data for d in chunk.split(",") if d.strip()]
    return profile
