"""The `Model` protocol: what workers, the coordinator and the replay viewer need from any model."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch

Network = Literal["online", "target"]


@runtime_checkable
class Model(Protocol):
    """A policy network (plus whatever auxiliary networks its learner needs).

    Observations are uint8 tensors shaped (B, stack, H, W); models scale them to [0, 1] themselves so
    callers never copy frames as floats.
    """

    num_actions: int
    last_values: np.ndarray | None
    """Per-action values (B, num_actions) behind the last `select_action` call (Q-values or policy logits);
    the replay viewer shows them. None when every action of that call was random."""

    def reset_state(self, batch_size: int = 1) -> None:
        """Start of an episode: recurrent models clear the state they carry between steps (no-op for DQN)."""
        ...

    def forward(self, x: torch.Tensor, network: Network = "online") -> torch.Tensor:
        """Per-action values (B, num_actions): Q-values for DQN, action logits for actor-critic models."""
        ...

    def select_action(self, x: torch.Tensor, epsilon: float) -> np.ndarray:
        """Epsilon-greedy (or sampled) actions, one per row of `x`, as an int64 array. Recurrent models advance
        their carried state here (the returned actions are the ones the env will execute)."""
        ...

    def sync_target(self) -> None:
        """Copy online weights into the target network(s) (hard update)."""
        ...

    def target_parameters(self) -> Iterator[torch.nn.Parameter]:
        """The target network(s)' tensors, in a fixed order: the coordinator publishes them flat in this layout
        and workers copy them, so every worker learns against the coordinator's own target."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> Any: ...

    def parameters(self) -> Iterator[torch.nn.Parameter]:
        """The trainable parameters, in a fixed order: the flat gradient/weights layout follows it."""
        ...

    def param_groups(self) -> dict[str, list[torch.nn.Parameter]]:
        """`parameters()` split into named groups, in the same order: each gets its own learning rate and its own
        gradient clipping (DQN has one group)."""
        ...

    def to(self, device: torch.device | str) -> Model: ...
