"""``ValueLearning``: DQN-style Q-learning on a small deterministic chain MDP, checked against the true Q*."""

from __future__ import annotations

import copy
import math
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from ._common import seeded_model, stream
from .base import Batch, Workload

__all__ = ["Transitions", "ValueLearning"]

_WORLD, _REPLAY, _INDEX = 1, 2, 3


@dataclass(frozen=True)
class Transitions:
    """The targets half of a training batch: what happened after each (state, action)."""

    actions: torch.Tensor  # (B,) long
    rewards: torch.Tensor  # (B,) float
    next_states: torch.Tensor  # (B, S) one-hot
    step: int  # the training step the batch belongs to (drives the target-network refresh)


class ValueLearning(Workload):
    """Q-learning on a chain of ``8 * size`` states with actions left/right (discount ``GAMMA``).

    Moving right from the last state or left from the first stays put. Rewards: a seeded random
    table in [-0.25, 0.25] plus 1 for pushing right at the right end. A replay buffer of
    ``REPLAY * size`` uniformly generated transitions is made once; each step samples a minibatch
    ``(states (B, S) one-hot, Transitions)``. The TD target ``r + γ max_a Q_target(s', a)`` uses a
    target network: a copy of the model being trained, kept inside the workload (one per model),
    refreshed whenever a batch's step enters a new block of ``TARGET_EVERY`` steps. The held-out
    batch is every (state, action) with the true Q* (value iteration); its loss is
    ``mse(Q, Q*)`` and the metric the mean absolute error ``|Q - Q*|``.

    Traits:

    - ``non_stationary``: rewards drift with the step (a sine of period ``DRIFT_PERIOD`` steps and
      amplitude ``DRIFT``, with a random phase per (state, action)); Q* is that of the mean reward;
    - ``noisy``: Gaussian reward noise (σ = ``REWARD_NOISE``) on every replayed transition.
    """

    name: ClassVar[str] = "dqn"
    family: ClassVar[str] = "value"
    description: ClassVar[str] = "DQN-style Q-learning (replay + target network) on a chain MDP, scored against Q*"
    architectures: ClassVar[tuple[str, ...]] = ("dqn", "ppo", "rainbow", "sac", "td3", "a2c", "impala")
    domains: ClassVar[tuple[str, ...]] = ("reinforcement_learning",)
    supported_traits: ClassVar[frozenset[str]] = frozenset({"non_stationary", "noisy"})
    metric_name: str = "q_error"
    higher_is_better: bool = False

    ACTIONS: ClassVar[int] = 2
    GAMMA: ClassVar[float] = 0.8
    REPLAY: ClassVar[int] = 1024
    TARGET_EVERY: ClassVar[int] = 5
    DRIFT: ClassVar[float] = 0.5
    DRIFT_PERIOD: ClassVar[int] = 50
    REWARD_NOISE: ClassVar[float] = 0.5

    def __init__(
        self, *, size: int = 1, seed: int = 0, traits: Sequence[str] = (), device: str | torch.device = "cpu"
    ) -> None:
        super().__init__(size=size, seed=seed, traits=traits, device=device)
        n = self.num_states = 8 * size
        g = stream(seed, 0, _WORLD)
        states = torch.arange(n)
        self.next_state = torch.stack([(states - 1).clamp(min=0), (states + 1).clamp(max=n - 1)], dim=1)  # (S, A)
        self.reward = (torch.rand(n, self.ACTIONS, generator=g) - 0.5) * 0.5
        self.reward[n - 1, 1] += 1.0
        self.drift_phase = torch.rand(n, self.ACTIONS, generator=g) * 2 * math.pi
        self.q_star = self._value_iteration()
        r = stream(seed, 0, _REPLAY)
        count = self.REPLAY * size
        self.replay_states = torch.randint(n, (count,), generator=r)
        self.replay_actions = torch.randint(self.ACTIONS, (count,), generator=r)
        self.replay_noise = torch.zeros(count)
        if "noisy" in self.traits:
            self.replay_noise = self.REWARD_NOISE * torch.randn(count, generator=r)
        self.batch_size = 64 * size
        self._targets: weakref.WeakKeyDictionary[nn.Module, tuple[int, nn.Module]] = weakref.WeakKeyDictionary()

    def _value_iteration(self) -> torch.Tensor:
        reward, q = self.reward.double(), torch.zeros(self.num_states, self.ACTIONS, dtype=torch.float64)
        for _ in range(10_000):
            new = reward + self.GAMMA * q.max(dim=1).values[self.next_state]
            if float((new - q).abs().max()) < 1e-10:
                break
            q = new
        return new.float()

    def _one_hot(self, states: torch.Tensor) -> torch.Tensor:
        return F.one_hot(states, self.num_states).float()

    def build_model(self) -> nn.Module:
        n, hidden = self.num_states, 64 * self.size

        def factory() -> nn.Module:
            layers = [nn.Linear(n, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()]
            return nn.Sequential(*layers, nn.Linear(hidden, self.ACTIONS))

        return seeded_model(self.seed, factory, self.device)

    def train_batch(self, step: int) -> Batch:
        index = torch.randint(len(self.replay_states), (self.batch_size,), generator=stream(self.seed, step, _INDEX))
        states, actions = self.replay_states[index], self.replay_actions[index]
        rewards = self.reward[states, actions] + self.replay_noise[index]
        if "non_stationary" in self.traits:
            rewards = rewards + self.DRIFT * torch.sin(
                2 * math.pi * step / self.DRIFT_PERIOD + self.drift_phase[states, actions]
            )
        targets = Transitions(
            actions.to(self.device),
            rewards.to(self.device),
            self._one_hot(self.next_state[states, actions]).to(self.device),
            step,
        )
        return self._one_hot(states).to(self.device), targets

    def heldout_batches(self) -> list[Batch]:
        return [(self._one_hot(torch.arange(self.num_states)).to(self.device), self.q_star.to(self.device))]

    def target_network(self, model: nn.Module, step: int) -> nn.Module:
        """The target network of ``model`` for ``step``: refreshed from ``model`` on entering a new block of steps."""
        block = step // self.TARGET_EVERY
        held = self._targets.get(model)
        if held is None:
            target = copy.deepcopy(model).requires_grad_(False)
        elif held[0] != block:
            target = held[1]
            target.load_state_dict(model.state_dict())
        else:
            return held[1]
        self._targets[model] = (block, target)
        return target

    def reset_target(self, model: nn.Module) -> None:
        """Forget ``model``'s target network (e.g. after its weights were restored); the next batch copies it anew."""
        self._targets.pop(model, None)

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        states, targets = batch
        q = model(states)
        if not isinstance(targets, Transitions):  # held-out: the whole Q table against Q*
            return F.mse_loss(q, targets)
        with torch.no_grad():
            best_next = self.target_network(model, targets.step)(targets.next_states).max(dim=1).values
            td_target = targets.rewards + self.GAMMA * best_next
        return F.mse_loss(q.gather(1, targets.actions[:, None]).squeeze(1), td_target)

    def metric(self, model: nn.Module, batch: Batch) -> float:
        states, q_star = batch
        return float((model(states) - q_star).abs().mean())
