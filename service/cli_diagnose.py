"""``optirec diagnose``: loss curves (JSON or CSV on stdin) and/or named symptoms -> the Diagnosis JSON.

    echo '{"train_loss": [2.3, 2.0, 9.1, null], "val_loss": [2.2]}' | optirec diagnose --architecture mlp
    echo '{"train_loss": [2.3, 2.2, 2.1], "steps": [100, 200, 300]}' | optirec diagnose
    echo '[2.3, 2.0, 9.1, null]' | optirec diagnose
    printf 'step,train_loss,val_loss\\n0,2.3,2.4\\n1,2.1,\\n' | optirec diagnose    # CSV is recognised (or --csv)
    optirec diagnose --symptom overfitting --recommendation rec.json

Imported by ``service/cli.py`` only when the command runs; bad input raises the CLI's UsageError
(service/cli_profile.py: one line naming the field, exit code 2).
"""

from __future__ import annotations

import argparse
import csv
import difflib
import io
import json
import math
import sys
from typing import Any

from .cli_profile import UsageError, profile_from_args, read_json_object

__all__ = ["parse_csv", "parse_json", "run"]

_KEYS = ("train_loss", "val_loss", "steps", "val_steps", "symptoms")
#: CSV header spellings -> column
_COLUMNS = {
    "step": "step",
    "steps": "step",
    "iteration": "step",
    "epoch": "step",
    "train_loss": "train_loss",
    "train": "train_loss",
    "loss": "train_loss",
    "training_loss": "train_loss",
    "val_loss": "val_loss",
    "val": "val_loss",
    "valid_loss": "val_loss",
    "validation_loss": "val_loss",
    "eval_loss": "val_loss",
}
_NON_FINITE = {"nan", "-nan", "inf", "+inf", "-inf", "infinity", "-infinity", "null", "none"}


def _reject_constant(name: str) -> Any:
    raise UsageError(f"train_loss: {name} is not a valid JSON number; send null for a non-finite loss")


