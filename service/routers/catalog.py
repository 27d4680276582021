"""GET /optimizers, /optimizers/{name}, /rules, /recipes, /sources: the knowledge base, read-only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from optirec.rules.profile import profile_field_options
from optirec.rules.recipe_tools import select_recipes
from optirec.rules.recipes import RecipeEntry
from optirec.rules.schema import OptimizerSpec, Rule

from ..deps import RulebookDep
from ..handlers import error_responses

router = APIRouter(tags=["knowledge base"])

Family = Literal["sgd", "adaptive", "second_order", "wrapper"]
Level = Literal["recipe", "architecture", "domain", "constraint", "family", "data", "goal", "guide", "default"]


class CatalogEntry(OptimizerSpec):
    """A catalog entry with its effective state multiplier (wrappers include their base optimizer)."""

    effective_state_multiplier: float


class SourceOut(BaseModel):
    """One reference of the bibliography, with its full reference line and a link to it."""

    id: str
    kind: str
    title: str
    authors: str | None = None
    year: int | None = None
    date: str | None = None
    venue: str | None = None
    arxiv: str | None = None
    doi: str | None = None
    url: str | None = None
    repository: str | None = None
    path: str | None = None
    cite_as: list[str] = []
    note: str | None = None
    reference: str
    link: str | None = None


class RecipeOut(BaseModel):
    """One published recipe: the job, the config, where each value stands, and its citation."""

    id: str
    title: str
    source: str
    citation: str
    dataset: str | None = None
    file: str
    job: dict[str, Any]
    config: dict[str, Any]
    cite: dict[str, str]
    notes: str | None = None


class RulesPage(BaseModel):
    rulebook: dict[str, str]
    vocabulary: dict[str, list[str]]
    rules: list[dict[str, Any]]


def recipe_out(e: RecipeEntry) -> RecipeOut:
    return RecipeOut(**e.as_dict())


def _entry(book: RulebookDep, spec: OptimizerSpec) -> CatalogEntry:
    return CatalogEntry(**spec.model_dump(), effective_state_multiplier=book.state_multiplier(spec.name))


@router.get(
    "/optimizers",
    response_model=list[CatalogEntry],
    summary="The optimizer catalog, sorted by name",
    responses=error_responses(422),
)
async def list_optimizers(book: RulebookDep, family: Family | None = None) -> list[CatalogEntry]:
    specs = sorted(book.optimizers.values(), key=lambda o: o.name)
    return [_entry(book, o) for o in specs if family is None or o.family == family]


@router.get(
    "/optimizers/{name}",
    response_model=CatalogEntry,
    summary="One optimizer (aliases accepted)",
    responses=error_responses(404, 422, e404="No optimizer of this name; ``issues`` list the valid names"),
)
async def get_optimizer(name: str, book: RulebookDep) -> CatalogEntry:
    return _entry(book, book.optimizer(name))


@router.get(
    "/rules",
    response_model=RulesPage,
    summary="The rules, filterable",
    responses=error_responses(404, 422, e404="?optimizer= names no optimizer; ``issues`` list the valid names"),
)
async def list_rules(
    book: RulebookDep,
    level: Level | None = None,
    id: str | None = Query(default=None, max_length=80, description="Rule id or id prefix."),
    optimizer: str | None = Query(default=None, max_length=40, description="Rules preferring or avoiding it."),
    source: str | None = Query(default=None, max_length=80, description="Text the source contains."),
) -> RulesPage:
    wanted = book.optimizer(optimizer).name if optimizer else None
    selected: list[Rule] = []
    for rule in book.rules.values():
        if level and rule.level != level:
            continue
        if id and not rule.id.startswith(id):
            continue
        if wanted and wanted not in rule.prefer and wanted not in rule.avoid:
            continue
        if source and source.lower() not in rule.source.lower():
            continue
        selected.append(rule)
    return RulesPage(
        rulebook={"version": book.version, "hash": book.hash},
        vocabulary={kind: book.valid(kind) for kind in book.vocabulary},
        rules=[r.model_dump(mode="json", exclude_defaults=True) | {"file": book.rule_files[r.id]} for r in selected],
    )


@router.get(
    "/sources",
    response_model=list[SourceOut],
    summary="The bibliography: the full reference of every source an answer cites",
    responses=error_responses(422),
)
async def list_sources(
    book: RulebookDep,
    cite: str | None = Query(default=None, max_length=400, description="A citation string to resolve."),
) -> list[SourceOut]:
    entries = book.bibliography.entries
    ids = list(entries) if cite is None else list(book.bibliography.resolve(cite) or ())
    return [SourceOut(**entries[i].model_dump(), reference=entries[i].reference(), link=entries[i].link) for i in ids]


def _vocabulary(field: str) -> Callable[[dict[str, Any]], None]:
    """The Profile field's live vocabulary as the query parameter's enum (as the Profile schema states it), put in
    when the schema is generated, so an API description never offers a value the filter refuses."""

    def extra(schema: dict[str, Any]) -> None:
        schema.pop("anyOf", None)  # (a query parameter is never JSON null: absent is the "no filter")
        schema.update({"type": "string", "enum": profile_field_options()[field]})

    return extra


@router.get(
    "/recipes",
    response_model=list[RecipeOut],
    summary="The published training recipes, filterable by architecture, domain or phase",
    responses=error_responses(422),
)
async def list_recipes(
    book: RulebookDep,
    architecture: str | None = Query(default=None, max_length=80, json_schema_extra=_vocabulary("architecture")),
    domain: str | None = Query(default=None, max_length=80, json_schema_extra=_vocabulary("domain")),
    phase: str | None = Query(default=None, max_length=40, json_schema_extra=_vocabulary("phase")),
) -> list[RecipeOut]:
    return [recipe_out(e) for e in select_recipes(book, architecture, domain, phase)]
