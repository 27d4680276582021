"""The ``optirec`` command line.

    optirec recommend --architecture resnet --batch-size 1024
    echo '{"domain": "nlp", "goal": "fine_tuning"}' | optirec recommend
    optirec recommend --architecture bert --goal fine_tuning --format hf     # or lightning, timm, torch, optuna
    optirec rules --level architecture
    optirec optimizers --family adaptive
    echo '[2.3, 2.0, 9.1, null]' | optirec diagnose --architecture mlp   # or --csv, --symptom NAME
    optirec trial --architecture resnet --steps 100                # a trial run here, progress bar on stderr
    optirec trial --architecture resnet --url http://127.0.0.1:8000 # the same on a running service
    optirec recommend --architecture bert --url http://127.0.0.1:8000

Bad input exits with code 2 and one line naming the field and the valid values.
Only the standard library and the rules side are imported here, so the command starts fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from .cli_catalog import add_catalog_parsers, cmd_recipes, cmd_sources
from .cli_help import HelpFormatter, one_of, unknown_flag, valid_values
from .cli_profile import UsageError, add_profile_arguments, number, profile_from_args, read_json_object
from .cli_trial import client, cmd_trial

__all__ = ["main"]

EXIT_USAGE = 2
#: ``optirec recommend --format`` values: optirec.optimizers.exporters.formats.FORMATS, repeated so that the CLI
#: imports only the standard library at start-up (tests/optimizers/test_exporters.py keeps the two equal)
_EXPORT_FORMATS = ("json", "hf", "lightning", "timm", "torch", "optuna")


#: exit status after the reader of stdout went away (``optirec rules | head``): 128 + SIGPIPE, as a shell tool
EXIT_BROKEN_PIPE = 141


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (UsageError), valid values in --help, and "did you mean" for flags."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        # argparse prefixes a type error with "argument --flag: "; our converters already name the field
        head, sep, rest = message.partition(": ")
        if sep and head.startswith("argument ") and rest.split(":", 1)[0].replace("_", "-") in head:
            message = rest
        raise UsageError(message)

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:  # type: ignore[override]
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            command = getattr(parsed, "command", None)
            sub = self._subcommands().get(command) if command else None
            raise UsageError(unknown_flag(sub or self, extras, command or "optirec"))
        return parsed

    def _subcommands(self) -> dict[str, argparse.ArgumentParser]:
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                return dict(action.choices)
        return {}


def _levels() -> list[str]:
    from optirec.rules.loader import LEVEL_WEIGHTS

    return list(LEVEL_WEIGHTS)


def _families() -> list[str]:
    from optirec.rules import default_rulebook

    return sorted({o.family for o in default_rulebook().optimizers.values()})


def _optimizer_names() -> list[str]:
    from optirec.rules import default_rulebook

    return sorted(default_rulebook().optimizers)


def _workloads() -> list[str]:
    from optirec.service.trials.models import WORKLOAD_NAMES

    return list(WORKLOAD_NAMES)


def _devices() -> list[str]:
    from optirec.service.trials.models import DEVICES

    return list(DEVICES)


def _symptoms() -> list[str]:
    from optirec.rules import default_rulebook

    return sorted(default_rulebook().symptoms)


def _build_parser() -> _Parser:
    parser = _Parser(prog="optirec", description="Optimizer recommendations for deep-learning training jobs.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    rec = sub.add_parser("recommend", help="recommend an optimizer for a profile (flags or JSON on stdin)")
    add_profile_arguments(rec)
    rec.add_argument(
        "--format",
        dest="fmt",
        metavar="FORMAT",
        default="json",
        help="output format: json (the Recommendation, the default), hf (TrainingArguments kwargs), lightning "
        "(LightningModule methods), timm (create_optimizer_v2, create_scheduler_v2 and train.py kwargs), "
        "torch (PyTorch code), optuna (search space)",
    )
    rec.add_argument("--compact", action="store_true", help="one-line JSON")
    rec.add_argument("--url", help="ask the optirec service at URL instead of the embedded engine")

    trial = sub.add_parser(
        "trial", help="prove a recommendation on a short proxy training run (here, or on a service with --url)"
    )
    add_profile_arguments(trial)
    trial.add_argument("--recommendation", metavar="FILE", help="run this Recommendation JSON ('-' = stdin)")
    valid_values(
        trial.add_argument("--workload", default="auto", help="the proxy workload: auto matches the profile"),
        _workloads,
    )
    trial.add_argument("--steps", type=number(int, "--steps"), default=200, help="optimizer steps (default 200)")
    valid_values(
        trial.add_argument("--device", default="auto", help="where to train (auto: CUDA when there)"), _devices
    )
    trial.add_argument("--seed", type=number(int, "--seed"), default=0, help="random seed (default 0)")
    trial.add_argument("--size", type=number(int, "--size"), default=1, help="workload scale (default 1)")
    trial.add_argument(
        "--race", type=number(int, "--race"), default=0, help="0..4: race the recommendation and its alternatives"
    )
    trial.add_argument(
        "--validate",
        action="store_true",
        help="search for a better config (optirec.validate: about 4 runs of --steps) instead of one run",
    )
    trial.add_argument("--url", help="submit to the optirec service at URL (OPTIREC_API_KEY is sent when set)")
    trial.add_argument("--timeout", type=number(float, "--timeout"), default=None, help="give up after S seconds")
    trial.add_argument("--compact", action="store_true", help="one-line JSON")

    dx = sub.add_parser(
        "diagnose", help="diagnose a loss curve (JSON or --csv on stdin) or named symptoms; prints the Diagnosis"
    )
    add_profile_arguments(dx)
    dx.add_argument(
        "--csv",
        action="store_true",
        help="stdin is CSV: step?,train_loss,val_loss with a header (CSV on stdin is also recognised without it)",
    )
    valid_values(
        dx.add_argument("--symptom", action="append", metavar="NAME", help="a symptom by name (repeatable)"),
        _symptoms,
    )
    dx.add_argument("--recommendation", metavar="FILE", help="the Recommendation JSON the job trained with")
    dx.add_argument("--compact", action="store_true", help="one-line JSON")

    rules = sub.add_parser("rules", help="list the knowledge base's rules (filterable)")
    valid_values(rules.add_argument("--level", help="rules of one level"), _levels)
    rules.add_argument("--id", dest="rule_id", help="rule id or id prefix, e.g. architecture.resnet or data.")
    valid_values(
        rules.add_argument("--optimizer", help="rules that prefer or avoid this optimizer (aliases accepted)"),
        _optimizer_names,
    )
    rules.add_argument("--source", help="text the rule's source contains, e.g. '§2.4'")
    rules.add_argument("--json", dest="as_json", action="store_true", help="print JSON instead of a table")

    serve = sub.add_parser("serve", help="start the HTTP service (settings also from OPTIREC_* variables)")
    serve.add_argument("--host", default=None, help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=number(int, "--port"), default=None, help="port (default 8000)")

    api = sub.add_parser("openapi", help="print or write the service's OpenAPI document as YAML (openapi.yaml)")
    api.add_argument("--output", metavar="FILE", help="write to FILE instead of stdout")
    api.add_argument(
        "--check", action="store_true", help="exit 1 when FILE (default openapi.yaml) differs from the app's document"
    )

    add_catalog_parsers(sub)

    opts = sub.add_parser("optimizers", help="list the optimizer catalog")
    valid_values(opts.add_argument("--family", help="optimizers of one family"), _families)
    opts.add_argument("--json", dest="as_json", action="store_true", help="print JSON instead of a table")
    return parser


def _cmd_recommend(args: argparse.Namespace) -> int:
    from optirec.rules import recommend

    if args.fmt not in _EXPORT_FORMATS:
        one_of("format", args.fmt, _EXPORT_FORMATS, "format")

    flags = profile_from_args(args)
    if args.json_file is not None:
        profile = {**read_json_object(args.json_file), **flags}
    elif not flags and not sys.stdin.isatty():
        profile = read_json_object(None)
    else:
        profile = flags
    rec = _remote_recommend(args.url, profile) if args.url else recommend(profile)
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
    if args.level:
        one_of("level", args.level, list(LEVEL_WEIGHTS), "level")
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
    if args.family:
        one_of("family", args.family, families, "family")
    specs = sorted(
        (o for o in book.optimizers.values() if not args.family or o.family == args.family), key=lambda o: o.name
    )
    if args.as_json:
        print(json.dumps([o.model_dump(mode="json") for o in specs], ensure_ascii=False, indent=2))
        return 0
    name_width = max((len(o.name) for o in specs), default=0)
    path_width = max((len(o.class_path) for o in specs), default=0)
    for o in specs:
        needs = "closure" if o.needs_closure else "eval mode" if o.needs_eval_mode else ""
        print(
            f"{o.name:<{name_width}} {o.family:<13} state {book.state_multiplier(o.name):>5g}x  "
            f"{o.class_path:<{path_width}} {needs}".rstrip()
        )
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
    from optirec.service.trials.store import StoreError, TrialStore

    try:
        TrialStore(settings.trial_store).close()  # a bad path or a corrupt file: one line now, not a traceback
    except StoreError as exc:
        raise UsageError(f"trial_store: {exc} (set with OPTIREC_TRIAL_STORE)") from None
    from optirec.service.server import serve

    serve(settings)  # uvicorn with the header limit and read deadlines of Settings (service/server.py)
    return 0


def _cmd_openapi(args: argparse.Namespace) -> int:
    from optirec.service.openapi import render_openapi

    text = render_openapi()
    if args.check:
        path = args.output or "openapi.yaml"
        try:
            with open(path, encoding="utf-8") as fh:
                current = fh.read()
        except OSError as exc:
            raise UsageError(f"output: cannot read {path!r}: {exc.strerror}") from None
        if current != text:
            print(f"optirec: {path} is out of date with the app; run `make openapi`", file=sys.stderr)
            return 1
        print(f"{path} is up to date")
        return 0
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        raise UsageError(f"output: cannot write {args.output!r}: {exc.strerror}") from None
    return 0


def _remote_recommend(url: str, profile: dict[str, Any]) -> Any:
    with client(url) as remote:
        return remote.recommend(profile)


def _cmd_diagnose(args: argparse.Namespace) -> int:
    from .cli_diagnose import run

    return run(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``optirec`` command; returns the exit code.

    When the reader of stdout goes away (``optirec rules | head``) the command stops quietly with
    EXIT_BROKEN_PIPE, as the Python documentation advises ("Note on SIGPIPE", the signal module): stdout is
    pointed at devnull so that the interpreter's final flush cannot raise again."""
    try:
        code = _main(argv)
        sys.stdout.flush()  # a broken pipe surfaces here for output still in the buffer
        return code
    except BrokenPipeError:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError):  # stdout is not a file (an embedding, a test's capture)
            pass
        return EXIT_BROKEN_PIPE


def _main(argv: Sequence[str] | None) -> int:
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
            "openapi": _cmd_openapi,
            "trial": cmd_trial,
            "diagnose": _cmd_diagnose,
            "sources": cmd_sources,
            "recipes": cmd_recipes,
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
        from optirec.service.errors import ServiceError

        if isinstance(exc, ServiceError):  # the service refused or could not be reached
            print(f"optirec: error: {exc.message if exc.status == 0 else exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
