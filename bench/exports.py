"""Export table: every job of the shared profile table in every framework format, proven by running the library.

    .venv/bin/python bench/exports.py [--no-run] [--formats hf,lightning,timm,torch,optuna]

For each (profile, format) cell the export is made (``optirec.optimizers.exporters.export``): it either works
(with the notes that name what the library cannot do) or is refused, with the reason.  Then the integration
tests of ``tests/integration`` (one module per library, parametrized over the same profile ids) run the real
libraries on tiny models and check that what each library built equals the answer: the cell's verdict is
``ok`` when every test of that cell passed, ``ok-part`` when some passed and the rest skipped (timm: its
documented signatures checked, the real run skipped where it cannot be installed), ``FAIL`` when one failed,
``skip`` (with the reason) where the library is not installed.  A cell that works but was never checked by
a test is reported as ``unchecked``.
``--no-run`` prints the export outcomes only.  Figures, not a test; prints the table and a summary line.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent
_INTEGRATION = _REPO / "tests" / "integration"
#: format -> the integration test module that runs its library
_MODULES = {
    "hf": "test_hf_export",
    "lightning": "test_lightning_export",
    "timm": "test_timm_export",
    "torch": "test_torch_export",
    "optuna": "test_optuna_export",
}


def _usage(parser: argparse.ArgumentParser, message: str) -> None:
    parser.print_usage(sys.stderr)
    print(f"{parser.prog}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _outcomes(formats: list[str], profile_ids: list[str]) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """(format, profile id) -> [(outcome, message)] of every integration test of that cell."""
    files = [str(_INTEGRATION / f"{_MODULES[f]}.py") for f in formats if (_INTEGRATION / f"{_MODULES[f]}.py").exists()]
    cells: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    if not files:
        return cells
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "junit.xml"
        subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}", *files],
            cwd=_REPO,
            capture_output=True,
            text=True,
            check=False,
        )
        if not report.exists():
            return cells
        tree = ET.parse(report)
    by_module = {v: k for k, v in _MODULES.items()}
    longest_first = sorted(profile_ids, key=len, reverse=True)
    for case in tree.iter("testcase"):
        module = case.get("classname", "").rsplit(".", 1)[-1]
        fmt = by_module.get(module)
        match = re.search(r"\[(.*)\]$", case.get("name", ""))
        if fmt is None or match is None:
            continue
        params = match.group(1)
        pid = next((p for p in longest_first if re.search(rf"(^|-){re.escape(p)}($|-)", params)), None)
        if pid is None:
            continue
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error"):
                outcome, message = "failed", (child.get("message") or "")[:160]
            elif child.tag == "skipped":
                outcome, message = "skipped", (child.get("message") or "")[:160]
        cells[(fmt, pid)].append((outcome, message))
    return cells


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/exports.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--formats", default=",".join(_MODULES), help="comma-separated: " + ", ".join(_MODULES))
    parser.add_argument("--no-run", action="store_true", help="export only; do not run the libraries")
    args = parser.parse_args(argv)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    unknown = [f for f in formats if f not in _MODULES]
    if unknown or not formats:
        _usage(parser, f"--formats: unknown {', '.join(unknown) or '(none)'}; valid values: {', '.join(_MODULES)}")

    sys.path.insert(0, str(_INTEGRATION))
    from export_profiles import PROFILES, recommendation

    from optirec.optimizers.errors import ExportError
    from optirec.optimizers.exporters import export

    cells = {} if args.no_run else _outcomes(formats, list(PROFILES))
    counts: dict[str, int] = defaultdict(int)
    print(f"{'profile':26} {'format':10} {'export':8} {'checked':10} detail")
    for pid in PROFILES:
        rec = recommendation(pid)
        for fmt in formats:
            notes: list[str] = []
            try:
                export(rec, fmt, notes)
                made, detail = "works", f"{len(notes)} notes" + (f": {notes[0][:90]}" if notes else "")
            except ExportError as exc:
                made, detail = "refused", str(exc).split(" cannot express ", 1)[-1][:120]
            results = cells.get((fmt, pid), [])
            if args.no_run:
                checked = "-"
            elif any(o == "failed" for o, _ in results):
                checked = "FAIL"
                detail = next(m for o, m in results if o == "failed")
            elif results and all(o == "skipped" for o, _ in results):
                checked = "skip"
                detail = results[0][1]
            elif any(o == "passed" for o, _ in results):
                checked = "ok"
                skipped = [m for o, m in results if o == "skipped"]
                if skipped:  # e.g. timm: checked against its documented signatures, the real run skipped
                    checked = "ok-part"
                    detail = f"{detail} | skipped: {skipped[0][:70]}"
            else:
                checked = "unchecked"
            counts[made] += 1
            counts[checked] += 1
            print(f"{pid:26} {fmt:10} {made:8} {checked:10} {detail}")
    total = len(PROFILES) * len(formats)
    print(
        f"\n{total} cells ({len(PROFILES)} profiles x {len(formats)} formats): {counts['works']} work, "
        f"{counts['refused']} refused with the reason"
        + (
            ""
            if args.no_run
            else f"; checked by the library: {counts['ok']} ok, {counts['ok-part']} ok with some checks skipped, "
            f"{counts['FAIL']} failed, {counts['skip']} skipped, {counts['unchecked']} unchecked"
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
