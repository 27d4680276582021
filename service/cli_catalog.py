"""``optirec sources`` and ``optirec recipes``: the bibliography and the recipe library, on the terminal."""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["add_catalog_parsers", "cmd_recipes", "cmd_sources"]


def add_catalog_parsers(sub: Any) -> None:
    """The ``sources`` and ``recipes`` subcommands."""
    src = sub.add_parser("sources", help="list the bibliography: the full reference of every cited source")
    src.add_argument("--cite", metavar="TEXT", help="resolve one citation, e.g. 'external: He et al. 2016 §3.4'")
    src.add_argument("--id", dest="source_id", help="one source by id")
    src.add_argument("--json", dest="as_json", action="store_true", help="print JSON instead of lines")
    rec = sub.add_parser("recipes", help="list the published training recipes (filterable)")
    rec.add_argument("--architecture", help="e.g. convnext, llama, resnet (aliases accepted)")
    rec.add_argument("--domain", help="e.g. computer_vision, llm, speech")
    rec.add_argument("--phase", help="pretraining, fine_tuning or from_scratch")
    rec.add_argument("--json", dest="as_json", action="store_true", help="print JSON instead of a table")


def cmd_sources(args: argparse.Namespace) -> int:
    from optirec.rules import default_rulebook
    from optirec.rules.errors import FieldIssue, ProfileError, suggest

    bib = default_rulebook().bibliography
    if args.source_id is not None:
        if args.source_id not in bib.entries:
            raise ProfileError(
                [
                    FieldIssue(
                        field="id",
                        message=f"unknown source {args.source_id!r}",
                        value=args.source_id,
                        valid=sorted(bib.entries)[:40],
                        suggestion=suggest(args.source_id, bib.entries),
                    )
                ]
            )
        ids: list[str] = [args.source_id]
    elif args.cite is not None:
        resolved = bib.resolve(args.cite)
        if resolved is None:
            part = bib.unresolved_part(args.cite)
            raise ProfileError([FieldIssue(field="cite", message=f"no source matches {part!r}", value=args.cite)])
        ids = list(resolved)
    else:
        ids = list(bib.entries)
    entries = [bib.entries[i] for i in ids]
    if args.as_json:
        out = [e.model_dump(exclude_none=True) | {"reference": e.reference(), "link": e.link} for e in entries]
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return 0
    for e in entries:
        link = f"  <{e.link}>" if e.link else ""
        print(f"{e.id:<28} {e.reference()}{link}")
    print(f"{len(entries)} source(s)")
    return 0


def cmd_recipes(args: argparse.Namespace) -> int:
    from optirec.rules import default_rulebook
    from optirec.rules.recipe_tools import select_recipes

    selected = select_recipes(default_rulebook(), args.architecture, args.domain, args.phase)
    if args.as_json:
        print(json.dumps([e.as_dict() for e in selected], ensure_ascii=False, indent=2))
        return 0
    for e in selected:
        cfg, job = e.recipe.config, e.recipe.job
        print(f"{e.id:<44} {job.phase:<12} {cfg.optimizer:<12} lr {cfg.lr:<9.3g} {e.citation}")
    print(f"{len(selected)} recipe(s)")
    return 0
