"""A trial's peak memory, estimated before it starts, and the memory limit a worker runs under. Torch-free.

The worker's resident memory while it trains one proxy workload is estimated as::

    WORKER_BASE_MB                                  torch, the workload's libraries and its data set
    + parameters x 4 bytes x (2 + state values)     fp32 weights, gradients and optimizer state: the ZeRO
                                                    accounting of optirec's rules/memory.py at fp32, with the
                                                    rulebook's state_multiplier (Adam 2, SGD-momentum 1, ...)
    + ACTIVATION_FACTOR x saved activations         what autograd keeps from the forward pass for backward
    + data                                          data sets that grow with size (digits upsampled), and a
                                                    validate search's pre-drawn batches and per-candidate copies

The parameters and the saved activations come from each workload's shapes at its ``size`` (the formulas below
follow optimizers/workloads/*.py: widths, depths, batch sizes, sequence lengths, resolutions); the coefficient
of each formula is the number of (batch x features) tensors autograd saves per layer, read off torch's
``saved_tensors_hooks`` on the real models (torch 2.13, CPU). tests/faults/test_trial_memory.py checks the
parameter counts against the real models, the activations against torch's saved tensors, and the total
against the peak resident memory of real trials in a fresh process.

The limit (``memory_limit_mb``): ``OPTIREC_TRIAL_MAX_MEMORY_MB`` when set (0: none), else
``trial_memory_fraction`` of this machine's memory (physical RAM, or the cgroup's memory.max when lower, as in
a container) split over the ``trial_concurrency`` workers. POST /trials refuses a trial whose estimate is over
it (422 naming both); the runner also kills a worker whose resident memory passes it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ACTIVATION_FACTOR",
    "ARCHITECTURE_WORKLOADS",
    "DEFAULT_WORKLOAD",
    "DOMAIN_WORKLOADS",
    "WORKER_BASE_MB",
    "MemoryEstimate",
    "estimate_trial_memory",
    "machine_memory_mb",
    "memory_limit_mb",
    "resolve_workload",
]

MB = 2**20
#: Resident MiB of a worker that has imported torch and run a first small trial (its workload's libraries,
#: scikit-learn for the digits and diabetes data, loaded): measured 460-640 MiB (torch 2.13, CPU, Linux x86-64).
WORKER_BASE_MB = 650.0
#: Peak resident bytes per byte of saved activations: backward holds the activations' gradients next to them
#: (measured 1.26-1.46 on the transformer LM, U-Net, CNN and ViT workloads).
ACTIVATION_FACTOR = 1.5
#: Weight and state copies a validate search keeps: every candidate's weights and optimizer (at most this many).
VALIDATE_COPIES = 16
#: The character LM's vocabulary, at most (its corpus is ASCII: non-ASCII characters become '?').
LM_VOCAB = 128

#: Profile architecture -> workload, as optimizers/workloads ARCHITECTURE_WORKLOADS (a test checks they agree).
ARCHITECTURE_WORKLOADS: dict[str, str] = {
    arch: name
    for name, archs in {
        "cnn": "resnet efficientnet yolo mask_rcnn cnn convnext mobilenet vgg wide_resnet densenet simclr moco byol "
        "retinanet",
        "vit": "vit deit swin mae dino clip detr dit",
        "transformer_lm": "gpt bert t5 transformer roberta deberta xlnet albert electra bart llama wav2vec2 whisper "
        "conformer",
        "rnn": "lstm gru rnn deepspeech tacotron deepar nbeats informer patchtst tft timesnet awd_lstm dlinear",
        "mlp": "mlp tabnet ft_transformer",
        "recommender": "embedding dlrm ncf two_tower wide_and_deep deepfm sasrec bert4rec",
        "gan": "gan_generator gan_discriminator wgan wgan_gp stylegan biggan",
        "unet": "unet nnunet deeplab segformer ddpm latent_diffusion",
        "dqn": "dqn ppo rainbow sac td3 a2c impala",
    }.items()
    for arch in archs.split()
}
#: Profile domain -> workload, as optimizers/workloads DOMAIN_WORKLOADS.
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
DEFAULT_WORKLOAD = "mlp"


def resolve_workload(workload: str, profile: Mapping[str, Any]) -> str:
    """The workload a trial runs: ``workload``, or for 'auto' the one matching the (validated) profile."""
    if workload != "auto":
        return workload
    arch, domain = profile.get("architecture"), profile.get("domain")
    if isinstance(arch, str) and arch in ARCHITECTURE_WORKLOADS:
        return ARCHITECTURE_WORKLOADS[arch]
    if isinstance(domain, str) and domain in DOMAIN_WORKLOADS:
        return DOMAIN_WORKLOADS[domain]
    return DEFAULT_WORKLOAD


@dataclass(frozen=True)
class Shape:
    """What one workload holds at one size: parameters, floats saved for backward per step, data bytes."""

    parameters: int
    saved_floats: int
    data_bytes: int
    batch_bytes: int  # one training batch (a validate search draws all of them up front)


def _transformer_layer_params(d: int, ff: int) -> int:
    # nn.TransformerEncoderLayer: in_proj 3d x d (+3d), out_proj d x d (+d), linear1 d x ff (+ff), linear2, 2 norms
    return 4 * d * d + 4 * d + 2 * d * ff + ff + d + 4 * d


def _lm(size: int, traits: frozenset[str]) -> Shape:
    batch, context, d, depth, heads, vocab = 32 * size, 64 * size, 48 * size, 1 + size, 4, LM_VOCAB
    params = (vocab + 1) * d + context * d + depth * _transformer_layer_params(d, 4 * d) + 2 * d + d * vocab + vocab
    tokens = batch * context
    # per layer: 12 (tokens x d) tensors (norms, q/k/v, attention output, the 4d feed-forward twice, residuals)
    # and 2 (batch x heads x context x context) ones (the merged causal/padding mask and the attention weights)
    saved = depth * (12 * tokens * d + 2 * batch * heads * context * context) + 3 * tokens * vocab
    return Shape(params, saved, 8 * 40_000 * size, 2 * 8 * tokens)


def _digits_resolution(size: int, traits: frozenset[str]) -> int:
    return 8 * size * (4 if "high_dimensional" in traits else 1)  # optimizers/workloads/_digits.py


def _digits_data(resolution: int) -> int:
    return 2 * 1797 * resolution * resolution * 4  # the upsampled images, and the copy F.interpolate makes


def _vit(size: int, traits: frozenset[str]) -> Shape:
    res = _digits_resolution(size, traits)
    patch = max(2, res // 8)
    tokens, d, depth, heads, batch = (res // patch) ** 2 + 1, 32 * size, 1 + size, 4, 64 * size
    params = d * patch * patch + d + d + tokens * d + depth * _transformer_layer_params(d, 2 * d) + 2 * d + d * 10 + 10
    saved = batch * res * res + depth * (8 * batch * tokens * d + 2 * batch * heads * tokens * tokens)
    return Shape(params, saved, _digits_data(res), 4 * batch * res * res + 8 * batch)


def _cnn(size: int, traits: frozenset[str]) -> Shape:
    res = _digits_resolution(size, traits)
    w, blocks, batch = 16 * size, size, 64 * size
    h1 = res // (res // 16) if res > 16 else res  # the stem pools large inputs to about 16 x 16
    h2 = (h1 + 1) // 2
    params = 9 * w + 2 * w + blocks * (18 * w * w + 4 * w) + 18 * w * w + 4 * w
    params += blocks * (18 * (2 * w) ** 2 + 8 * w) + 2 * w * 10 + 10
    # the stem's conv/BN/ReLU outputs at full resolution, 4 tensors per residual block, 3 for the down-sampling
    per_example = res * res + 3 * w * res * res + 4 * blocks * w * h1 * h1 + 3 * 2 * w * h2 * h2
    per_example += 4 * blocks * 2 * w * h2 * h2
    return Shape(params, batch * per_example, _digits_data(res), 4 * batch * res * res + 8 * batch)


def _unet(size: int, traits: frozenset[str]) -> Shape:
    res, w, batch = 16 * size, 8 * size, 16 * size

    def block(cin: int, cout: int) -> int:  # two 3x3 convs without bias, two BatchNorms
        return 9 * cin * cout + 9 * cout * cout + 4 * cout

    params = block(1, w) + block(w, 2 * w) + block(2 * w, 4 * w) + block(4 * w, 2 * w) + block(2 * w, w)
    params += 4 * 4 * w * 2 * w + 2 * w + 4 * 2 * w * w + w + w + 1  # the two transposed convs, the 1x1 head
    # a block saves its input and 4 tensors of its output width; the two skip concatenations and up-samplings
    full, half, quarter = res * res, (res // 2) ** 2, (res // 4) ** 2
    per_example = full * (1 + 4 * w + 6 * w + w) + half * (9 * w + 12 * w + 2 * w) + quarter * (18 * w + 4 * w)
    return Shape(params, batch * per_example, 2 * 64 * full * 4, 2 * 4 * batch * full)


def _mlp(size: int, traits: frozenset[str]) -> Shape:
    features = 10 * 16 * size if "sparse_features" in traits else 10  # optimizers/workloads/mlp.py BINS = 16
    features += 256 * size if "high_dimensional" in traits else 0  # EXTRA_FEATURES = 256
    width, hidden, batch = 64 * size, 1 + size, 64
    params = features * width + width + (hidden - 1) * (width * width + width) + width + 1
    return Shape(params, batch * (features + 2 * hidden * width + 1), 442 * features * 8, 4 * batch * features)


def _rnn(size: int, traits: frozenset[str]) -> Shape:
    window, hidden, layers, batch = 24 * size, 32 * size, 1 if size == 1 else 2, 32 * size
    params = 4 * (hidden + 1) * hidden + 8 * hidden + (layers - 1) * (4 * 2 * hidden * hidden + 8 * hidden)
    params += hidden + 1  # LSTM (a GRU has 3/4 of it), then the linear head
    saved = batch * window * layers * 17 * hidden  # per step and layer: the 4 gates, c, h, their activations
    return Shape(params, saved, 0, 4 * batch * window + 8 * batch)


def _recommender(size: int, traits: frozenset[str]) -> Shape:
    users, dim, hidden, batch = 256 * size, 16 * size, 64 * size, 256 * size
    items = 1024 * size * (8 if "sparse_features" in traits else 1)  # SPARSE_FACTOR = 8
    params = (users + items) * dim + 2 * dim * hidden + hidden + hidden + 1
    return Shape(params, batch * (6 * dim + 3 * hidden), 0, 8 * 2 * batch + 4 * batch)


def _gan(size: int, traits: frozenset[str]) -> Shape:
    hidden, batch, latent = 64 * size, 128 * size, 8
    params = (latent * hidden + hidden + hidden * hidden + hidden + 2 * hidden + 2) + (
        2 * hidden + hidden + hidden * hidden + hidden + hidden + 1
    )
    return Shape(params, 3 * batch * 8 * hidden, 0, 4 * batch * (2 + latent))


def _dqn(size: int, traits: frozenset[str]) -> Shape:
    states, hidden, batch = 8 * size, 64 * size, 64 * size
    params = states * hidden + hidden + hidden * hidden + hidden + 2 * hidden + 2
    data = 1024 * size * 64 + 4 * params  # the replay buffer (REPLAY = 1024 per size) and the target network
    return Shape(params, batch * (states + 6 * hidden), data, 8 * batch * 4)


_SHAPES = {
    "transformer_lm": _lm,
    "vit": _vit,
    "cnn": _cnn,
    "unet": _unet,
    "mlp": _mlp,
    "rnn": _rnn,
    "recommender": _recommender,
    "gan": _gan,
    "dqn": _dqn,
}


def workload_shape(workload: str, size: int, traits: Iterable[str] = ()) -> Shape:
    """Parameters, saved activations and data of ``workload`` at ``size`` (a name of the workload catalog)."""
    return _SHAPES[workload](size, frozenset(traits))


@dataclass(frozen=True)
class MemoryEstimate:
    """A trial's estimated peak resident memory, in MiB, by part."""

    workload: str
    size: int
    parameters: int
    state_multiplier: float
    model_mb: float  # weights, gradients and optimizer state
    activations_mb: float
    data_mb: float
    base_mb: float

    @property
    def total_mb(self) -> float:
        return self.base_mb + self.model_mb + self.activations_mb + self.data_mb

    def describe(self) -> str:
        return (
            f"about {self.total_mb:,.0f} MiB for {self.workload} at size {self.size}: "
            f"{self.activations_mb:,.0f} MiB of activations, {self.model_mb:,.0f} MiB of weights, gradients and "
            f"optimizer state ({self.parameters:,} parameters, {self.state_multiplier:g} state values each), "
            f"{self.data_mb:,.0f} MiB of data and {self.base_mb:,.0f} MiB for the worker itself"
        )


