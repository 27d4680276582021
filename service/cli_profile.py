"""What the ``optirec`` subcommands that take a profile share: the profile flags, the JSON reader, UsageError.

``recommend``, ``trial`` (service/cli.py) and ``diagnose`` (service/cli_diagnose.py) all read a profile
from flags and/or JSON; its one home is here, so that neither command module imports the other.  Only the
standard library is imported, so the CLI still starts fast (tests/test_public_api.py checks it).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["UsageError", "add_profile_arguments", "number", "profile_from_args", "read_json_object"]

# Profile flags: (flag, profile field, type)
_PROFILE_FLAGS: list[tuple[str, str, Any]] = [
    ("--domain", "domain", str),
    ("--architecture", "architecture", str),
    ("--rl-method", "rl_method", str),
    ("--goal", "goal", str),
    ("--num-parameters", "num_parameters", int),
    ("--batch-size", "batch_size", int),
    ("--total-steps", "total_steps", int),
    ("--epochs", "epochs", int),
    ("--steps-per-epoch", "steps_per_epoch", int),
    ("--dataset-size", "dataset_size", int),
    ("--device-memory-gb", "device_memory_gb", float),
]
_PROFILE_SWITCHES = [
    ("--memory-limited", "memory_limited"),
    ("--on-device", "on_device"),
    ("--mixed-precision", "mixed_precision"),
]


class UsageError(Exception):
    """Bad command-line input: printed as one line, exit code 2."""


def number(kind: Any, flag: str) -> Any:
    """An argparse ``type=`` converting to ``kind`` whose error names the flag as a profile field."""

    def convert(text: str) -> Any:
        try:
            return kind(text)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{flag.lstrip('-').replace('-', '_')}: {text!r} is not {what}") from None

    return convert


def add_profile_arguments(parser: argparse.ArgumentParser) -> None:
    """The profile flags and switches, ``--data`` and ``--json FILE``, on one subcommand."""
    for flag, field, kind in _PROFILE_FLAGS:
        parser.add_argument(flag, dest=field, type=kind if kind is str else number(kind, flag), default=None)
    parser.add_argument(
        "--data",
        dest="data",
        action="append",
        default=None,
        metavar="CHARACTERISTIC",
        help="data characteristic (repeatable, or comma-separated)",
    )
    for flag, field in _PROFILE_SWITCHES:
        parser.add_argument(flag, dest=field, action="store_true", default=None)
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
    for _, field, _ in _PROFILE_FLAGS:
        value = getattr(args, field)
        if value is not None:
            profile[field] = value
    for _, field in _PROFILE_SWITCHES:
        if getattr(args, field):
            profile[field] = True
    if args.data:
        profile["data"] = [d.strip() for chunk in args.data for d in chunk.split(",") if d.strip()]
    return profile
