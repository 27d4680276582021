"""Recipe operations that need the loaded rulebook or the profile vocabulary.

:func:`select_recipes` picks a rulebook's recipes by architecture, domain and phase (the service's
``GET /recipes`` and ``optirec recipes``); :func:`main` is the recipe-file checker behind

    python -m optirec.rules [--sources EXTRA.toml ...] FILE.toml ...

which checks recipe files against the live vocabulary, catalog and bibliography and prints one line per
problem.  They live here, above :mod:`optirec.rules.recipes`, because the loader and the profile import
that module: kept there, they made an import cycle (loader -> recipes -> profile -> loader).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import RulebookError
from .loader import DATA_DIR, Rulebook, load_rulebook
from .profile import parse_profile
from .recipes import RecipeEntry, load_bibliography, load_recipe_file

__all__ = ["main", "select_recipes"]


def select_recipes(
    book: Rulebook, architecture: str | None = None, domain: str | None = None, phase: str | None = None
) -> list[RecipeEntry]:
    """The recipes of ``book`` for an architecture, domain and phase (aliases accepted; raises ProfileError)."""
    p = parse_profile({"architecture": architecture, "domain": domain, "phase": phase})
    return [
        e
        for e in sorted(book.recipes.values(), key=lambda e: e.id)
        if (p.architecture is None or e.recipe.job.architecture == p.architecture)
        and (p.domain is None or e.recipe.job.domain == p.domain)
        and (p.phase is None or e.recipe.job.phase == p.phase)
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Check recipe files (and extra bibliography files) against the live knowledge base."""
    parser = argparse.ArgumentParser(prog="python -m optirec.rules", description=main.__doc__)
    parser.add_argument("--sources", action="append", default=[], metavar="FILE", help="extra [[source]] file")
    parser.add_argument("files", nargs="+", metavar="FILE")
    args = parser.parse_args(argv)
    book = load_rulebook(DATA_DIR, recipes=False)
    try:
        bibliography = load_bibliography([DATA_DIR / "sources.toml", *map(Path, args.sources)])
    except RulebookError as exc:
        print(f"error: {exc}")
        return 1
    families = {name: spec.family for name, spec in book.optimizers.items()}
    status = 0
    ids: dict[str, str] = {}
    for file in args.files:
        try:
            entries = load_recipe_file(
                Path(file), vocabulary=book.terms, optimizer_families=families, bibliography=bibliography
            )
        except RulebookError as exc:
            print(f"error: {exc}")
            status = 1
            continue
        for e in entries:
            if e.id in ids:
                print(f"error: {file}: recipe {e.id!r} duplicates one in {ids[e.id]}")
                status = 1
            ids[e.id] = file
        print(f"ok: {file}: {len(entries)} recipes")
    return status


if __name__ == "__main__":
    sys.exit(main())
