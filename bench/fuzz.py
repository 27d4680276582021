"""API fuzzing benchmark: schemathesis with every check and every phase, stateful included, against a real server.

    .venv/bin/python bench/fuzz.py [--max-examples N] [--seed N] [--workers N] [--max-time S] [--paths RE]
                                      [--trials-run]

Starts ``optirec serve`` on a free 127.0.0.1 port (bench/service.py's ``running_server``: temporary store) with
a large trial queue, then runs the ``schemathesis run`` CLI on the committed ``openapi.yaml`` with
``--checks all`` (positive-data acceptance, negative-data rejection, response schema, status codes, headers,
use-after-free, resource availability, ignored auth, ...) and ``--phases examples,coverage,fuzzing,stateful``,
``--max-examples`` per operation and phase, a request timeout above the long-poll cap (``?wait=`` is at most
30 s), and a fixed seed. By default the server runs no trial worker (``OPTIREC_TRIAL_CONCURRENCY=0``: trials
are validated, stored and queued, never trained: the fuzzing budget goes to the API, not to torch);
``--trials-run`` gives it one worker instead.

Prints the cases generated and the failures, per check and operation, with one example each, and sorts them
into failures and the documented behaviours that schemathesis's checks read as bugs:

- ``use_after_free`` after ``DELETE /trials/{id}``: a cancel keeps the trial readable (its status says
  cancelled) on purpose: the trial and its result are never lost.
- a long-poll (``GET /trials/{id}?wait=``) answering after schemathesis's own time budget: the wait is the
  client's request.
- ``POST /trials`` refusing ``"device": "cuda"`` on a server without CUDA (the committed schema is the same
  for every machine; the 422 names the devices this server has).
- ``POST /recommend?format=`` refusing a framework that cannot express the answer (which optimizer a profile
  gets is the engine's to say, not the schema's; the 422 names the formats that can).
- ``POST /diagnose`` refusing ``steps``/``val_steps`` whose count differs from their curve's points: JSON Schema
  cannot relate two arrays' lengths (the schema states everything else: non-empty curves, steps only with their
  curve, the symptom names).

Figures, not a test (tests/service/test_fuzz.py is the fuzzing test of the suite); the exit code is 0 unless the
server or schemathesis cannot be started.
"""

from __future__ import annotations

import argparse
import base64
import functools
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
SPEC = HERE.parent / "openapi.yaml"
#: above the long-poll cap (service/routers/trials.py MAX_WAIT = 30 s)
REQUEST_TIMEOUT = 45
PHASES = "examples,coverage,fuzzing,stateful"
#: (check, operation) -> ((text the answer contains, "" for any; why it is documented behaviour, not a bug), ...)
DOCUMENTED: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {
    ("use_after_free", "DELETE /trials/{trial_id}"): (("", "a cancelled trial stays readable (nothing is lost)"),),
    ("use_after_free", "GET /trials/{trial_id}"): (('"status":"cancelled"', "a cancelled trial stays readable"),),
    ("use_after_free", "GET /trials/{trial_id}/events"): (('"status":"cancelled"', "so does its event stream"),),
    ("max_response_time", "GET /trials/{trial_id}"): (("", "the client asked for a long-poll of up to 30 s"),),
    ("positive_data_acceptance", "POST /trials"): (
        (
            "trial workers have no CUDA device",
            "device cuda on a server without CUDA: the schema lists what a server may take, the 422 names this one's",
        ),
        (
            "the trial would need about",
            "a trial whose estimated peak memory passes this machine's trial memory limit (issue 22 item 5; "
            "the size field's description says so, the 422 names the estimate and the limit)",
        ),
    ),
    ("positive_data_acceptance", "POST /recommend"): (
        (
            "cannot express",
            "?format= for a framework that cannot express this answer (the 422 names the formats that can)",
        ),
    ),
    ("positive_data_acceptance", "POST /diagnose"): (
        (
            "give one step per point",
            "steps/val_steps need one step per point of their curve, a rule JSON Schema cannot state",
        ),
    ),
}