def parse_json(text: str) -> dict[str, Any]:
    """``{"train_loss": [...], "val_loss": [...], "steps": [...], "val_steps": [...], "symptoms": [...]}`` or a
    bare list (the training loss)."""
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"train_loss: stdin is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
            'give a list of losses or {"train_loss": [...], "val_loss": [...]}, or use --csv'
        ) from None
    except RecursionError:
        raise UsageError("train_loss: stdin nests JSON too deeply") from None
    if isinstance(value, list):
        return {"train_loss": value}
    if not isinstance(value, dict):
        raise UsageError("train_loss: stdin must be a JSON list of losses or an object with train_loss / val_loss")
    unknown = [k for k in value if k not in _KEYS]
    if unknown:
        column = _COLUMNS.get(unknown[0].strip().lower().replace(" ", "_").replace("-", "_"))
        close = [{"step": "steps"}.get(column, column)] if column else difflib.get_close_matches(unknown[0], _KEYS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UsageError(f"{unknown[0]}: unknown field{hint}; valid values: {', '.join(_KEYS)}")
    return value


def _cell(text: str, column: str, row: int) -> float | None:
    t = text.strip()
    if t.lower() in _NON_FINITE:
        return None
    try:
        x = float(t)
    except ValueError:
        raise UsageError(f"{column}: row {row}: {t[:40]!r} is not a number") from None
    return x if math.isfinite(x) else None


def _step(text: str, row: int) -> int:
    t = text.strip()
    try:
        x = float(t)
    except ValueError:
        raise UsageError(f"step: row {row}: {t[:40]!r} is not a step (an integer >= 0)") from None
    if not (math.isfinite(x) and x.is_integer() and x >= 0):
        raise UsageError(f"step: row {row}: {t[:40]!r} is not a step (an integer >= 0)")
    return int(x)


def parse_csv(text: str) -> dict[str, Any]:
    """Columns step?, train_loss, val_loss? with a header, or a single column of training losses.

    Every finding quotes the step column (without one, the data row number, from 0). An empty validation
    cell means no evaluation at that row; an empty training cell on a row with a validation value means no
    training loss was logged there (an evaluation row); any other empty or NaN/inf training cell is a
    non-finite loss (null).
    """
    rows = [r for r in csv.reader(io.StringIO(text)) if any(c.strip() for c in r)]
    if not rows:
        raise UsageError("train_loss: the CSV on stdin is empty")
    header = [c.strip().lower().replace(" ", "_").replace("-", "_") for c in rows[0]]

    def numeric(cell: str) -> bool:
        try:
            float(cell)
        except ValueError:
            return cell.strip().lower() in _NON_FINITE or not cell.strip()
        return True

    if all(numeric(c) for c in rows[0]):
        width = len(rows[0])
        names = {1: ["train_loss"], 2: ["train_loss", "val_loss"], 3: ["step", "train_loss", "val_loss"]}.get(width)
        if names is None:
            raise UsageError(f"train_loss: CSV without a header must have 1-3 columns (got {width})")
        body = rows
        first_row = 1
    else:
        names = []
        for h in header:
            if h not in _COLUMNS:
                raise UsageError(f"{h or 'column'}: unknown CSV column; valid values: step, train_loss, val_loss")
            names.append(_COLUMNS[h])
        if "train_loss" not in names and "val_loss" not in names:
            raise UsageError("train_loss: the CSV has no train_loss or val_loss column")
        body = rows[1:]
        first_row = 2
    for column in ("step", "train_loss", "val_loss"):
        if names.count(column) > 1:
            raise UsageError(f"{column}: the CSV has {names.count(column)} columns for it; keep one")
    train: list[float | None] = []
    val: list[float | None] = []
    steps: list[int] = []
    val_steps: list[int] = []
    for index, (n, row) in enumerate(enumerate(body, start=first_row)):
        if len(row) > len(names):
            raise UsageError(f"{names[-1]}: row {n}: {len(row)} cells for {len(names)} columns")
        cells = dict(zip(names, [*row, *[""] * (len(names) - len(row))], strict=True))
        step = _step(cells["step"], n) if "step" in cells else index
        has_val = "val_loss" in cells and bool(cells["val_loss"].strip())
        if "train_loss" in cells and (cells["train_loss"].strip() or not has_val):
            train.append(_cell(cells["train_loss"], "train_loss", n))
            steps.append(step)
        if has_val:
            val.append(_cell(cells["val_loss"], "val_loss", n))
            val_steps.append(step)
    out: dict[str, Any] = {}
    if train:
        out["train_loss"] = train
        out["steps"] = steps
    if val:
        out["val_loss"] = val
        out["val_steps"] = val_steps
    return out


def _is_csv(text: str, flag: bool) -> bool:
    """CSV when --csv says so or stdin does not open like JSON (``[`` or ``{``): a pasted CSV just works."""
    json_like = text.lstrip()[:1] in ("[", "{")
    if flag and json_like:
        raise UsageError("train_loss: stdin is JSON (it opens with '[' or '{'), not CSV: drop --csv")
    return flag or not json_like


def _read_file_json(path: str, field: str) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise UsageError(f"{field}: cannot read {path!r}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{field}: {path} is not UTF-8 text (byte {exc.start})") from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{field}: {path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None


def run(args: argparse.Namespace) -> int:
    from optirec.rules.diagnose import diagnose

    curves: dict[str, Any] = {}
    if not sys.stdin.isatty() and args.json_file != "-" and args.recommendation != "-":
        try:
            text = sys.stdin.read()
        except UnicodeDecodeError as exc:
            raise UsageError(f"train_loss: stdin is not UTF-8 text (byte {exc.start})") from None
        if text.strip():
            curves = parse_csv(text) if _is_csv(text, args.csv) else parse_json(text)
    symptoms = list(curves.pop("symptoms", None) or [])
    symptoms += [s.strip() for chunk in args.symptom or [] for s in chunk.split(",") if s.strip()]
    if not curves and not symptoms:
        raise UsageError(
            "train_loss: nothing to diagnose: pipe the losses as JSON or CSV (--csv) into stdin, or name --symptom"
        )
    recommendation = None
    if args.recommendation is not None:
        if args.recommendation == "-":
            recommendation = read_json_object(None)
        else:
            recommendation = _read_file_json(args.recommendation, "recommendation")
    profile = profile_from_args(args)
    if args.json_file is not None:
        profile = {**read_json_object(args.json_file), **profile}
    dx = diagnose(
        train_loss=curves.get("train_loss"),
        val_loss=curves.get("val_loss"),
        steps=curves.get("steps"),
        val_steps=curves.get("val_steps"),
        symptoms=symptoms or None,
        recommendation=recommendation,
        profile=profile or None,
    )
    print(json.dumps(dx.model_dump(mode="json"), ensure_ascii=False, indent=None if args.compact else 2))
    return 0
