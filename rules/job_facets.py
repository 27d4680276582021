"""Two facts of a job that change which knowledge applies to it: the backbone a self-supervised method trains
(it sets the architecture family), and a batch smaller than any its nearest recipe's optimizer was measured at
(that recipe is not carried to it)."""

from __future__ import annotations

from .loader import Rulebook
from .recipes import RecipeEntry
from .schema import Term

__all__ = ["backbone_family", "unmeasured_batch"]


def backbone_family(book: Rulebook, arch: Term | None, backbone: str, notes: list[str]) -> str | None:
    """The family a stated backbone gives the job: its own, for a method that trains any encoder it is given
    (vocabulary ``backbone_sets_family``); otherwise the architecture's, with a note that it was read."""
    own = arch.family if arch else None
    encoder = book.terms["architecture"][backbone]
    if arch is not None and arch.backbone_sets_family:
        family = arch.family_with(encoder)
        if family != own:
            notes.append(
                f"backbone {backbone}: {arch.name} trains the encoder it is given, so the rules, laws and recipes "
                f"of {family} models apply, not those of {own}. {arch.description}"
            )
        return family
    if encoder.family != own:
        what = f"{arch.name} is not a method whose family is its encoder's" if arch else "no architecture is given"
        notes.append(
            f"backbone {backbone} is recorded but does not change the answer: {what} (the backbone sets the "
            "family only for self-supervised methods such as moco, simclr, byol and dino)."
        )
    return own


def unmeasured_batch(book: Rulebook, entry: RecipeEntry | None, batch: int | None, notes: list[str]) -> frozenset[str]:
    """The recipes not to carry to this job's batch: those whose optimizer its own paper measured only at larger
    batches (catalog ``measured_batches``), when the nearest recipe is one of them (else none)."""
    if entry is None or batch is None:
        return frozenset()
    spec = book.optimizers[entry.recipe.config.optimizer]
    measured = spec.measured_batches
    if measured is None or batch >= measured.min:
        return frozenset()
    names = {n for n, o in book.optimizers.items() if o.measured_batches and batch < o.measured_batches.min}
    notes.append(
        f"The nearest recipe, {entry.id}, trains {spec.name} at batch {entry.recipe.job.batch()}; {spec.name} was "
        f"measured at batches of {measured.min} and more ({measured.source}), so that recipe is not carried to "
        f"batch {batch}."
    )
    return frozenset(e.id for e in book.recipes.values() if e.recipe.config.optimizer in names)