def documented_reason(key: tuple[str, str], example: str) -> str | None:
    """Why a failing example of ``key`` is documented behaviour, or None when it is a failure."""
    for marker, why in DOCUMENTED.get(key, ()):
        if marker in example:
            return why
    return None


def split_documented(
    failures: dict[tuple[str, str], list[str]],
) -> tuple[dict[tuple[str, str], list[str]], dict[tuple[str, str], list[str]]]:
    """Failures into (failing, documented): a documented pair's examples count only when they show its text."""
    failing: dict[tuple[str, str], list[str]] = defaultdict(list)
    documented: dict[tuple[str, str], list[str]] = defaultdict(list)
    for key, examples in failures.items():
        for example in examples:
            (failing if documented_reason(key, example) is None else documented)[key].append(example)
    return dict(failing), dict(documented)


@functools.cache
def _bench_service() -> ModuleType:
    """bench/service.py as a module (its name would clash with the repository's ``service`` package)."""
    spec = importlib.util.spec_from_file_location("optirec_bench_service", HERE / "service.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _schemathesis() -> str:
    found = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or shutil.which("schemathesis")
    if found is None:
        sys.exit("bench/fuzz.py: schemathesis is not installed (it is a test extra: make test installs it)")
    return found


def _body(interaction: dict[str, Any]) -> str:
    content = (interaction.get("response") or {}).get("content") or {}
    raw = content.get("$base64")
    text = base64.b64decode(raw).decode("utf-8", "replace") if raw else str(content.get("text", ""))
    return text[:300]


def summarize(ndjson: Path) -> dict[str, Any]:
    """Cases and failed checks from a schemathesis NDJSON report (one event per line)."""
    cases: set[str] = set()
    by_phase: Counter[str] = Counter()
    failures: dict[tuple[str, str], list[str]] = defaultdict(list)
    errors: list[str] = []
    for line in ndjson.read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        kind, value = next(iter(event.items()))
        if kind == "NonFatalError":
            errors.append(f"{value.get('label')} [{value.get('phase')}]: {value['value'].get('message', '')[:200]}")
        if kind != "ScenarioFinished":
            continue
        recorder = value["recorder"]
        for case_id in recorder.get("cases", {}):
            if case_id not in cases:
                cases.add(case_id)
                by_phase[value.get("phase", "?")] += 1
        for case_id, checks in recorder.get("checks", {}).items():
            case = recorder["cases"].get(case_id, {}).get("value", {})
            label = f"{case.get('method', '?')} {case.get('path', recorder.get('label', '?'))}"
            for check in checks:
                if check["status"] == "failure":
                    example = _body(recorder.get("interactions", {}).get(case_id, {}))
                    failures[(check["name"], label)].append(example)
    return {"cases": len(cases), "by_phase": dict(by_phase), "failures": failures, "errors": errors}


def run(args: argparse.Namespace) -> tuple[dict[str, Any], float, int]:
    bench = _bench_service()
    port = bench.free_port()
    env = {"OPTIREC_TRIAL_QUEUE_SIZE": "10000", "OPTIREC_TRIAL_CONCURRENCY": "1" if args.trials_run else "0"}
    with tempfile.TemporaryDirectory(prefix="optirec-fuzz-") as tmp, bench.running_server(port, tmp, env):
        report_dir = Path(tmp) / "report"
        cmd = [
            _schemathesis(),
            "run",
            str(SPEC),
            "--url",
            f"http://127.0.0.1:{port}",
            "--checks",
            "all",
            "--phases",
            PHASES,
            "--max-examples",
            str(args.max_examples),
            "--request-timeout",
            str(REQUEST_TIMEOUT),
            "--seed",
            str(args.seed),
            "--report",
            "ndjson",
            "--report-dir",
            str(report_dir),
            "--no-color",
            "--workers",
            str(args.workers),
        ]
        if args.paths:
            cmd += ["--include-path-regex", args.paths]
        if args.max_time:
            cmd += ["--max-time", str(args.max_time)]
        started = time.perf_counter()
        try:
            done = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=args.timeout, check=False)
            code = done.returncode
        except subprocess.TimeoutExpired:  # the cases run so far are in the report (written as they finish)
            print(f"bench/fuzz.py: schemathesis stopped after --timeout {args.timeout:g} s", file=sys.stderr)
            code = -1
        elapsed = time.perf_counter() - started
        reports = sorted(report_dir.glob("*.ndjson"))
        if not reports:
            sys.exit(f"bench/fuzz.py: schemathesis wrote no report (exit {code})")
        return summarize(reports[-1]), elapsed, code


