"""Recipe benchmark: does the answer for a published job agree with what was published? (figures, not a test)

    .venv/bin/python bench/recipes.py [--rules-dir DIR] [--show N] [--area FILE]

Leave-one-out over the recipe library: each recipe is hidden, its job description alone is asked
(``recommend(recipe.job, exclude_recipes={recipe.id})``), and the answer is scored against what was published,
field by field (optirec.rules.agreement): optimizer family and exact name, lr within 2x and 3x, betas,
momentum, weight decay within 3x, schedule, warmup, clipping. The mean agreement is over every stated
(recipe, field) cell of family, lr 2x, betas, momentum, weight decay, schedule, warmup and clipping.
Also: the same with the recipe in the library (it must be found for its own job), and the seed tables alone
(no recipe library), for comparison.
Targets (leave-one-out): mean agreement >= 0.80, lr within 2x >= 75%.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path
from typing import Any

TARGET_MEAN = 0.80
TARGET_LR = 0.75


def _score(
    book: Any, mode: str, wanted: list[Any]
) -> tuple[dict[str, list[bool]], list[tuple[str, dict[str, bool], Any]]]:
    from optirec.rules import recommend
    from optirec.rules.agreement import agreement

    cells: dict[str, list[bool]] = collections.defaultdict(list)
    rows = []
    for entry in wanted:
        job = entry.recipe.job.profile()
        if mode == "loo":
            rec = recommend(job, rulebook=book, exclude_recipes=frozenset({entry.id}))
        elif mode == "tables":
            rec = recommend(job, rulebook=book, exclude_recipes=frozenset(book.recipes))
        else:
            rec = recommend(job, rulebook=book)
        scored = agreement(rec, entry)
        for field, ok in scored.items():
            cells[field].append(ok)
        rows.append((entry.id, scored, rec))
    return cells, rows


def _mean(cells: dict[str, list[bool]]) -> float:
    from optirec.rules.agreement import MEAN_FIELDS

    flat = [ok for field in MEAN_FIELDS for ok in cells.get(field, [])]
    return sum(flat) / len(flat) if flat else float("nan")


def _share(values: list[bool]) -> str:
    return f"{sum(values) / len(values):6.0%} ({sum(values)}/{len(values)})" if values else "     -"


def _without_a_peer_within_2x(library: list[Any], wanted: list[Any]) -> list[str]:
    """The recipes whose published lr no other recipe of the same architecture, phase and optimizer family
    matches within 2x: hidden, their own job's recipes cannot give it back."""
    out = []
    for e in wanted:
        job = e.recipe.job
        peers = [
            o
            for o in library
            if o.id != e.id
            and o.recipe.job.architecture == job.architecture
            and o.recipe.job.phase == job.phase
            and o.optimizer_family == e.optimizer_family
        ]
        if not any(0.5 <= o.recipe.config.lr / e.recipe.config.lr <= 2 for o in peers):
            out.append(e.id)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rules-dir", type=Path, default=None, help="knowledge base to score (default: bundled)")
    parser.add_argument("--show", type=int, default=0, help="print the N worst leave-one-out recipes (default 0)")
    parser.add_argument("--area", default=None, help="only recipes of this file, e.g. llm.toml")
    args = parser.parse_args()
    if args.show < 0:
        parser.error(f"--show: must be at least 0, got {args.show}")
    from optirec.rules import RulebookError, load_rulebook
    from optirec.rules.agreement import MEAN_FIELDS

    try:
        book = load_rulebook(args.rules_dir)
    except RulebookError as exc:
        parser.error(f"--rules-dir: {exc}")
    wanted = sorted(book.recipes.values(), key=lambda e: e.id)
    files = sorted({e.file for e in wanted})
    if args.area is not None:
        if args.area not in files:
            parser.error(f"--area: unknown recipe file {args.area!r}; valid values: {', '.join(files)}")
        wanted = [e for e in wanted if e.file == args.area]
    if not wanted:
        parser.error("the knowledge base has no recipes")
    t0 = time.perf_counter()
    results = {mode: _score(book, mode, wanted) for mode in ("loo", "self", "tables")}
    seconds = time.perf_counter() - t0
    fields = ["family", "optimizer", "lr_2x", "lr_3x", "betas", "momentum", "weight_decay", "schedule", "warmup",
              "clipping"]  # fmt: skip
    print(f"{len(wanted)} recipes from {len(files)} files; {seconds:.1f} s")
    print(f"{'field':<14} {'leave-one-out':>18} {'recipe in library':>18} {'seed tables only':>18}")
    for field in fields:
        print(
            f"{field:<14} {_share(results['loo'][0].get(field, [])):>18} "
            f"{_share(results['self'][0].get(field, [])):>18} {_share(results['tables'][0].get(field, [])):>18}"
        )
    means = {mode: _mean(results[mode][0]) for mode in results}
    print(f"{'mean':<14} {means['loo']:>18.3f} {means['self']:>18.3f} {means['tables']:>18.3f}")
    print(f"(mean over the stated cells of {', '.join(MEAN_FIELDS)})")
    per_area: dict[str, list[bool]] = collections.defaultdict(list)
    by_id = {e.id: e for e in wanted}
    for rid, scored, _ in results["loo"][1]:
        per_area[by_id[rid].file].extend(ok for f, ok in scored.items() if f in MEAN_FIELDS)
    print("leave-one-out mean by file: " + ", ".join(f"{f} {sum(v) / len(v):.2f}" for f, v in sorted(per_area.items())))
    lr = results["loo"][0]["lr_2x"]
    lr_share = sum(lr) / len(lr)
    print()
    print(f"leave-one-out mean agreement: {means['loo']:.3f} (target >= {TARGET_MEAN})")
    print(f"leave-one-out lr within 2x: {lr_share:.0%} (target >= {TARGET_LR:.0%})")
    lonely = _without_a_peer_within_2x(list(book.recipes.values()), wanted)
    print(
        f"without a peer: {len(lonely)} of {len(wanted)} recipes have no other recipe of the same architecture, phase "
        "and optimizer family with an lr within 2x of theirs (hidden, only the seed tables or an adaptation can give "
        "their lr back)"
    )
    if args.show:
        print()
        rows = sorted(results["loo"][1], key=lambda r: sum(r[1].values()) / len(r[1]))
        for rid, scored, rec in rows[: args.show]:
            missed = ", ".join(f for f, ok in scored.items() if not ok)
            based = rec.recipe.id if rec.recipe else "seed tables"
            cfg = by_id[rid].recipe.config
            got = f"{rec.optimizer.name} lr {rec.optimizer.hyperparameters.get('lr')} {rec.schedule.name}"
            print(
                f"{rid:<44} missed {missed or '-'}; got {got} (from {based}); "
                f"published {cfg.optimizer} lr {cfg.lr} {cfg.schedule}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