def estimate_trial_memory(
    workload: str,
    size: int,
    *,
    traits: Iterable[str] = (),
    state_multiplier: float = 2.0,
    validate: bool = False,
    steps: int = 1,
) -> MemoryEstimate:
    """The peak resident memory of a worker running this trial (candidates of a race run one after another,
    so ``state_multiplier`` is the largest of theirs)."""
    shape = workload_shape(workload, size, traits)
    model = shape.parameters * 4 * (2 + state_multiplier)
    data = shape.data_bytes
    if validate:  # validate() draws every training batch up front and keeps each candidate's weights and state
        data += steps * shape.batch_bytes
        model += VALIDATE_COPIES * shape.parameters * 4 * (1 + state_multiplier)
    return MemoryEstimate(
        workload=workload,
        size=size,
        parameters=shape.parameters,
        state_multiplier=state_multiplier,
        model_mb=model / MB,
        activations_mb=ACTIVATION_FACTOR * 4 * shape.saved_floats / MB,
        data_mb=data / MB,
        base_mb=WORKER_BASE_MB,
    )


def _cgroup_limit() -> int | None:
    """The memory limit of this process's cgroup (v2 memory.max, v1 memory.limit_in_bytes), or None."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path, encoding="ascii") as fh:
                text = fh.read().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:  # "max", or v1's huge "no limit" number
            return int(text)
    return None


def machine_memory_mb() -> float | None:
    """This machine's memory in MiB: physical RAM, or the cgroup's limit when lower; None when unknown."""
    try:
        physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        physical = 0
    limit = _cgroup_limit()
    sizes = [s for s in (physical, limit) if s and s > 0]
    return min(sizes) / MB if sizes else None


def memory_limit_mb(explicit: int | None, fraction: float, concurrency: int) -> int:
    """The most resident MiB one trial worker may hold; 0 = no limit.

    ``explicit`` (OPTIREC_TRIAL_MAX_MEMORY_MB) wins when set; else ``fraction`` of the machine's memory
    split over the ``concurrency`` workers (0 when the machine's memory cannot be read).
    """
    if explicit is not None:
        return explicit
    machine = machine_memory_mb()
    if machine is None:
        return 0
    return max(1, math.floor(machine * fraction / max(1, concurrency)))
