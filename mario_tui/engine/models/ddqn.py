"""Dueling Double DQN: Nature-style conv trunk, separate value/advantage streams, softsign-bounded Q; optionally
the previous action as an input beside the conv features, and optionally a distribution of returns per action
(quantiles, as QR-DQN) instead of its mean alone."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from mario_tui.engine.models.base import Network

NOOP_ACTION = 0
"""The no-op's index in every action set: the previous action at an episode's start."""


def nature_trunk(in_channels: int, width: int) -> nn.Sequential:
    """The DQN (Nature 2015) conv stack; `width` scales the channels (32 → 32, 64, 64)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, width, kernel_size=8, stride=4),
        nn.ReLU(inplace=True),
        nn.Conv2d(width, 2 * width, kernel_size=4, stride=2),
        nn.ReLU(inplace=True),
        nn.Conv2d(2 * width, 2 * width, kernel_size=3, stride=1),
        nn.ReLU(inplace=True),
        nn.Flatten(),
    )


def conv_output_size(trunk: nn.Module, in_channels: int, frame_size: int) -> int:
    with torch.no_grad():
        return int(trunk(torch.zeros(1, in_channels, frame_size, frame_size)).shape[1])


def bounded(q: torch.Tensor, q_scale: float) -> torch.Tensor:
    """softsign squashing into (-q_scale, q_scale); ~identity for |q| << q_scale, so targets stay finite."""
    return q_scale * F.softsign(q / q_scale)


