"""The ``optirec`` command line.

    optirec recommend --architecture resnet --batch-size 1024
    echo '{"domain": "nlp", "goal": "fine_tuning"}' | optirec recommend
    optirec recommend --architecture bert --goal fine_tuning --format hf     # or lightning, timm, torch, optuna
    optirec rules --level architecture
    optirec optimizers --family adaptive

Bad input exits with code 2 and one line naming the field and the valid values.
Only the standard library and the rules side are imported here, so the command starts fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

__all__ = ["main"]

EXIT_USAGE = 2
#: ``optirec recommend --format`` values; the same as optirec.optimizers.exporters.FORMATS (imported lazily)
_EXPORT_FORMATS = ("json", "hf", "lightning", "timm", "torch", "optuna")

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


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _number(kind: Any, flag: str) -> Any:
    def convert(text: str) -> Any:
        try:
            return kind(text)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{flag.lstrip('-').replace('-', '_')}: {text!r} is not {what}") from None

    return convert


def _build_parser() -> _Parser:
    parser = _Parser(prog="optirec", description="Optimizer recommendations for deep-learning training jobs.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    rec = sub.add_parser("recommend", help="recommend an optimizer for a profile (flags or JSON on stdin)")
    for flag, field, kind in _PROFILE_FLAGS:
        rec.add_argument(flag, dest=field, type=kind if kind is str else _number(kind, flag), default=None)
    rec.add_argument(
        "--data",
        dest="data",
        action="append",
        default=None,
        metavar="CHARACTERISTIC",
        help="data characteristic (repeatable, or comma-separated)",
    )
    for flag, field in _PROFILE_SWITCHES:
        rec.add_argument(flag, dest=field, action="store_true", default=None)
    rec.add_argument("--json", dest="json_file", metavar="FILE", help="read the profile from FILE ('-' = stdin)")
    rec.add_argument(
        "--format",
        dest="fmt",
        metavar="{" + ",".join(_EXPORT_FORMATS) + "}",
        default="json",
        help="output format: json (the Recommendation), hf (TrainingArguments kwargs), lightning "
        "(configure_optimizers source), timm (create_optimizer_v2 kwargs), torch (PyTorch code), "
        "optuna (search space)",
    )
    rec.add_argument("--compact", action="store_true", help="one-line JSON")

    rules = sub.add_parser("rules", help="list the knowledge base's rules (filterable)")
    rules.add_argument("--level", help="architecture, domain, constraint, family, data, goal, guide or default")
    rules.add_argument("--id", dest="rule_id", help="rule id or id prefix, e.g. architecture.resnet or data.")
    rules.add_argument("--optimizer", help="rules that prefer or avoid this optimizer")
    rules.add_argument("--source", help="text the rule's source contains, e.g. '§2.4'")
    rules.add_argument("--json", dest="as_json", action="store_true", help="print JSON instead of a table")

    serve = sub.add_parser("serve", help="start the HTTP service (settings also from OPTIREC_* variables)")
    serve.add_argument("--host", default=None, help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=_number(int, "--port"), default=None, help="port (default 8000)")

    opts = sub.add_parser("optimizers", help="list the optimizer catalog")
    opts.add_argument("--family", help="sgd, adaptive, second_order or wrapper")
    opts.add_argument("--json", dest="as_json", action="store_true", help="print JSON instead of a table")
    return parser


def _read_stdin_profile(source: str | None) -> dict[str, Any]:
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


def _profile_from_args(args: argparse.Namespace) -> dict[str, Any]:
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


def _cmd_recommend(args: argparse.Namespace) -> int:
    from optirec.rules import recommend

    if args.fmt not in _EXPORT_FORMATS:
        raise UsageError(f"format: unknown format {args.fmt!r}; valid values: {', '.join(_EXPORT_FORMATS)}")

    flags = _profile_from_args(args)
    if args.json_file is not None:
        profile = {**_read_stdin_profile(args.json_file), **flags}
    elif not flags and not sys.stdin.isatty():
        profile = _read_stdin_profile(None)
    else:
        profile = flags
    rec = recommend(profile)
    indent = None if args.compact else 2
    if args.fmt == "json":
        print(json.dumps(rec.model_dump(mode="json"), ensure_ascii=False, indent=indent))
        return 0
    from optirec.optimizers.errors import ExportError
    from optirec.optimizers.exporters import export

    notes: list[str] = []
    try:
        result = export(rec, args.fmt, notes)
    except ExportError as exc:
        raise UsageError(str(exc)) from None
    if isinstance(result, str):
        print(result, end="")
    else:
        print(json.dumps(result, ensure_ascii=False, indent=indent))
    for note in notes:
        print(f"optirec: note: {note}", file=sys.stderr)
    return 0


def _cmd_rules(args: argparse.Namespace) -> int:
    from optirec.rules import default_rulebook
    from optirec.rules.loader import LEVEL_WEIGHTS

    book = default_rulebook()
    if args.level and args.level not in LEVEL_WEIGHTS:
        raise UsageError(f"level: unknown level {args.level!r}; valid values: {', '.join(LEVEL_WEIGHTS)}")
    optimizer = None
    if args.optimizer:
        optimizer = book.optimizer(args.optimizer).name
    selected = []
    for rule in book.rules.values():
        if args.level and rule.level != args.level:
            continue
        if args.rule_id and not (rule.id == args.rule_id or rule.id.startswith(args.rule_id)):
            continue
        if optimizer and optimizer not in rule.prefer and optimizer not in rule.avoid:
            continue
        if args.source and args.source.lower() not in rule.source.lower():
            continue
        selected.append(rule)
    if args.as_json:
        payload = {
            "rulebook": {"version": book.version, "hash": book.hash},
            "rules": [
                r.model_dump(mode="json", exclude_defaults=True) | {"file": book.rule_files[r.id]} for r in selected
            ],
        }
        print(json.dumps(payload, ensure_ascii=False, indent=2))
        return 0
    for rule in selected:
        prefer = ", ".join(rule.prefer) or "-"
        avoid = f"  avoid: {', '.join(rule.avoid)}" if rule.avoid else ""
        print(f"{rule.id:<42} {rule.level:<12} {prefer:<32} {rule.source}{avoid}")
    print(f"{len(selected)} rule(s); rulebook {book.version} {book.hash[:12]}")
    return 0


def _cmd_optimizers(args: argparse.Namespace) -> int:
    from optirec.rules import default_rulebook

    book = default_rulebook()
    families = sorted({o.family for o in book.optimizers.values()})
    if args.family and args.family not in families:
        raise UsageError(f"family: unknown family {args.family!r}; valid values: {', '.join(families)}")
    specs = sorted(
        (o for o in book.optimizers.values() if not args.family or o.family == args.family), key=lambda o: o.name
    )
    if args.as_json:
        print(json.dumps([o.model_dump(mode="json") for o in specs], ensure_ascii=False, indent=2))
        return 0
    for o in specs:
        closure = "closure" if o.needs_closure else ""
        print(f"{o.name:<12} {o.family:<13} state {book.state_multiplier(o.name):>5g}x  {o.class_path:<34} {closure}")
    print(f"{len(specs)} optimizer(s)")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from optirec.service.settings import Settings

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise UsageError(f"{field}: {err['msg']} (set with --{field} or OPTIREC_{field.upper()})") from None
    import uvicorn

    from optirec.service.app import create_app

    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``optirec`` command; returns the exit code."""
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        handlers = {
            "recommend": _cmd_recommend,
            "rules": _cmd_rules,
            "optimizers": _cmd_optimizers,
            "serve": _cmd_serve,
        }
        return handlers[args.command](args)
    except UsageError as exc:
        print(f"optirec: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # domain errors -> one line, exit 2; anything else is a bug and propagates
        from optirec.rules.errors import ProfileError, UnknownNameError

        if isinstance(exc, ProfileError):
            print(f"optirec: error: {exc.first_line()}", file=sys.stderr)
            return EXIT_USAGE
        if isinstance(exc, UnknownNameError):
            print(f"optirec: error: {exc.issue.sentence()}", file=sys.stderr)
            return EXIT_USAGE
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
