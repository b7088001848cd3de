"""The `Learner` protocol: turns a replay batch into a loss, metrics and new replay priorities."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from mario_tui.engine.models.base import Model


@dataclass
class LossInfo:
    """What a learner reports beside the loss tensor."""

    metrics: dict[str, float] = field(default_factory=dict)
    """Scalar metrics for the CSV and dashboard (e.g. q_mean, q_loss)."""
    priorities: np.ndarray | None = None
    """New replay priorities for the sampled indices (|TD error|), or None when the learner has none."""


@runtime_checkable
class Learner(Protocol):
    model: Model

    def sample_batch(self, buffer: Any, batch_size: int) -> Any:
        """Draw what `compute_loss` needs from a replay buffer (transitions for DQN, sequences for Dreamer)."""
        ...

    def compute_loss(self, batch: Any) -> tuple[torch.Tensor, LossInfo]:
        """Loss to backpropagate for `batch` (a replay sample), with metrics and per-sample priorities."""
        ...

    def update_targets(self, tau: float | None = None) -> None:
        """Target-network update: hard copy when tau is None or 1, else polyak averaging by tau."""
        ...