class DuelingQNetwork(nn.Module):
    """Q(s, a) = V(s) + A(s, a) - mean_a A(s, a), then softsign-bounded.

    With `prev_action_codes` (one row of numbers per action, e.g. the buttons it holds), both streams also see
    the previous action's row beside the conv features (see `RunConfig.prev_action`); rows without a previous
    action (None) count as after a no-op, as at an episode's start.

    With `num_quantiles` N > 0 both streams put out N values per action instead of one: the quantiles of the
    return at the midpoints (2i + 1) / 2N (QR-DQN, Dabney et al. 2017), combined and bounded quantile by quantile;
    `forward` then gives their mean, so acting, evaluation and playback see Q-values as before.

    With `bf16_trunk` the conv trunk (~80 % of the multiply-adds) runs in bfloat16 under autocast and its
    features return to float32, so the heads, the Q-values and the TD errors keep full precision: bfloat16's
    8-bit mantissa would round a Q-value near 5 to steps of ~0.03, the size of many TD errors.
    """

    def __init__(self, in_channels: int, num_actions: int, frame_size: int, conv_width: int = 32,
                 hidden_size: int = 256, q_scale: float = 100.0,
                 prev_action_codes: Sequence[Sequence[float]] | None = None, bf16_trunk: bool = False,
                 num_quantiles: int = 0) -> None:
        super().__init__()
        self.q_scale = float(q_scale)
        self.num_quantiles = int(num_quantiles)
        outputs = max(self.num_quantiles, 1)
        self.bf16_trunk = bool(bf16_trunk)
        self.num_actions = num_actions
        self.prev_action = prev_action_codes is not None
        codes = torch.tensor(prev_action_codes if self.prev_action else [[]] * num_actions, dtype=torch.float32)
        if codes.shape[0] != num_actions:
            raise ValueError(f"prev_action_codes needs one row per action ({num_actions}), got {codes.shape[0]}")
        # Not persistent: the codes follow from the run's action set, and weights files keep only what was learned
        # (a weights.pt from before this input has no such key and must load strictly).
        self.register_buffer("prev_action_codes", codes, persistent=False)
        self.trunk = nature_trunk(in_channels, conv_width)
        features = conv_output_size(self.trunk, in_channels, frame_size) + codes.shape[1]
        self.value = nn.Sequential(nn.Linear(features, hidden_size), nn.ReLU(inplace=True),
                                   nn.Linear(hidden_size, outputs))
        self.advantage = nn.Sequential(nn.Linear(features, hidden_size), nn.ReLU(inplace=True),
                                       nn.Linear(hidden_size, num_actions * outputs))

    def forward(self, obs: torch.Tensor, prev_actions: torch.Tensor | None = None) -> torch.Tensor:
        """Q-values (B, actions): with quantiles, the mean of each action's quantiles."""
        if self.num_quantiles:
            return self.quantiles(obs, prev_actions).mean(dim=2)
        return self.combine(*self.streams(obs, prev_actions))

    def quantiles(self, obs: torch.Tensor, prev_actions: torch.Tensor | None = None) -> torch.Tensor:
        """Return quantiles (B, actions, N); only for a network built with `num_quantiles` > 0."""
        if not self.num_quantiles:
            raise ValueError("this Q-network has no quantile outputs (num_quantiles=0)")
        value, advantage = self.streams(obs, prev_actions)
        batch = value.shape[0]
        return self.combine(value.view(batch, 1, self.num_quantiles),
                            advantage.view(batch, self.num_actions, self.num_quantiles))

    def streams(self, obs: torch.Tensor, prev_actions: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The value and advantage streams' raw outputs, before they are combined."""
        if self.bf16_trunk:
            with torch.autocast(obs.device.type, dtype=torch.bfloat16):
                x = self.trunk(obs.float() / 255.0).float()
        else:  # the acting hot path: no autocast context to enter
            x = self.trunk(obs.float() / 255.0)
        if self.prev_action:
            if prev_actions is None:
                prev_actions = torch.full((x.shape[0],), NOOP_ACTION, dtype=torch.long, device=x.device)
            x = torch.cat([x, self.prev_action_codes[prev_actions.long()]], dim=1)
        return self.value(x), self.advantage(x)

    def combine(self, value: torch.Tensor, advantage: torch.Tensor) -> torch.Tensor:
        return bounded(value + advantage - advantage.mean(dim=1, keepdim=True), self.q_scale)


class DuelingDDQN(nn.Module):
    """Online and target Q-networks behind the `Model` protocol.

    `parameters()` yields only the online network's parameters: they are what the optimizer steps and
    what the flat gradient/weights layout is built from. `state_dict()` holds both networks.
    With `prev_action`, the only state carried between steps is the action `select_action` returned last.
    """

    def __init__(self, in_channels: int, num_actions: int, frame_size: int, conv_width: int = 32,
                 hidden_size: int = 256, q_scale: float = 100.0, seed: int | None = None,
                 prev_action_codes: Sequence[Sequence[float]] | None = None, bf16_trunk: bool = False,
                 num_quantiles: int = 0) -> None:
        super().__init__()
        self.num_actions = num_actions
        self.online = DuelingQNetwork(in_channels, num_actions, frame_size, conv_width, hidden_size, q_scale,
                                      prev_action_codes, bf16_trunk, num_quantiles)
        self.target = DuelingQNetwork(in_channels, num_actions, frame_size, conv_width, hidden_size, q_scale,
                                      prev_action_codes, bf16_trunk, num_quantiles)
        self.target.requires_grad_(False)
        self.sync_target()
        self._rng = np.random.default_rng(seed)
        self.last_values: np.ndarray | None = None
        self._last_actions = np.full(1, NOOP_ACTION, dtype=np.int64)

    def reset_state(self, batch_size: int = 1) -> None:
        """An episode starts: the previous action is a no-op (the only state DQN carries)."""
        self._last_actions = np.full(batch_size, NOOP_ACTION, dtype=np.int64)

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]:  # type: ignore[override]
        return self.online.parameters(recurse)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"q": list(self.online.parameters())}

    def forward(self, x: torch.Tensor, network: Network = "online",
                prev_actions: torch.Tensor | None = None) -> torch.Tensor:
        net = self.online if network == "online" else self.target
        return net(x, prev_actions)

    def quantiles(self, x: torch.Tensor, network: Network = "online",
                  prev_actions: torch.Tensor | None = None) -> torch.Tensor:
        """Return quantiles (B, actions, N) of the online or target network (built with `num_quantiles` > 0)."""
        net = self.online if network == "online" else self.target
        return net.quantiles(x, prev_actions)

    @torch.no_grad()
    def select_action(self, x: torch.Tensor, epsilon: float) -> np.ndarray:
        """Epsilon-greedy over the online network; `x` is a uint8 batch (B, stack, H, W). The returned actions are
        the previous actions of the next call (`reset_state` at an episode's start)."""
        batch = x.shape[0]
        if len(self._last_actions) != batch:
            self.reset_state(batch)
        explore = self._rng.random(batch) < epsilon
        actions = self._rng.integers(0, self.num_actions, size=batch)
        self.last_values = None
        if not explore.all():
            q = self.online(x, torch.from_numpy(self._last_actions).to(x.device))
            self.last_values = q.cpu().numpy()
            actions = np.where(explore, actions, self.last_values.argmax(axis=1))
        self._last_actions = actions.astype(np.int64)
        return self._last_actions.copy()

    def sync_target(self) -> None:
        self.target.load_state_dict(self.online.state_dict())

    def target_parameters(self) -> Iterator[nn.Parameter]:
        return self.target.parameters()

    @torch.no_grad()
    def soft_update_target(self, tau: float) -> None:
        """Polyak averaging: target ← (1 - tau) · target + tau · online."""
        torch._foreach_lerp_(list(self.target.parameters()), list(self.online.parameters()), tau)