def report(summary: dict[str, Any], elapsed: float, code: int, args: argparse.Namespace) -> None:
    phases = ", ".join(f"{k}: {v}" for k, v in sorted(summary["by_phase"].items()))
    print(
        f"schemathesis --checks all --phases {PHASES} --max-examples {args.max_examples} --seed {args.seed} "
        f"--workers {args.workers}{f' --max-time {args.max_time}' if args.max_time else ''} on "
        f"openapi.yaml against one local server ({'1 trial worker' if args.trials_run else 'trials queued only'})"
    )
    print(f"cases: {summary['cases']:,} ({phases}) in {elapsed:.0f} s; schemathesis exit code {code}")
    failing, documented = split_documented(summary["failures"])
    server_errors = sum(len(v) for (check, _), v in failing.items() if check == "not_a_server_error")
    print(f"server errors (5xx): {server_errors}")
    print(f"failed checks: {sum(len(v) for v in failing.values())} in {len(failing)} (check, operation) pairs")
    for (check, label), examples in sorted(failing.items()):
        print(f"  FAIL {check} on {label}: {len(examples)} case(s); e.g. {examples[0]!r}")
    for (check, label), examples in sorted(documented.items()):
        reasons = Counter(documented_reason((check, label), example) for example in examples)
        for why, count in sorted(reasons.items(), key=lambda item: str(item[0])):
            print(f"  documented {check} on {label}: {count} case(s): {why}")
    for error in summary["errors"][:10]:
        print(f"  error (no response): {error}")
    print(f"errors without a response: {len(summary['errors'])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-examples", type=int, default=300, help="examples per operation and phase (300)")
    parser.add_argument("--seed", type=int, default=0, help="schemathesis seed (default 0)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="longest run in seconds (default 3600)")
    parser.add_argument("--trials-run", action="store_true", help="one real trial worker instead of none")
    parser.add_argument(
        "--max-time",
        type=int,
        default=0,
        help="schemathesis's time budget in seconds: the fuzzing and stateful phases keep drawing new cases until "
        "it is spent, and it reserves a share for the stateful phase (default 0: --max-examples alone bounds the run)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=8,
        help="schemathesis workers, operations tested at once (default 8: the long-polls wait side by side)",
    )
    parser.add_argument(
        "--paths", default="", help="only the operations whose path matches this regular expression (default: all)"
    )
    args = parser.parse_args()
    if args.max_examples < 1:
        parser.error(f"--max-examples must be at least 1, got {args.max_examples}")
    if not 1 <= args.workers <= 64:
        parser.error(f"--workers must be from 1 to 64, got {args.workers}")
    if args.max_time < 0:
        parser.error(f"--max-time must be 0 (none) or a number of seconds, got {args.max_time}")
    if args.max_time and args.timeout <= args.max_time:
        parser.error(f"--timeout ({args.timeout:g} s) must be longer than --max-time ({args.max_time} s)")
    summary, elapsed, code = run(args)
    report(summary, elapsed, code, args)


if __name__ == "__main__":
    main()
