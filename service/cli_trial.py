"""``optirec trial``: a trial run here or on a service (``--url``), its progress bar and its summary line.

The JSON result goes to stdout (parseable when piped); the progress bar and one summary line (final loss and
metric, steps/s, device; a race's ranking; a search's winner and cost) go to stderr. Only the standard
library is imported at module level: torch and the service's models are imported when a trial runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from .cli_profile import UsageError, profile_from_args, read_json_object

__all__ = ["ProgressBar", "client", "cmd_trial", "trial_body", "trial_summary"]


def client(url: str) -> Any:
    """The HTTP client of the service at ``url`` (OPTIREC_API_KEY sent when set)."""
    from optirec.service.client import OptirecClient

    return OptirecClient(url, api_key=os.environ.get("OPTIREC_API_KEY") or None)


class ProgressBar:
    """A one-line text progress bar on stderr (redrawn in place on a terminal, a line every few seconds otherwise)."""

    WIDTH = 30

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last = 0.0
        self._drawn = False

    def update(self, done: int, total: int, loss: float | None = None, label: str = "running") -> None:
        now = time.monotonic()
        if done < total and now - self._last < (0.1 if self.tty else 2.0):
            return
        self._last = now
        total = max(total, 1)
        filled = min(self.WIDTH, self.WIDTH * done // total)
        text = f"{label:<9} [{'#' * filled}{'.' * (self.WIDTH - filled)}] {done}/{total}"
        if loss is not None:
            text += f"  loss {loss:.4g}"
        self.stream.write(f"\r{text}\x1b[K" if self.tty else text + "\n")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn and self.tty:
            self.stream.write("\n")
            self.stream.flush()
        self._drawn = False


def _g(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def trial_summary(result: dict[str, Any]) -> str:
    """One line on what a trial measured (stderr after the JSON): a run, a race's ranking or a search's winner."""
    if "ranked" in result:
        ranked = "; ".join(
            f"{e['rank']}. {e['optimizer']} (lr {_g(e['hyperparameters'].get('lr'))}): mean final loss "
            f"{_g(e['mean_final_loss'])}" + (f", {e['diverged_runs']} diverged" if e["diverged_runs"] else "")
            for e in result["ranked"]
        )
        return f"optirec: race: {ranked or 'no candidate finished'}"
    if "validation" in result:
        report = result["validation"]
        if report is None:
            return f"optirec: validate: no result ({'; '.join(result.get('warnings') or ['stopped'])})"
        cost = report["cost"]
        return (
            f"optirec: validate: {report['verdict']}: winner {report['winner']} at lr {_g(report['validated_lr'])} "
            f"(recommended {_g(report['recommended_lr'])}); {len(report['candidates'])} candidates, "
            f"{cost['spent_steps']} steps = {cost['full_runs']:.2f} runs of {report['steps']}"
        )
    metric = result.get("final_metric")
    held = f", {result['metric_name']} {_g(metric)}" if metric is not None else ""
    how = result["status"] + (f" at step {result['diverged_at']}" if result.get("diverged_at") is not None else "")
    return (
        f"optirec: trial {how}: {result['optimizer']} on {result['workload'].get('name', '?')}, "
        f"{result['steps_done']}/{result['steps_requested']} steps on {result['device']} in "
        f"{result['wall_seconds']:.1f} s ({result['steps_per_second']:.1f} steps/s); final loss "
        f"{_g(result['final_loss'])}{held}"
    )


def trial_body(args: argparse.Namespace) -> dict[str, Any]:
    flags = profile_from_args(args)
    body: dict[str, Any] = {
        "workload": args.workload,
        "steps": args.steps,
        "device": args.device,
        "seed": args.seed,
        "size": args.size,
        "race": args.race,
    }
    if args.validate:
        body["validate"] = True
    if args.recommendation is not None:
        if flags or args.json_file is not None:
            raise UsageError("recommendation: give a profile (flags or --json) or --recommendation, not both")
        body["recommendation"] = read_json_object(args.recommendation)
    elif args.json_file is not None:
        body["profile"] = {**read_json_object(args.json_file), **flags}
    else:
        body["profile"] = flags
    return body


def cmd_trial(args: argparse.Namespace) -> int:
    body = trial_body(args)
    indent = None if args.compact else 2
    if args.url:
        return _remote_trial(args, body, indent)
    from pydantic import ValidationError

    from optirec.rules import recommend
    from optirec.rules.errors import ProfileError
    from optirec.service.settings import Settings
    from optirec.service.trials.models import TrialRequest, request_issues

    try:
        request = TrialRequest.model_validate(body)
    except ValidationError as exc:
        raise ProfileError(request_issues(exc.errors(include_url=False))) from None
    settings = Settings()
    for field, value, most in (
        ("steps", request.steps, settings.trial_max_steps),
        ("size", request.size, settings.trial_max_size),
    ):
        if value > most:
            raise UsageError(f"{field}: must be at most {most} (OPTIREC_TRIAL_MAX_{field.upper()}), got {value}")
    rec = request.recommendation if request.recommendation is not None else recommend(request.profile)
    job = {
        **body,
        "recommendation": rec.model_dump(mode="json"),
        "budget": {
            "max_steps": settings.trial_max_steps,
            "max_seconds": settings.trial_max_seconds,
            "max_parameters": settings.trial_max_parameters,
        },
    }
    job.pop("profile", None)
    from optirec.optimizers.errors import BuildError
    from optirec.service.trials.jobs import execute

    bar = ProgressBar()
    try:
        result, _ = execute(job, lambda done, total, loss: bar.update(done, total, loss), lambda: False)
    except BuildError as exc:
        bar.close()
        raise UsageError(str(exc)) from None
    except KeyboardInterrupt:
        bar.close()
        print("optirec: trial interrupted", file=sys.stderr)
        return 130
    bar.close()
    print(json.dumps(result, ensure_ascii=False, indent=indent))
    sys.stdout.flush()
    print(trial_summary(result), file=sys.stderr)
    return 0


def _remote_trial(args: argparse.Namespace, body: dict[str, Any], indent: int | None) -> int:
    bar = ProgressBar()
    with client(args.url) as remote:
        status = remote.submit_trial(body)
        print(f"optirec: trial {status.id} queued ({args.url.rstrip('/')}/trials/{status.id})", file=sys.stderr)

        def show(current: Any) -> None:
            bar.update(current.progress.steps_done, current.progress.steps_total, current.progress.loss, current.status)

        try:
            final = remote.wait_trial(status.id, timeout=args.timeout, on_progress=show)
        except KeyboardInterrupt:
            bar.close()
            remote.cancel_trial(status.id)
            print(f"optirec: trial {status.id} cancelled", file=sys.stderr)
            return 130
        finally:
            bar.close()
    if final.result is not None:
        result = final.result.model_dump(mode="json")
        print(json.dumps(result, ensure_ascii=False, indent=indent))
        sys.stdout.flush()
        print(trial_summary(result), file=sys.stderr)
    if final.status != "succeeded":
        print(f"optirec: error: trial {final.id} {final.status}: {final.error or 'no result'}", file=sys.stderr)
        return 1
    return 0
