"""``CharLM``: a causal character-level transformer language model on Python's own standard-library source."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Sequence
from functools import cache
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from ._common import seeded_model, stream
from .base import Batch, Workload

__all__ = ["CORPUS_MODULES", "CharLM", "corpus"]

#: Standard-library modules whose source is the corpus, in this order (they ship with every CPython).
CORPUS_MODULES = (
    "textwrap",
    "json.decoder",
    "json.encoder",
    "heapq",
    "string",
    "shlex",
    "fnmatch",
    "glob",
    "colorsys",
    "bisect",
)

_INDEX, _NOISE, _LENGTH, _HELDOUT_LENGTH = 1, 2, 3, 4
IGNORE = -100  # cross-entropy ignore_index: padded positions


@cache
def corpus() -> str:
    """The source text of ``CORPUS_MODULES``, non-ASCII characters replaced by '?'.

    A module without a source file (a stripped install) is replaced by its docstring.
    """
    parts = []
    for name in CORPUS_MODULES:
        module = importlib.import_module(name)
        try:
            parts.append(inspect.getsource(module))
        except (OSError, TypeError):
            parts.append(module.__doc__ or name)
    return "".join(ch if ch.isascii() else "?" for ch in "\n".join(parts))


class _CausalTransformer(nn.Module):
    def __init__(self, vocab: int, context: int, dim: int, depth: int, heads: int) -> None:
        super().__init__()
        self.pad = vocab  # the padding token id (the embedding has one extra row)
        self.tokens = nn.Embedding(vocab + 1, dim, padding_idx=vocab)
        self.position = nn.Embedding(context, dim)
        layer = nn.TransformerEncoderLayer(
            dim, heads, 4 * dim, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        length = ids.shape[1]
        positions = torch.arange(length, device=ids.device)
        causal = torch.ones(length, length, dtype=torch.bool, device=ids.device).triu(1)
        h = self.tokens(ids) + self.position(positions)
        h = self.encoder(h, mask=causal, src_key_padding_mask=ids == self.pad, is_causal=True)
        return self.head(self.norm(h))  # type: ignore[no-any-return]


class CharLM(Workload):
    """Next-character prediction on the first ``40_000 * size`` characters of stdlib source (the last tenth held out).

    ``size`` scales the text, the context (64 * size), the width (48 * size), the depth (1 + size)
    and the batch (32 * size). Batches are ``(ids, targets)``; padded targets are ``IGNORE`` (-100)
    and padded inputs the pad id, which the model masks out of attention.

    Traits:

    - ``variable_length_sequences``: each sequence is cut to a random length in
      [context / 4, context] and right-padded (held-out too);
    - ``noisy``: ``CORRUPTION`` of the training characters replaced by random ones (inputs and
      targets alike; the held-out text stays clean).
    """

    name: ClassVar[str] = "transformer_lm"
    family: ClassVar[str] = "transformer_lm"
    description: ClassVar[str] = "causal character-level transformer LM on Python standard-library source"
    architectures: ClassVar[tuple[str, ...]] = (
        "gpt", "bert", "t5", "transformer", "roberta", "deberta", "xlnet", "albert", "electra", "bart", "llama",
        "wav2vec2", "whisper", "conformer",
    )  # fmt: skip
    domains: ClassVar[tuple[str, ...]] = ("nlp", "llm", "speech")
    supported_traits: ClassVar[frozenset[str]] = frozenset({"variable_length_sequences", "noisy"})
    metric_name: str = "perplexity"
    higher_is_better: bool = False

    CORRUPTION: ClassVar[float] = 0.1
    HELDOUT_FRACTION: ClassVar[float] = 0.1

    def __init__(
        self, *, size: int = 1, seed: int = 0, traits: Sequence[str] = (), device: str | torch.device = "cpu"
    ) -> None:
        super().__init__(size=size, seed=seed, traits=traits, device=device)
        text = corpus()[: 40_000 * size]
        self.vocabulary = "".join(sorted(set(text)))
        lookup = {ch: i for i, ch in enumerate(self.vocabulary)}
        ids = torch.tensor([lookup[ch] for ch in text], dtype=torch.long)
        cut = len(ids) - int(len(ids) * self.HELDOUT_FRACTION)
        self.train_ids, self.heldout_ids = ids[:cut], ids[cut:]
        self.context = 64 * size
        self.batch_size = 32 * size
        self.pad = len(self.vocabulary)

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary)

    def build_model(self) -> nn.Module:
        return seeded_model(
            self.seed,
            lambda: _CausalTransformer(self.vocab_size, self.context, 48 * self.size, 1 + self.size, 4),
            self.device,
        )

    def _pad(self, windows: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        ids, targets = windows[:, :-1].clone(), windows[:, 1:].clone()
        if "variable_length_sequences" in self.traits:
            lengths = torch.randint(self.context // 4, self.context + 1, (len(windows),), generator=generator)
            padded = torch.arange(self.context) >= lengths[:, None]
            ids[padded] = self.pad
            targets[padded] = IGNORE
        return ids.to(self.device), targets.to(self.device)

    def train_batch(self, step: int) -> Batch:
        starts = torch.randint(
            len(self.train_ids) - self.context, (self.batch_size,), generator=stream(self.seed, step, _INDEX)
        )
        windows = self.train_ids[starts[:, None] + torch.arange(self.context + 1)]
        if "noisy" in self.traits:
            g = stream(self.seed, step, _NOISE)
            corrupt = torch.rand(windows.shape, generator=g) < self.CORRUPTION
            windows = torch.where(corrupt, torch.randint(self.vocab_size, windows.shape, generator=g), windows)
        return self._pad(windows, stream(self.seed, step, _LENGTH))

    def heldout_batches(self) -> list[Batch]:
        span = self.context + 1
        count = len(self.heldout_ids) // span
        windows = self.heldout_ids[: count * span].view(count, span)
        return [self._pad(windows, stream(self.seed, -1, _HELDOUT_LENGTH))]

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        ids, targets = batch
        logits = model(ids)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE)

    def metric(self, model: nn.Module, batch: Batch) -> float:
        return float(torch.exp(self.loss(model, batch)))
