"""The seed tables, row by row, as the specification of the engine.

Every expected value below is copied from the seed documents in ``shared/seeds/`` and never from the
engine's output:

* 004 (``004_fa81c01ae25e95fb.txt``, Korean): tables §2.1-§2.5, §6.2 general principles, §6.3 tuning
  priorities, §6.4.2 optimizer switching, §6.4.3 batch size vs. learning rate;
* 000-003: the simple selection guides ("대부분의 경우: Adam", "희소한 데이터: Adagrad", ...) and
  003's torch.optim one-liners with their learning rates.

Each table is a list of tuples with a comment quoting the seed row; each case id names the row
(e.g. ``2.3-ResNet``) and every assertion message says which seed row it checks.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from optirec.rules import default_rulebook, recommend

Profile = dict[str, Any]

SGD_FAMILY = ("sgd", "sgd_momentum", "nag")  # 004 §6.2 "SGD" schedules: SGD, SGD + Momentum, NAG
ADAM_FAMILY = ("adam", "adamw")  # 004 §6.2 "Adam/AdamW"


def _summary(rec: Any) -> str:
    """What the engine answered, for assertion messages."""
    return (
        f"engine chose {rec.optimizer.name} {rec.optimizer.hyperparameters}, batch {rec.batch_size}, "
        f"schedule {rec.schedule.name} (warmup_ratio {rec.schedule.warmup_ratio}, "
        f"warmup_steps {rec.schedule.warmup_steps}), alternatives {[a.name for a in rec.alternatives]}, "
        f"avoid {[a.name for a in rec.avoid]}, param_groups {[(g.name, g.optimizer) for g in rec.param_groups]}, "
        f"warnings {rec.warnings}"
    )


def _lr(rec: Any) -> float:
    return float(rec.optimizer.hyperparameters["lr"])


def _chosen_text(rec: Any) -> str:
    """The effects of the rules that decided, lower-cased (what the rationale tells the user)."""
    return " ".join(e.effect for e in rec.rationale if e.status in ("chosen", "applied")).lower()


# ====================================================================================================
# 1. 004 §2.3 모델 아키텍처별 선호도 (15 rows)
# ====================================================================================================

ARCH_ROWS = [
    # (case id, architecture, optimizer, 일반적 학습률, 배치 크기: int or (low, high))
    ("2.3-ResNet", "resnet", "sgd_momentum", 0.1, 256),  # | ResNet | SGD + Momentum | 0.1 | 256 |
    ("2.3-EfficientNet", "efficientnet", "rmsprop", 0.016, 256),  # | EfficientNet | RMSprop | 0.016 | 256 |
    ("2.3-ViT", "vit", "adamw", 1e-3, (512, 4096)),  # | Vision Transformer (ViT) | AdamW | 1e-3 | 512-4096 |
    ("2.3-BERT", "bert", "adamw", 5e-5, 32),  # | BERT | AdamW | 5e-5 | 32 |
    ("2.3-GPT", "gpt", "adamw", 6e-4, 512),  # | GPT | AdamW | 6e-4 | 512 |
    ("2.3-T5", "t5", "adafactor", 1e-3, 128),  # | T5 | Adafactor | 1e-3 | 128 |
    ("2.3-LSTM", "lstm", "adam", 1e-3, 64),  # | LSTM | Adam | 1e-3 | 64 |
    ("2.3-GRU", "gru", "rmsprop", 7e-4, 32),  # | GRU | RMSprop | 7e-4 | 32 |
    ("2.3-GAN-Generator", "gan_generator", "adam", 2e-4, 128),  # | GAN (Generator) | Adam | 2e-4 | 128 |
    ("2.3-GAN-Discriminator", "gan_discriminator", "adam", 2e-4, 128),  # | GAN (Discriminator) | Adam | 2e-4 | 128 |
    ("2.3-U-Net", "unet", "adam", 1e-4, 16),  # | U-Net | Adam | 1e-4 | 16 |
    ("2.3-YOLO", "yolo", "sgd_momentum", 1e-2, 64),  # | YOLO | SGD + Momentum | 1e-2 | 64 |
    ("2.3-Mask-R-CNN", "mask_rcnn", "sgd_momentum", 2e-2, 16),  # | Mask R-CNN | SGD + Momentum | 2e-2 | 16 |
    ("2.3-DQN", "dqn", "rmsprop", 2.5e-4, 32),  # | DQN | RMSprop | 2.5e-4 | 32 |
    ("2.3-PPO", "ppo", "adam", 3e-4, 2048),  # | PPO | Adam | 3e-4 | 2048 |
]


@pytest.mark.parametrize(("row", "architecture", "optimizer", "lr", "batch"), ARCH_ROWS, ids=[r[0] for r in ARCH_ROWS])
def test_2_3_architecture_row(row: str, architecture: str, optimizer: str, lr: float, batch: Any) -> None:
    rec = recommend({"architecture": architecture})
    assert rec.optimizer.name == optimizer, f"004 §2.3 row {row}: recommended optimizer; {_summary(rec)}"
    assert _lr(rec) == pytest.approx(lr), f"004 §2.3 row {row}: typical learning rate {lr}; {_summary(rec)}"
    if isinstance(batch, tuple):
        low, high = batch
        assert rec.batch_size is not None, f"004 §2.3 row {row}: batch size {low}-{high}; {_summary(rec)}"
        assert low <= rec.batch_size <= high, f"004 §2.3 row {row}: batch size {low}-{high}; {_summary(rec)}"
    else:
        assert rec.batch_size == batch, f"004 §2.3 row {row}: batch size {batch}; {_summary(rec)}"


ARCH_NOTE_ROWS = [
    # (case id, profile, 특이사항 as written in the seed, what it means as a checkable behaviour)
    ("2.3-ResNet", {"architecture": "resnet"}, "코사인 어닐링", lambda r: r.schedule.name == "cosine"),
    ("2.3-EfficientNet", {"architecture": "efficientnet"}, "지수 이동 평균", lambda r: r.ema is not None),
    ("2.3-ViT", {"architecture": "vit"}, "선형 워밍업", lambda r: r.schedule.warmup_ratio > 0),
    # 10% 스텝 워밍업: 10% of 1000 steps
    (
        "2.3-BERT",
        {"architecture": "bert", "total_steps": 1000},
        "10% 스텝 워밍업",
        lambda r: r.schedule.warmup_steps == 100,
    ),
    ("2.3-GPT", {"architecture": "gpt"}, "코사인 감쇠", lambda r: r.schedule.name == "cosine"),
    # 메모리 효율형: less optimizer state than Adam's 2x (004 §2.1 Adam row, memory column)
    ("2.3-T5", {"architecture": "t5"}, "메모리 효율형", lambda r: r.memory.state_multiplier < 2),
    ("2.3-LSTM", {"architecture": "lstm"}, "그래디언트 클리핑", lambda r: r.gradient_clipping is not None),
    (
        "2.3-GRU",
        {"architecture": "gru"},
        "시퀀스 길이 조정",
        lambda r: "sequence length" in _chosen_text(r) and "clip" in _chosen_text(r),
    ),
    (
        "2.3-GAN-Generator",
        {"architecture": "gan_generator"},
        "β1=0.5",
        lambda r: r.optimizer.hyperparameters["betas"][0] == pytest.approx(0.5),
    ),
    (
        "2.3-GAN-Discriminator",
        {"architecture": "gan_discriminator"},
        "별도 학습률 가능 (same Adam as the generator row, β1=0.5)",
        lambda r: r.optimizer.hyperparameters["betas"][0] == pytest.approx(0.5),
    ),
    ("2.3-U-Net", {"architecture": "unet"}, "세그멘테이션 특화 (lr 1e-4)", lambda r: _lr(r) == pytest.approx(1e-4)),
    ("2.3-YOLO", {"architecture": "yolo"}, "스텝 감쇠", lambda r: r.schedule.name == "step"),
    (
        "2.3-Mask-R-CNN",
        {"architecture": "mask_rcnn"},
        "긴 학습 스케줄 (step decay over a long schedule)",
        lambda r: r.schedule.name == "step" and "long" in _chosen_text(r),
    ),
    ("2.3-DQN", {"architecture": "dqn"}, "타겟 네트워크 (RMSprop, as DQN)", lambda r: r.optimizer.name == "rmsprop"),
    ("2.3-PPO", {"architecture": "ppo"}, "클리핑 정책 (Adam, as PPO)", lambda r: r.optimizer.name == "adam"),
]


@pytest.mark.parametrize(("row", "profile", "note", "check"), ARCH_NOTE_ROWS, ids=[r[0] for r in ARCH_NOTE_ROWS])
def test_2_3_special_note(row: str, profile: Profile, note: str, check: Any) -> None:
    rec = recommend(profile)
    assert check(rec), f"004 §2.3 row {row}: special note '{note}' is not honoured for {profile}; {_summary(rec)}"


# ====================================================================================================
# 2. 004 §2.2 도메인별 선호 옵티마이저 (12 rows)
# ====================================================================================================

DOMAIN_ROWS = [
    # (case id, profile that selects the row, 1순위, 2순위, 3순위 or None for "-")
    # | 컴퓨터 비전 (CNN) | SGD + Momentum | AdamW | NAG |
    ("2.2-CV-CNN", {"domain": "computer_vision", "architecture": "cnn"}, "sgd_momentum", "adamw", "nag"),
    # | 컴퓨터 비전 (ViT) | AdamW | Adam | LAMB |
    ("2.2-CV-ViT", {"domain": "computer_vision", "architecture": "vit"}, "adamw", "adam", "lamb"),
    # | 자연어 처리 | AdamW | Adam | RAdam |
    ("2.2-NLP", {"domain": "nlp"}, "adamw", "adam", "radam"),
    # | 대규모 언어 모델 | AdamW | LAMB | Adam |
    ("2.2-LLM", {"domain": "llm"}, "adamw", "lamb", "adam"),
    # | 강화학습 (가치 기반) | RMSprop | Adam | SGD |
    ("2.2-RL-value", {"domain": "reinforcement_learning", "rl_method": "value_based"}, "rmsprop", "adam", "sgd"),
    # | 강화학습 (정책 기반) | Adam | RMSprop | AdamW |
    ("2.2-RL-policy", {"domain": "reinforcement_learning", "rl_method": "policy_based"}, "adam", "rmsprop", "adamw"),
    # | 추천 시스템 (임베딩) | Adagrad | Adam | - |
    ("2.2-Recommender-embedding", {"domain": "recommender", "architecture": "embedding"}, "adagrad", "adam", None),
    # | 추천 시스템 (딥러닝) | Adam | AdamW | RMSprop |
    ("2.2-Recommender-deep", {"domain": "recommender", "architecture": "mlp"}, "adam", "adamw", "rmsprop"),
    # | 시계열 (RNN/LSTM) | Adam | RMSprop | AdamW |
    ("2.2-TimeSeries-RNN", {"domain": "time_series", "architecture": "rnn"}, "adam", "rmsprop", "adamw"),
    # | 시계열 (Transformer) | AdamW | Adam | RAdam |
    ("2.2-TimeSeries-Transformer", {"domain": "time_series", "architecture": "transformer"}, "adamw", "adam", "radam"),
    # | 메모리 제약 환경 | SGD | Adagrad | SGD + Momentum |
    ("2.2-Memory-limited", {"memory_limited": True}, "sgd", "adagrad", "sgd_momentum"),
    # | 온디바이스 학습 | SGD | SGD + Momentum | - |
    ("2.2-On-device", {"on_device": True}, "sgd", "sgd_momentum", None),
]


@pytest.mark.parametrize(("row", "profile", "first", "second", "third"), DOMAIN_ROWS, ids=[r[0] for r in DOMAIN_ROWS])
def test_2_2_domain_row(row: str, profile: Profile, first: str, second: str, third: str | None) -> None:
    rec = recommend(profile)
    assert rec.optimizer.name == first, f"004 §2.2 row {row}: 1순위 {first} for {profile}; {_summary(rec)}"
    expected = [second] if third is None else [second, third]
    alternatives = [a.name for a in rec.alternatives]
    assert alternatives[: len(expected)] == expected, (
        f"004 §2.2 row {row}: 2순위/3순위 {expected} must lead the alternatives, in that order; {_summary(rec)}"
    )


DOMAIN_ALONE_ROWS = [
    # (case id, domain, 1순위 of the domain's first row in 004 §2.2)
    ("2.2-domain-computer_vision", "computer_vision", "sgd_momentum"),  # first row: 컴퓨터 비전 (CNN)
    ("2.2-domain-nlp", "nlp", "adamw"),  # 자연어 처리
    ("2.2-domain-llm", "llm", "adamw"),  # 대규모 언어 모델
    ("2.2-domain-reinforcement_learning", "reinforcement_learning", "rmsprop"),  # first row: 강화학습 (가치 기반)
    ("2.2-domain-recommender", "recommender", "adagrad"),  # first row: 추천 시스템 (임베딩)
    ("2.2-domain-time_series", "time_series", "adam"),  # first row: 시계열 (RNN/LSTM)
]


@pytest.mark.parametrize(("row", "domain", "first"), DOMAIN_ALONE_ROWS, ids=[r[0] for r in DOMAIN_ALONE_ROWS])
def test_2_2_domain_alone_gives_first_row(row: str, domain: str, first: str) -> None:
    rec = recommend({"domain": domain})
    assert rec.optimizer.name == first, (
        f"004 §2.2 {row}: a bare domain must get the 1순위 of the domain's first row ({first}); {_summary(rec)}"
    )


def test_2_2_recommender_alone_is_hybrid() -> None:
    # 004 §6.1 decision tree: 추천 시스템 -> "Adagrad + Adam"; §5.6.1 하이브리드 전략: embeddings Adagrad, dense Adam.
    rec = recommend({"domain": "recommender"})
    groups = {g.name: g.optimizer for g in rec.param_groups}
    assert groups.get("embeddings") == "adagrad", (
        f"004 §6.1 / §5.6.1 recommender hybrid: embedding layers -> Adagrad; {_summary(rec)}"
    )
    assert groups.get("dense") == "adam", (
        f"004 §6.1 / §5.6.1 recommender hybrid: dense network -> Adam; {_summary(rec)}"
    )


# ====================================================================================================
# 3. 004 §2.4 데이터 특성별 선호도 (8 rows)
# ====================================================================================================

DATA_ROWS = [
    # (case id, characteristic, 적합한 옵티마이저, 부적합한 옵티마이저)
    ("2.4-sparse_features", "sparse_features", ("adagrad", "adam"), ("sgd",)),  # | 희소 특성 | Adagrad, Adam | SGD |
    ("2.4-dense_features", "dense_features", ("sgd", "adam"), ()),  # | 밀집 특성 | SGD, Adam | - |
    # | 가변 길이 시퀀스 | Adam, AdamW | SGD |
    ("2.4-variable_length_sequences", "variable_length_sequences", ("adam", "adamw"), ("sgd",)),
    # | 고차원 데이터 | Adam, AdamW | 2차 옵티마이저 |
    ("2.4-high_dimensional", "high_dimensional", ("adam", "adamw"), ("newton", "lbfgs", "kfac")),
    ("2.4-imbalanced", "imbalanced", ("adam", "adamw"), ("sgd",)),  # | 불균형 데이터 | Adam, AdamW | SGD |
    ("2.4-noisy", "noisy", ("sgd_momentum",), ("adagrad",)),  # | 노이즈가 많은 데이터 | SGD + Momentum | Adagrad |
    # | 비정상적 분포 | RMSprop, Adam | Adagrad |
    ("2.4-non_stationary", "non_stationary", ("rmsprop", "adam"), ("adagrad",)),
    ("2.4-large_batch", "large_batch", ("lamb", "sgd"), ("adam",)),  # | 대규모 배치 | LAMB, SGD | Adam |
]


@pytest.mark.parametrize(("row", "characteristic", "suitable", "unsuitable"), DATA_ROWS, ids=[r[0] for r in DATA_ROWS])
def test_2_4_data_alone_gets_a_suitable_optimizer(
    row: str, characteristic: str, suitable: tuple[str, ...], unsuitable: tuple[str, ...]
) -> None:
    rec = recommend({"data": [characteristic]})
    assert rec.optimizer.name in suitable, f"004 §2.4 row {row}: 적합한 옵티마이저 {suitable}; {_summary(rec)}"


_SMALL = {"dataset_size": 1000, "num_parameters": 10000}  # 000 guide: small data set, simple model -> SGD
_EMBEDDING = {"domain": "recommender", "architecture": "embedding"}  # 004 §2.2: Adagrad first
_RECOMMENDER = {"domain": "recommender"}  # 004 §6.1: hybrid Adagrad (embeddings) + Adam (dense)

# Profiles whose preferred optimizer would otherwise be the row's unsuitable one.
DATA_AVOID_CASES = [
    # (case id, characteristic, base profile, 부적합한 옵티마이저 of the row)
    # | 희소 특성 | ... | SGD | : memory-limited / on-device / small-data profiles prefer SGD
    ("2.4-sparse_features+memory_limited", "sparse_features", {"memory_limited": True}, ("sgd",)),
    ("2.4-sparse_features+on_device", "sparse_features", {"on_device": True}, ("sgd",)),
    ("2.4-sparse_features+small_data", "sparse_features", _SMALL, ("sgd",)),
    # | 가변 길이 시퀀스 | ... | SGD |
    ("2.4-variable_length_sequences+memory_limited", "variable_length_sequences", {"memory_limited": True}, ("sgd",)),
    ("2.4-variable_length_sequences+on_device", "variable_length_sequences", {"on_device": True}, ("sgd",)),
    ("2.4-variable_length_sequences+small_data", "variable_length_sequences", _SMALL, ("sgd",)),
    # | 불균형 데이터 | ... | SGD |
    ("2.4-imbalanced+memory_limited", "imbalanced", {"memory_limited": True}, ("sgd",)),
    ("2.4-imbalanced+on_device", "imbalanced", {"on_device": True}, ("sgd",)),
    ("2.4-imbalanced+small_data", "imbalanced", _SMALL, ("sgd",)),
    # | 고차원 데이터 | ... | 2차 옵티마이저 |
    ("2.4-high_dimensional+none", "high_dimensional", {}, ("newton", "lbfgs", "kfac")),
    ("2.4-high_dimensional+memory_limited", "high_dimensional", {"memory_limited": True}, ("newton", "lbfgs", "kfac")),
    ("2.4-high_dimensional+small_data", "high_dimensional", _SMALL, ("newton", "lbfgs", "kfac")),
    ("2.4-high_dimensional+tiny_model", "high_dimensional", {"num_parameters": 1000}, ("newton", "lbfgs", "kfac")),
    # | 노이즈가 많은 데이터 | ... | Adagrad | : embedding recommenders and sparse data prefer Adagrad
    ("2.4-noisy+recommender_embedding", "noisy", _EMBEDDING, ("adagrad",)),
    ("2.4-noisy+recommender_hybrid", "noisy", _RECOMMENDER, ("adagrad",)),
    ("2.4-noisy+memory_limited", "noisy", {"memory_limited": True}, ("adagrad",)),
    ("2.4-noisy+sparse_features", "noisy", {"data": ["sparse_features"]}, ("adagrad",)),
    # | 비정상적 분포 | ... | Adagrad |
    ("2.4-non_stationary+recommender_embedding", "non_stationary", _EMBEDDING, ("adagrad",)),
    ("2.4-non_stationary+recommender_hybrid", "non_stationary", _RECOMMENDER, ("adagrad",)),
    ("2.4-non_stationary+memory_limited", "non_stationary", {"memory_limited": True}, ("adagrad",)),
    ("2.4-non_stationary+sparse_features", "non_stationary", {"data": ["sparse_features"]}, ("adagrad",)),
    # | 대규모 배치 | ... | Adam | : transformer / LLM profiles prefer AdamW, the default prefers Adam.
    # AdamW is ruled out too: "배치 크기 32,768 이상에서 AdamW 수렴 실패" (004 §5.4.2).
    ("2.4-large_batch+bert", "large_batch", {"architecture": "bert"}, ("adam", "adamw")),
    ("2.4-large_batch+gpt", "large_batch", {"architecture": "gpt"}, ("adam", "adamw")),
    ("2.4-large_batch+llm", "large_batch", {"domain": "llm"}, ("adam", "adamw")),
    ("2.4-large_batch+nlp", "large_batch", {"domain": "nlp"}, ("adam", "adamw")),
    ("2.4-large_batch+none", "large_batch", {}, ("adam", "adamw")),
    ("2.4-large_batch+recommender_hybrid", "large_batch", _RECOMMENDER, ("adam", "adamw")),
]


@pytest.mark.parametrize(
    ("row", "characteristic", "base", "unsuitable"), DATA_AVOID_CASES, ids=[r[0] for r in DATA_AVOID_CASES]
)
def test_2_4_unsuitable_optimizer_is_avoided(
    row: str, characteristic: str, base: Profile, unsuitable: tuple[str, ...]
) -> None:
    profile = {**base, "data": [*base.get("data", []), characteristic]}
    rec = recommend(profile)
    assert rec.optimizer.name not in unsuitable, (
        f"004 §2.4 row {row}: 부적합한 옵티마이저 {unsuitable} must not be chosen for {profile}; {_summary(rec)}"
    )
    for group in rec.param_groups:
        assert group.optimizer not in unsuitable, (
            f"004 §2.4 row {row}: param group '{group.name}' uses {group.optimizer}, which the row rules out "
            f"for {profile}; {_summary(rec)}"
        )
    avoided = {a.name: a for a in rec.avoid}
    for name in unsuitable:
        assert name in avoided, f"004 §2.4 row {row}: {name} must be listed in avoid for {profile}; {_summary(rec)}"
        entry = avoided[name]
        assert entry.why.strip(), f"004 §2.4 row {row}: avoid entry for {name} must give a reason"
        # the §2.4 row itself, or another table with the same verdict (Newton: §2.1's O(n^2) memory)
        assert entry.source.startswith(("004 §2.4", "004 §2.1")), (
            f"004 §2.4 row {row}: avoid entry for {name} must cite a seed table, cites {entry.source!r}"
        )


# ====================================================================================================
# 4. 004 §2.5 학습 목표별 선호도 (8 rows)
# ====================================================================================================

GOAL_ROWS = [
    # (case id, goal, 추천 옵티마이저 — the first one named when the row names two)
    ("2.5-best_accuracy", "best_accuracy", "sgd_momentum"),  # | 최고 정확도 | SGD + Momentum |
    ("2.5-fast_prototyping", "fast_prototyping", "adam"),  # | 빠른 프로토타이핑 | Adam |
    ("2.5-transfer_learning", "transfer_learning", "adamw"),  # | 전이 학습 | AdamW |
    ("2.5-fine_tuning", "fine_tuning", "adamw"),  # | 파인튜닝 | AdamW |
    ("2.5-zero_shot", "zero_shot", "adamw"),  # | 제로샷 학습 | AdamW |
    ("2.5-multitask", "multitask", "adam"),  # | 멀티태스크 학습 | Adam |
    ("2.5-continual_learning", "continual_learning", "adam"),  # | 연속 학습 | Adam, SGD |
    ("2.5-distributed", "distributed", "lamb"),  # | 분산 학습 | LAMB, SGD |
]


@pytest.mark.parametrize(("row", "goal", "optimizer"), GOAL_ROWS, ids=[r[0] for r in GOAL_ROWS])
def test_2_5_goal_row(row: str, goal: str, optimizer: str) -> None:
    rec = recommend({"goal": goal})
    assert rec.optimizer.name == optimizer, f"004 §2.5 row {row}: 추천 옵티마이저 {optimizer}; {_summary(rec)}"


def test_2_5_fine_tuning_learning_rate_range() -> None:
    # | 파인튜닝 (Fine-tuning) | AdamW | 1e-5 ~ 5e-5 학습률 | 워밍업 짧게 |
    rec = recommend({"goal": "fine_tuning"})
    assert 1e-5 <= _lr(rec) <= 5e-5, f"004 §2.5 row 2.5-fine_tuning: lr within 1e-5 ~ 5e-5; {_summary(rec)}"
    assert rec.search_space["lr"] == pytest.approx([1e-5, 5e-5]), (
        f"004 §2.5 row 2.5-fine_tuning: lr search range 1e-5 ~ 5e-5, got {rec.search_space.get('lr')}"
    )


def test_2_5_fine_tuning_short_warmup() -> None:
    # | 파인튜닝 | ... | 워밍업 짧게 | : a warmup, shorter than the 10% of 004 §6.2 (NLP starting point)
    rec = recommend({"goal": "fine_tuning"})
    assert 0 < rec.schedule.warmup_ratio < 0.1, (
        f"004 §2.5 row 2.5-fine_tuning: 워밍업 짧게 (0 < warmup < 10% of steps); {_summary(rec)}"
    )


def test_2_5_transfer_learning_freezes_or_uses_layerwise_lr() -> None:
    # | 전이 학습 (Transfer Learning) | AdamW | 작은 학습률, 선택적 동결 | 레이어별 학습률 |
    rec = recommend({"goal": "transfer_learning"})
    assert any(g.frozen or g.layerwise_lr_decay is not None for g in rec.param_groups), (
        f"004 §2.5 row 2.5-transfer_learning: a frozen (선택적 동결) or layer-wise lr (레이어별 학습률) param group; "
        f"{_summary(rec)}"
    )


# ====================================================================================================
# 5. 004 §2.1 옵티마이저별 주요 특성 (15 rows)
# ====================================================================================================

# Seed words -> catalog values.
_ORDER = {"1차": "first", "2차": "second"}
_MEMORY = {"없음": "none", "1x": "1x", "2x": "2x", "O(n^2)": "O(n^2)", "중간": "moderate"}
_SENSITIVITY = {"매우 낮음": "very_low", "낮음": "low", "중간": "medium", "높음": "high"}
_SPEED = {"느림": "slow", "중간": "medium", "빠름": "fast", "매우 빠름": "very_fast"}
_GENERALIZATION = {"보통": "fair", "우수": "excellent"}
_STATE = {"없음": 0, "1x": 1, "2x": 2}  # memory column -> optimizer-state values per parameter

CATALOG_ROWS = [
    # (case id, catalog name, 차수, 메모리 오버헤드, 하이퍼파라미터 민감도, 수렴 속도, 일반화 성능) — verbatim
    ("2.1-SGD", "sgd", "1차", "없음", "높음", "느림", "우수"),
    ("2.1-SGD+Momentum", "sgd_momentum", "1차", "1x", "중간", "중간", "우수"),
    ("2.1-NAG", "nag", "1차", "1x", "중간", "중간", "우수"),
    ("2.1-Adagrad", "adagrad", "1차", "1x", "낮음", "빠름", "보통"),
    ("2.1-RMSprop", "rmsprop", "1차", "1x", "낮음", "빠름", "보통"),
    ("2.1-Adam", "adam", "1차", "2x", "낮음", "빠름", "보통"),
    ("2.1-AdamW", "adamw", "1차", "2x", "낮음", "빠름", "우수"),
    ("2.1-AdaMax", "adamax", "1차", "2x", "낮음", "빠름", "보통"),
    ("2.1-Nadam", "nadam", "1차", "2x", "낮음", "빠름", "보통"),
    ("2.1-RAdam", "radam", "1차", "2x", "매우 낮음", "빠름", "우수"),
    ("2.1-AdaBound", "adabound", "1차", "2x", "낮음", "빠름", "우수"),
    ("2.1-LAMB", "lamb", "1차", "2x", "중간", "빠름", "우수"),
    ("2.1-Newton", "newton", "2차", "O(n^2)", "낮음", "매우 빠름", "우수"),
    ("2.1-L-BFGS", "lbfgs", "2차", "중간", "중간", "빠름", "우수"),
    ("2.1-K-FAC", "kfac", "2차", "중간", "중간", "빠름", "우수"),
]


@pytest.mark.parametrize(
    ("row", "name", "order", "memory", "sensitivity", "convergence", "generalization"),
    CATALOG_ROWS,
    ids=[r[0] for r in CATALOG_ROWS],
)
def test_2_1_catalog_row(
    row: str, name: str, order: str, memory: str, sensitivity: str, convergence: str, generalization: str
) -> None:
    spec = default_rulebook().optimizers[name]
    assert spec.order == _ORDER[order], f"004 §2.1 row {row}: 차수 {order}"
    assert spec.memory_overhead == _MEMORY[memory], f"004 §2.1 row {row}: 메모리 오버헤드 {memory}"
    assert spec.sensitivity == _SENSITIVITY[sensitivity], f"004 §2.1 row {row}: 하이퍼파라미터 민감도 {sensitivity}"
    assert spec.convergence == _SPEED[convergence], f"004 §2.1 row {row}: 수렴 속도 {convergence}"
    assert spec.generalization == _GENERALIZATION[generalization], f"004 §2.1 row {row}: 일반화 성능 {generalization}"
    if memory in _STATE:
        assert spec.state_multiplier == _STATE[memory], (
            f"004 §2.1 row {row}: memory column {memory} means {_STATE[memory]} state values per parameter, "
            f"catalog has {spec.state_multiplier}"
        )


# ====================================================================================================
# 6. 004 §6.2 일반 원칙: starting points and learning-rate schedules
# ====================================================================================================

STARTING_POINTS = [
    # (case id, profile, optimizer, hyperparameters, warmup steps for the profile's total_steps or None)
    # "CV (CNN): SGD + Momentum (η=0.1, momentum=0.9)"
    (
        "6.2-CV-CNN",
        {"domain": "computer_vision", "architecture": "cnn"},
        "sgd_momentum",
        {"lr": 0.1, "momentum": 0.9},
        None,
    ),
    # "CV (ViT): AdamW (η=10^-3, weight decay=0.05)"
    (
        "6.2-CV-ViT",
        {"domain": "computer_vision", "architecture": "vit"},
        "adamw",
        {"lr": 1e-3, "weight_decay": 0.05},
        None,
    ),
    # "NLP: AdamW (η=5×10^-5, warmup=10% steps)": 10% of 1000 steps
    ("6.2-NLP", {"domain": "nlp", "total_steps": 1000}, "adamw", {"lr": 5e-5}, 100),
    # "RL: RMSprop (η=7×10^-4) 또는 Adam"
    ("6.2-RL", {"domain": "reinforcement_learning"}, "rmsprop", {"lr": 7e-4}, None),
    # "잘 모르겠다면: Adam (β1=0.9, β2=0.999, η=10^-3)"
    ("6.2-unknown", {}, "adam", {"lr": 1e-3, "betas": [0.9, 0.999]}, None),
]


@pytest.mark.parametrize(
    ("row", "profile", "optimizer", "hyperparameters", "warmup_steps"),
    STARTING_POINTS,
    ids=[r[0] for r in STARTING_POINTS],
)
def test_6_2_starting_point(
    row: str, profile: Profile, optimizer: str, hyperparameters: dict[str, Any], warmup_steps: int | None
) -> None:
    rec = recommend(profile)
    assert rec.optimizer.name == optimizer, f"004 §6.2 {row}: starting optimizer {optimizer}; {_summary(rec)}"
    for key, value in hyperparameters.items():
        assert key in rec.optimizer.hyperparameters, f"004 §6.2 {row}: {key}={value} missing; {_summary(rec)}"
        assert rec.optimizer.hyperparameters[key] == pytest.approx(value), (
            f"004 §6.2 {row}: {key}={value}; {_summary(rec)}"
        )
    if warmup_steps is not None:
        assert rec.schedule.warmup_steps == warmup_steps, (
            f"004 §6.2 {row}: warmup = 10% of {profile['total_steps']} steps = {warmup_steps}; {_summary(rec)}"
        )


# "4. 학습률 스케줄 — SGD: 스텝 감쇠, 코사인 어닐링 / Adam/AdamW: 선형 워밍업 + 선형/코사인 감쇠".
# Applied to every seed row whose optimizer belongs to one of the two families.
SCHEDULE_ROWS = [
    # (case id, profile, family of the row's optimizer: "sgd" or "adam")
    ("6.2-schedule-CV-CNN", {"domain": "computer_vision", "architecture": "cnn"}, "sgd"),  # §6.2 SGD + Momentum
    ("6.2-schedule-CV-ViT", {"domain": "computer_vision", "architecture": "vit"}, "adam"),  # §6.2 AdamW
    ("6.2-schedule-NLP", {"domain": "nlp"}, "adam"),  # §6.2 AdamW
    ("6.2-schedule-unknown", {}, "adam"),  # §6.2 Adam
    ("6.2-schedule-2.3-ResNet", {"architecture": "resnet"}, "sgd"),  # §2.3 SGD + Momentum
    ("6.2-schedule-2.3-ViT", {"architecture": "vit"}, "adam"),  # §2.3 AdamW
    ("6.2-schedule-2.3-BERT", {"architecture": "bert"}, "adam"),  # §2.3 AdamW
    ("6.2-schedule-2.3-GPT", {"architecture": "gpt"}, "adam"),  # §2.3 AdamW
    ("6.2-schedule-2.3-LSTM", {"architecture": "lstm"}, "adam"),  # §2.3 Adam
    ("6.2-schedule-2.3-GAN-Generator", {"architecture": "gan_generator"}, "adam"),  # §2.3 Adam
    ("6.2-schedule-2.3-GAN-Discriminator", {"architecture": "gan_discriminator"}, "adam"),  # §2.3 Adam
    ("6.2-schedule-2.3-U-Net", {"architecture": "unet"}, "adam"),  # §2.3 Adam
    ("6.2-schedule-2.3-YOLO", {"architecture": "yolo"}, "sgd"),  # §2.3 SGD + Momentum
    ("6.2-schedule-2.3-Mask-R-CNN", {"architecture": "mask_rcnn"}, "sgd"),  # §2.3 SGD + Momentum
    ("6.2-schedule-2.3-PPO", {"architecture": "ppo"}, "adam"),  # §2.3 Adam
    ("6.2-schedule-2.2-LLM", {"domain": "llm"}, "adam"),  # §2.2 AdamW
    # §2.2 Adam
    ("6.2-schedule-2.2-RL-policy", {"domain": "reinforcement_learning", "rl_method": "policy_based"}, "adam"),
    ("6.2-schedule-2.2-Recommender-deep", {"domain": "recommender", "architecture": "mlp"}, "adam"),  # §2.2 Adam
    ("6.2-schedule-2.2-TimeSeries-RNN", {"domain": "time_series", "architecture": "rnn"}, "adam"),  # §2.2 Adam
    # §2.2 AdamW
    ("6.2-schedule-2.2-TimeSeries-Transformer", {"domain": "time_series", "architecture": "transformer"}, "adam"),
    ("6.2-schedule-2.2-Memory-limited", {"memory_limited": True}, "sgd"),  # §2.2 SGD
    ("6.2-schedule-2.2-On-device", {"on_device": True}, "sgd"),  # §2.2 SGD
]


@pytest.mark.parametrize(("row", "profile", "family"), SCHEDULE_ROWS, ids=[r[0] for r in SCHEDULE_ROWS])
def test_6_2_schedule_per_family(row: str, profile: Profile, family: str) -> None:
    rec = recommend(profile)
    if family == "sgd":
        assert rec.optimizer.name in SGD_FAMILY, f"004 {row}: an SGD-family optimizer; {_summary(rec)}"
        assert rec.schedule.name in ("step", "cosine"), (
            f"004 §6.2 schedules, {row}: SGD -> 스텝 감쇠 or 코사인 어닐링; {_summary(rec)}"
        )
    else:
        assert rec.optimizer.name in ADAM_FAMILY, f"004 {row}: Adam or AdamW; {_summary(rec)}"
        assert rec.schedule.warmup_ratio > 0, f"004 §6.2 schedules, {row}: Adam/AdamW -> 선형 워밍업; {_summary(rec)}"
        assert rec.schedule.name in ("linear", "cosine"), (
            f"004 §6.2 schedules, {row}: Adam/AdamW -> 선형/코사인 감쇠; {_summary(rec)}"
        )


def test_6_2_radam_needs_no_warmup() -> None:
    # "RAdam: 워밍업 없이도 가능"
    assert default_rulebook().optimizers["radam"].warmup is False, "004 §6.2 schedules: RAdam 워밍업 없이도 가능"


# ====================================================================================================
# 7. 004 §6.3 하이퍼파라미터 튜닝 우선순위
# ====================================================================================================

# 1순위 학습률, 2순위 배치 크기, 3순위 가중치 감쇠, 4순위 모멘텀 계수
TUNING_PRIORITY = ["lr", "batch_size", "weight_decay", "momentum"]

SEARCH_PROFILES = [
    # (case id, profile) — a spread of SGD, Adam and AdamW recommendations
    ("6.3-ResNet", {"architecture": "resnet"}),
    ("6.3-ResNet-batch-1024", {"architecture": "resnet", "batch_size": 1024}),
    ("6.3-YOLO", {"architecture": "yolo"}),
    ("6.3-CV-CNN", {"domain": "computer_vision", "architecture": "cnn"}),
    ("6.3-ViT", {"architecture": "vit"}),
    ("6.3-BERT", {"architecture": "bert"}),
    ("6.3-BERT-batch-128", {"architecture": "bert", "batch_size": 128}),
    ("6.3-GPT", {"architecture": "gpt"}),
    ("6.3-LSTM", {"architecture": "lstm"}),
    ("6.3-NLP", {"domain": "nlp"}),
    ("6.3-RL", {"domain": "reinforcement_learning"}),
    ("6.3-memory-limited", {"memory_limited": True}),
    ("6.3-unknown", {}),
    ("6.3-fine-tuning", {"goal": "fine_tuning"}),
]


@pytest.mark.parametrize(("row", "profile"), SEARCH_PROFILES, ids=[r[0] for r in SEARCH_PROFILES])
def test_6_3_search_space_priority_order(row: str, profile: Profile) -> None:
    rec = recommend(profile)
    keys = list(rec.search_space)
    assert keys == [k for k in TUNING_PRIORITY if k in keys], (
        f"004 §6.3 {row}: search space keys in priority order {TUNING_PRIORITY}, got {keys}"
    )
    assert "lr" in keys, f"004 §6.3 {row}: 1순위 학습률 must be in the search space, got {keys}"


@pytest.mark.parametrize(("row", "profile"), SEARCH_PROFILES, ids=[r[0] for r in SEARCH_PROFILES])
def test_6_3_search_space_ranges(row: str, profile: Profile) -> None:
    rec = recommend(profile)
    space = rec.search_space
    if rec.optimizer.name in ADAM_FAMILY:
        # "3순위: 가중치 감쇠 — Adam/AdamW: [10^-2, 10^-1]"
        assert space.get("weight_decay") == pytest.approx([0.01, 0.1]), (
            f"004 §6.3 {row}: Adam/AdamW weight decay range [1e-2, 1e-1], got {space.get('weight_decay')}"
        )
    if rec.optimizer.name in ("sgd_momentum", "nag"):
        # "4순위: 모멘텀 계수 — SGD: [0.9, 0.99]"
        assert space.get("momentum") == pytest.approx([0.9, 0.99]), (
            f"004 §6.3 {row}: SGD momentum range [0.9, 0.99], got {space.get('momentum')}"
        )
    low, high = space["lr"]
    assert low <= _lr(rec) <= high, f"004 §6.3 {row}: the recommended lr {_lr(rec)} lies inside the lr search range"


# "1순위: 학습률 — 로그 스케일로 탐색: [10^-5, 10^-1]": the engine searches one decade either side of the
# recommended lr, clipped to this range.  Only an lr that §2.3 + §6.4.3 themselves put outside the range
# (ResNet's 0.1 scaled linearly to 0.4 at batch 1024) widens it, and then only up to that lr.
LR_RANGE_ROWS = [
    # (case id, profile) — unscaled rows
    pytest.param({"architecture": "resnet"}, id="6.3-lr-range-2.3-ResNet"),
    pytest.param({"architecture": "efficientnet"}, id="6.3-lr-range-2.3-EfficientNet"),
    pytest.param({"architecture": "vit"}, id="6.3-lr-range-2.3-ViT"),
    pytest.param({"architecture": "bert"}, id="6.3-lr-range-2.3-BERT"),
    pytest.param({"architecture": "gpt"}, id="6.3-lr-range-2.3-GPT"),
    pytest.param({"architecture": "yolo"}, id="6.3-lr-range-2.3-YOLO"),
    pytest.param({"architecture": "mask_rcnn"}, id="6.3-lr-range-2.3-Mask-R-CNN"),
    pytest.param({"architecture": "unet"}, id="6.3-lr-range-2.3-U-Net"),
    pytest.param({"architecture": "dqn"}, id="6.3-lr-range-2.3-DQN"),
    pytest.param({}, id="6.3-lr-range-6.2-unknown"),
    pytest.param({"goal": "fine_tuning"}, id="6.3-lr-range-2.5-fine_tuning"),
]


@pytest.mark.parametrize("profile", LR_RANGE_ROWS)
def test_6_3_lr_search_range_within_seed_range(profile: Profile) -> None:
    rec = recommend(profile)
    low, high = rec.search_space["lr"]
    assert low >= 1e-5 * (1 - 1e-9) and high <= 1e-1 * (1 + 1e-9), (
        f"004 §6.3 1순위 학습률: log-scale search within [1e-5, 1e-1] for {profile}, got [{low}, {high}]"
    )


def test_6_3_lr_range_widens_only_to_a_scaled_lr_outside_it() -> None:
    rec = recommend({"architecture": "resnet", "batch_size": 1024})
    low, high = rec.search_space["lr"]
    assert rec.optimizer.hyperparameters["lr"] == pytest.approx(0.4)
    assert low >= 1e-5 and high == pytest.approx(0.4), f"004 §6.3 + §6.4.3: range {low}-{high} ends at the scaled lr"


# ====================================================================================================
# 8. 004 §6.4.2 옵티마이저 전환 전략 (Adam → SGD)
# ====================================================================================================


def test_6_4_2_best_accuracy_switches_to_sgd() -> None:
    # "Adam으로 빠르게 좋은 영역 도달 / SGD로 전환하여 일반화 성능 향상"
    rec = recommend({"architecture": "vit", "goal": "best_accuracy", "total_steps": 1000})
    assert len(rec.phases) == 2, f"004 §6.4.2: an adaptive phase then an SGD phase; phases {rec.phases}"
    assert rec.phases[0].optimizer.name in ADAM_FAMILY, f"004 §6.4.2: start with Adam/AdamW; phases {rec.phases}"
    assert rec.phases[-1].optimizer.name == "sgd_momentum", (
        f"004 §6.4.2: finish with SGD + momentum (SGD_with_momentum); phases {rec.phases}"
    )


# ====================================================================================================
# 9. 004 §6.4.3 배치 크기와 학습률의 관계
# ====================================================================================================

SCALING_ROWS = [
    # (case id, profile, rule or None (not checked), expected lr, expected factor)
    # 선형 스케일링: η_new = η_base × B_new / B_base, from §2.3 ResNet (0.1 @ 256)
    ("6.4.3-ResNet-1024-linear", {"architecture": "resnet", "batch_size": 1024}, "linear", 0.1 * 1024 / 256, 4.0),
    # "매우 큰 배치(>8K)에서는 제곱근 스케일링": η_base × sqrt(B_new / B_base)
    (
        "6.4.3-ResNet-16384-sqrt",
        {"architecture": "resnet", "batch_size": 16384},
        "sqrt",
        0.1 * math.sqrt(16384 / 256),
        math.sqrt(16384 / 256),
    ),
    # adaptive optimizer (AdamW, §2.3 BERT 5e-5 @ 32): square-root scaling
    ("6.4.3-BERT-128-sqrt", {"architecture": "bert", "batch_size": 128}, "sqrt", 5e-5 * 2, 2.0),
    # §2.3 ViT: 1e-3 for batches 512-4096, so 1024 keeps the lr
    ("6.4.3-ViT-1024-in-range", {"architecture": "vit", "batch_size": 1024}, None, 1e-3, 1.0),
    # ... and 8192 scales from the top of the range (4096), by the square root
    (
        "6.4.3-ViT-8192-sqrt",
        {"architecture": "vit", "batch_size": 8192},
        "sqrt",
        1e-3 * math.sqrt(8192 / 4096),
        math.sqrt(2),
    ),
]


@pytest.mark.parametrize(("row", "profile", "rule", "lr", "factor"), SCALING_ROWS, ids=[r[0] for r in SCALING_ROWS])
def test_6_4_3_batch_scaling(row: str, profile: Profile, rule: str | None, lr: float, factor: float) -> None:
    rec = recommend(profile)
    if rule is not None:
        assert rec.lr_scaling.rule == rule, f"004 §6.4.3 {row}: {rule} scaling; got {rec.lr_scaling}"
    assert rec.lr_scaling.factor == pytest.approx(factor, rel=1e-5), (
        f"004 §6.4.3 {row}: factor {factor}; {rec.lr_scaling}"
    )
    assert _lr(rec) == pytest.approx(lr, rel=1e-5), f"004 §6.4.3 {row}: lr {lr}; {_summary(rec)}"


@pytest.mark.parametrize(
    ("profile", "says"),
    [
        ({"architecture": "resnet"}, "no batch size given"),
        ({"domain": "recommender", "architecture": "embedding", "batch_size": 256}, "names no reference batch size"),
    ],
    ids=["no-batch-in-profile", "no-batch-in-table-row"],
)
def test_6_4_3_an_unscaled_lr_says_which_batch_is_missing(profile: Profile, says: str) -> None:
    rec = recommend(profile)
    assert rec.lr_scaling.rule == "none" and rec.lr_scaling.factor == 1.0
    assert says in rec.lr_scaling.reason, rec.lr_scaling.reason


# ====================================================================================================
# 10. Seeds 000-003: the selection guides and 003's learning rates
# ====================================================================================================

GUIDE_ROWS = [
    # (case id, profile, acceptable first choices)
    ("000-guide-most-cases", {}, ("adam",)),  # "대부분의 경우: Adam (권장)"
    ("000-guide-sparse-data", {"data": ["sparse_features"]}, ("adagrad",)),  # "희소한 데이터: Adagrad"
    # "작은 데이터셋, 간단한 모델: SGD 또는 Momentum"
    ("000-guide-small-data-simple-model", {"dataset_size": 1000, "num_parameters": 10000}, ("sgd", "sgd_momentum")),
]


@pytest.mark.parametrize(("row", "profile", "choices"), GUIDE_ROWS, ids=[r[0] for r in GUIDE_ROWS])
def test_000_selection_guide(row: str, profile: Profile, choices: tuple[str, ...]) -> None:
    rec = recommend(profile)
    assert rec.optimizer.name in choices, f"{row}: expected one of {choices}; {_summary(rec)}"


def test_000_small_data_guide_puts_momentum_before_plain_sgd() -> None:
    # 000's comparison table: Momentum converges faster (빠름 vs 보통) and is more stable (보통 vs 낮음) than SGD
    rec = recommend({"dataset_size": 442, "num_parameters": 4929, "architecture": "mlp"})
    assert rec.optimizer.name == "sgd_momentum", _summary(rec)
    assert "sgd" in [a.name for a in rec.alternatives], _summary(rec)


def test_000_004_rnn_guide() -> None:
    # 000 "순환 신경망(RNN): RMSProp"; 004 §2.2 시계열 (RNN/LSTM) Adam, RMSprop; §5.7 "Adam/RMSprop"
    rec = recommend({"architecture": "rnn"})
    first_two = [rec.optimizer.name] + [a.name for a in rec.alternatives[:1]]
    assert rec.optimizer.name in ("adam", "rmsprop"), f"000/004 RNN guide: Adam or RMSprop first; {_summary(rec)}"
    assert sorted(first_two) == ["adam", "rmsprop"], (
        f"000/004 RNN guide: Adam and RMSprop are the first two; {_summary(rec)}"
    )


CATALOG_LR_ROWS = [
    # (case id, optimizer, lr, momentum or None) — 003's torch.optim examples
    ("003-SGD", "sgd", 0.01, None),  # torch.optim.SGD(model.parameters(), lr=0.01)
    ("003-Momentum", "sgd_momentum", 0.01, 0.9),  # torch.optim.SGD(..., lr=0.01, momentum=0.9)
    ("003-AdaGrad", "adagrad", 0.01, None),  # torch.optim.Adagrad(..., lr=0.01)
    ("003-RMSprop", "rmsprop", 0.001, None),  # torch.optim.RMSprop(..., lr=0.001)
    ("003-Adam", "adam", 0.001, None),  # torch.optim.Adam(..., lr=0.001)
]


@pytest.mark.parametrize(("row", "name", "lr", "momentum"), CATALOG_LR_ROWS, ids=[r[0] for r in CATALOG_LR_ROWS])
def test_003_catalog_default_lr(row: str, name: str, lr: float, momentum: float | None) -> None:
    defaults = default_rulebook().optimizers[name].defaults
    assert defaults.lr == pytest.approx(lr), f"{row}: catalog default lr {lr}, got {defaults.lr}"
    if momentum is not None:
        assert defaults.momentum == pytest.approx(momentum), f"{row}: momentum {momentum}, got {defaults.momentum}"


# ====================================================================================================
# 11. Memory: 004 §2.1 memory column (Adam/AdamW 2x) and §5.4.1 ("파라미터당 추가 2배 메모리")
# ====================================================================================================

_SEVEN_B = 7_000_000_000
_FP32 = 4  # bytes per optimizer-state value: 7B x 2 x 4 bytes = 56 GB


def test_2_1_llm_7b_adamw_state_is_56_gb() -> None:
    rec = recommend({"domain": "llm", "num_parameters": _SEVEN_B})
    assert rec.optimizer.name == "adamw", f"004 §2.2 LLM row: AdamW; {_summary(rec)}"
    assert rec.memory.optimizer_state_bytes == 2 * _FP32 * _SEVEN_B == 56_000_000_000, (
        f"004 §2.1 AdamW row (2x): 7B parameters keep 56 GB of fp32 state; got {rec.memory}"
    )
    assert any("56 GB" in w for w in rec.warnings), f"004 §2.1 AdamW 2x: a warning must say 56 GB; {rec.warnings}"
    assert rec.alternatives, f"004 §2.1: a lower-memory alternative must be offered; {_summary(rec)}"
    first_alt = rec.alternatives[0].name
    assert default_rulebook().state_multiplier(first_alt) < 2, (
        f"004 §2.1 memory column: the first alternative ({first_alt}) must need less state than AdamW's 2x"
    )


def test_2_1_gpt_7b_on_80_gb_fits_the_budget() -> None:
    rec = recommend({"architecture": "gpt", "num_parameters": _SEVEN_B, "device_memory_gb": 80})
    # fp32 weights + gradients take 2 x 4 bytes x 7B = 56 GB; 24 GB are left for optimizer state.
    budget = (80e9 - 2 * _FP32 * _SEVEN_B) / (_FP32 * _SEVEN_B)
    assert rec.optimizer.name not in ADAM_FAMILY, (
        f"004 §2.1 Adam/AdamW 2x ({2 * _FP32 * _SEVEN_B / 1e9:.0f} GB) does not fit next to the weights; "
        f"{_summary(rec)}"
    )
    assert rec.memory.state_multiplier <= budget, (
        f"004 §2.1 memory column: chosen state multiplier {rec.memory.state_multiplier} must fit {budget:.3f}x"
    )
    assert any("adamw" in w.lower() for w in rec.warnings), (
        f"004 §2.3 GPT row (AdamW) vs §2.1 memory: a warning must name the conflict; {rec.warnings}"
    )


MEMORY_GROUP_ROWS = [
    # (case id, profile) — 004 §2.2 memory rows: SGD / Adagrad / SGD + Momentum, all at most 1x (§2.1)
    ("2.2-Memory-limited+recommender", {"domain": "recommender", "memory_limited": True}),
    ("2.2-On-device+recommender", {"domain": "recommender", "on_device": True}),
]


@pytest.mark.parametrize(("row", "profile"), MEMORY_GROUP_ROWS, ids=[r[0] for r in MEMORY_GROUP_ROWS])
def test_2_2_memory_rows_cover_every_param_group(row: str, profile: Profile) -> None:
    rec = recommend(profile)
    book = default_rulebook()
    used = [rec.optimizer.name] + [g.optimizer for g in rec.param_groups if g.optimizer]
    over = [name for name in used if book.state_multiplier(name) > 1]
    assert not over, (
        f"004 §2.2 row {row} (SGD / Adagrad / SGD + Momentum, at most 1x state per §2.1): "
        f"{over} exceed it; {_summary(rec)}"
    )
