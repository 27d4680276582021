"""Proxy workloads: small, seeded training problems a trial runs a recommended optimizer on.

    from optirec.optimizers.workloads import make_workload, workload_for
    workload = make_workload(workload_for(recommendation), size=1, seed=0, traits=["noisy"])
    model = workload.build_model()
    loss = workload.loss(model, workload.train_batch(0))

One workload per model family; each stands in for the Profile architectures in its
``architectures`` and the domains in its ``domains``. Everything here imports torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from optirec.rules import Profile, Recommendation, parse_profile
from optirec.rules.errors import suggest

from ..errors import BuildError
from .base import TRAITS, Batch, Evaluation, Workload
from .cnn import ResidualCNN
from .dqn import ValueLearning
from .gan import MixtureGAN
from .lm import CharLM
from .mlp import TabularMLP
from .recommender import EmbeddingRecommender
from .rnn import SequenceRNN
from .unet import TinyUNet
from .vit import TinyViT

__all__ = [
    "ARCHITECTURE_WORKLOADS",
    "DEFAULT_WORKLOAD",
    "DOMAIN_WORKLOADS",
    "TRAITS",
    "WORKLOADS",
    "Batch",
    "CharLM",
    "EmbeddingRecommender",
    "Evaluation",
    "MixtureGAN",
    "ResidualCNN",
    "SequenceRNN",
    "TabularMLP",
    "TinyUNet",
    "TinyViT",
    "ValueLearning",
    "Workload",
    "make_workload",
    "workload_for",
    "workload_kwargs_for",
]

_CLASSES: tuple[type[Workload], ...] = (
    ResidualCNN,
    TinyViT,
    CharLM,
    SequenceRNN,
    TabularMLP,
    EmbeddingRecommender,
    MixtureGAN,
    TinyUNet,
    ValueLearning,
)

#: Workload name -> class, sorted by name.
WORKLOADS: dict[str, type[Workload]] = {cls.name: cls for cls in sorted(_CLASSES, key=lambda c: c.name)}

#: Profile architecture -> workload name (from each workload's ``architectures``).
ARCHITECTURE_WORKLOADS: dict[str, str] = {arch: cls.name for cls in _CLASSES for arch in cls.architectures}

#: Profile domain -> the workload that stands in for it when no architecture is given.
DOMAIN_WORKLOADS: dict[str, str] = {
    "computer_vision": "cnn",
    "nlp": "transformer_lm",
    "llm": "transformer_lm",
    "time_series": "rnn",
    "tabular": "mlp",
    "recommender": "recommender",
    "reinforcement_learning": "dqn",
    "speech": "transformer_lm",
    "generative": "gan",
}

#: The workload when the profile names neither an architecture nor a domain.
DEFAULT_WORKLOAD = "mlp"


def make_workload(
    name: str,
    *,
    size: int = 1,
    seed: int = 0,
    traits: Sequence[str] = (),
    device: str | torch.device = "cpu",
    **kwargs: Any,
) -> Workload:
    """A workload by name; ``kwargs`` go to its constructor (e.g. ``cell="gru"`` for ``"rnn"``).

    Raises ``BuildError("workload", ...)`` for an unknown name, with a suggestion and the valid names.
    """
    cls = WORKLOADS.get(name) if isinstance(name, str) else None
    if cls is None:
        hint = suggest(name, WORKLOADS)
        did_you_mean = f" (did you mean {hint!r}?)" if hint else ""
        raise BuildError("workload", f"unknown workload {name!r}{did_you_mean}; valid values: {', '.join(WORKLOADS)}")
    traits = (traits,) if isinstance(traits, str) else tuple(traits)
    return cls(size=size, seed=seed, traits=traits, device=device, **kwargs)


def _profile(source: Profile | Recommendation | Mapping[str, Any]) -> Profile:
    if isinstance(source, Profile):
        return source
    if isinstance(source, Recommendation):
        return parse_profile(source.profile)
    return parse_profile(source)


def workload_for(source: Profile | Recommendation | Mapping[str, Any]) -> str:
    """The workload that stands in for a job: by the Profile's architecture, else its domain, else ``"mlp"``.

    ``source`` is a Profile, a Recommendation (its validated ``.profile`` is used) or a profile
    mapping (validated; aliases such as ``"resnet50"`` are accepted).
    """
    profile = _profile(source)
    if profile.architecture in ARCHITECTURE_WORKLOADS:
        return ARCHITECTURE_WORKLOADS[profile.architecture]
    if profile.domain in DOMAIN_WORKLOADS:
        return DOMAIN_WORKLOADS[profile.domain]
    return DEFAULT_WORKLOAD


def workload_kwargs_for(source: Profile | Recommendation | Mapping[str, Any]) -> dict[str, Any]:
    """``make_workload`` keyword arguments that match a job: its data traits and, for a GRU, ``cell="gru"``.

    Profile data characteristics that are not workload traits (``dense_features``, ``large_batch``)
    are left out; ``make_workload(workload_for(p), **workload_kwargs_for(p))`` is the matching workload.
    """
    profile = _profile(source)
    kwargs: dict[str, Any] = {"traits": tuple(t for t in profile.data if t in TRAITS)}
    if workload_for(profile) == "rnn" and profile.architecture == "gru":
        kwargs["cell"] = "gru"
    return kwargs
