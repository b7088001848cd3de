"""The coordinator: averages worker gradients, steps the optimizer, keeps the target network's schedule.

It is plain synchronous code: `CoordinatorLoop` drives `apply()` from a thread, so an asyncio program (the app)
never blocks on torch work. Gradients that are non-finite or computed against weights more than
`max_staleness` versions old are dropped and counted. The target network follows the online one here and only
here (every `target_update` updates, or by `tau` each update); workers copy the result (`changed_targets`).
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mario_tui.engine.config import RunConfig
from mario_tui.engine.flat import FlatParameters
from mario_tui.engine.learners.base import Learner
from mario_tui.engine.optim import (
    clip_gradients,
    group_norm_metrics,
    make_optimizer,
    make_scheduler,
    param_groups,
    regroup_optimizer_state,
    restart_schedule,
)
from mario_tui.engine.protocol import published_version


@dataclass
class CoordinatorCounters:
    """Counters that survive a resume (saved in checkpoint.pt)."""

    updates: int = 0
    grads_applied: int = 0
    dropped_stale: int = 0
    dropped_nonfinite: int = 0
    env_steps: int = 0
    episodes: int = 0
    best_x_pos: int = 0
    elapsed_s: float = 0.0
    worker_steps: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CoordinatorCounters:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass
class UpdateReport:
    """What one optimizer step did (for metrics)."""

    packets: int
    dropped_stale: int
    dropped_nonfinite: int
    lags: list[int]
    metrics: dict[str, float]
    reset: bool = False  # this update ended with a shrink-and-perturb reset (`reset_every`)


class Coordinator:
    """Owns the authoritative model, optimizer and LR schedule of a run."""

    def __init__(self, config: RunConfig, learner: Learner, device: torch.device,
                 counters: CoordinatorCounters | None = None) -> None:
        self.config = config
        self.learner = learner
        self.model = learner.model
        self.device = device
        self.model.to(device)
        self.flat = FlatParameters(self.model.parameters())
        self.target_flat = FlatParameters(self.model.target_parameters(), grads=False)
        self._targets_changed = True  # workers have not seen them yet
        self.optimizer = make_optimizer(param_groups(self.model, config), device)
        self.scheduler = make_scheduler(self.optimizer, config)
        self.counters = counters or CoordinatorCounters()
        self._host_weights = np.empty(self.flat.numel, dtype=np.float32)
        self._host_targets = np.empty(self.target_flat.numel, dtype=np.float32)
        self._accumulator = np.zeros(self.flat.numel, dtype=np.float32)
        self.recent_lags: deque[int] = deque(maxlen=1000)
        self.last_metrics: dict[str, float] = {}
        self.last_grad_norm = math.nan
        self.last_group_norms: dict[str, float] = {}
        self.update_times: deque[float] = deque(maxlen=200)
        self.ema_weights: torch.Tensor | None = self.flat.weights.detach().clone() if config.eval_ema > 0 else None

    @property
    def numel(self) -> int:
        return self.flat.numel

    @property
    def target_numel(self) -> int:
        return self.target_flat.numel

    @property
    def version(self) -> int:
        """Weights version = number of optimizer updates so far."""
        return self.counters.updates

    @property
    def published_version(self) -> int:
        """Version number workers see: updates + 1, because the broadcast reserves 0 for 'nothing yet'."""
        return published_version(self.counters.updates)

    @property
    def lr(self) -> float:
        """The first group's learning rate (DQN's only one, Dreamer's world model)."""
        return float(self.optimizer.param_groups[0]["lr"])

    @property
    def group_norm_names(self) -> list[str]:
        """Metric names of the per-group gradient norms; none when the model has a single group."""
        return list(group_norm_metrics({group["name"]: math.nan for group in self.optimizer.param_groups}))

    def group_norm_metrics(self) -> dict[str, float]:
        """The last update's gradient norm of each group (before clipping), as `group_norm_names` metrics."""
        return group_norm_metrics(self.last_group_norms)

    def host_weights(self) -> np.ndarray:
        """The current flat weights in host memory (what is published to workers)."""
        if self.flat.weights.device.type == "cpu":
            return self.flat.weights_numpy()
        self._host_weights[:] = self.flat.weights.detach().cpu().numpy()
        return self._host_weights

    def changed_targets(self) -> np.ndarray | None:
        """The target network's flat weights in host memory if they changed since the last call, else None."""
        if not self._targets_changed or self.target_flat.numel == 0:
            return None
        self._targets_changed = False
        if self.target_flat.weights.device.type == "cpu":
            return self.target_flat.weights_numpy()
        self._host_targets[:] = self.target_flat.weights.detach().cpu().numpy()
        return self._host_targets

    def apply(self, packets: list[Any]) -> UpdateReport | None:
        """Filter, average and apply a list of gradient packets (each is released here). None if all dropped."""
        version = self.published_version
        accepted = 0
        stale = nonfinite = 0
        lags: list[int] = []
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        acc = self._accumulator
        for packet in packets:
            try:
                lag = version - int(packet.weights_version)
                if lag > self.config.max_staleness:
                    stale += 1
                    continue
                grad = packet.grad
                if not np.isfinite(grad).all():
                    nonfinite += 1
                    continue
                if accepted == 0:
                    np.copyto(acc, grad)
                else:
                    np.add(acc, grad, out=acc)
                accepted += 1
                lags.append(lag)
                for name, value in packet.metrics.items():
                    if math.isfinite(value):
                        sums[name] = sums.get(name, 0.0) + value
                        counts[name] = counts.get(name, 0) + 1
            finally:
                packet.release()
        self.counters.dropped_stale += stale
        self.counters.dropped_nonfinite += nonfinite
        if accepted == 0:
            return UpdateReport(0, stale, nonfinite, [], {}) if (stale or nonfinite) else None
        acc *= 1.0 / accepted
        reset = self.step(acc)
        self.counters.grads_applied += accepted
        self.recent_lags.extend(lags)
        metrics = {name: sums[name] / counts[name] for name in sums}
        self.last_metrics = metrics
        return UpdateReport(accepted, stale, nonfinite, lags, metrics, reset)

    def step(self, mean_grad: np.ndarray) -> bool:
        """One optimizer step with `mean_grad` as the gradient; then targets, the version counter and, when one is
        due, a shrink-and-perturb reset (True then)."""
        with torch.no_grad():
            self.flat.grads.copy_(torch.from_numpy(mean_grad))
        self.last_grad_norm, self.last_group_norms = clip_gradients(self.optimizer, self.config.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.counters.updates += 1
        if self.ema_weights is not None:
            self.ema_weights.lerp_(self.flat.weights.detach(), self.config.eval_ema)
        if self.config.tau > 0:
            self.learner.update_targets(self.config.tau)
            self._targets_changed = True
        elif self.counters.updates % self.config.target_update == 0:
            self.learner.update_targets(None)
            self._targets_changed = True
        self.update_times.append(time.monotonic())
        # after the target's copy, so that a copy due at the same update takes the trained weights, not the shrunk
        if self.config.reset_every and self.counters.updates % self.config.reset_every == 0:
            self.shrink_and_perturb()
            return True
        return False

    def shrink_and_perturb(self) -> None:
        """w <- reset_shrink * w + (1 - reset_shrink) * w_fresh, with w_fresh a fresh initialisation of the model
        seeded by the run's seed and the update count (a resumed run draws the same). Adam's moments, the moving
        average and the target network keep their values."""
        from mario_tui.engine.registry import build_model  # the registry builds models; it never imports this

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed * 1_000_003 + self.counters.updates)
            fresh, _ = build_model(self.config, self.model.num_actions)
        fresh_weights = torch.nn.utils.parameters_to_vector(fresh.parameters()).detach()  # FlatParameters' order
        with torch.no_grad():
            self.flat.weights.mul_(self.config.reset_shrink)
            self.flat.weights.add_(fresh_weights.to(self.flat.weights.device), alpha=1.0 - self.config.reset_shrink)

    def updates_per_second(self) -> float:
        times = self.update_times
        if len(times) < 2 or times[-1] - times[0] <= 0:
            return 0.0
        window_end = max(times[-1], time.monotonic() - 0.0)
        return (len(times) - 1) / (window_end - times[0])

    def policy_lag(self) -> tuple[float, int]:
        """(mean, max) of version-now minus version-computed-against over recently applied gradients."""
        if not self.recent_lags:
            return (math.nan, 0)
        lags = self.recent_lags
        return (sum(lags) / len(lags), max(lags))

    def evaluation_state(self) -> dict[str, torch.Tensor]:
        """The model's state dict with the weights greedy evaluation plays: the moving average where
        `eval_ema` > 0 (the target network and any buffers as they are), else the online weights."""
        state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        if self.ema_weights is None:
            return state
        names = {id(p): name for name, p in self.model.named_parameters()}
        offset = 0
        for p in self.flat.params:
            n = p.numel()
            state[names[id(p)]] = self.ema_weights[offset:offset + n].view_as(p).clone()
            offset += n
        return state

    # --- checkpoint state ---------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        state = {
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "counters": self.counters.to_dict(),
        }
        if self.ema_weights is not None:
            state["ema_weights"] = self.ema_weights.detach().cpu().clone()
        return state

    def load_state(self, data: dict[str, Any]) -> None:
        self.model.load_state_dict(data["model"])
        if self.ema_weights is not None:
            ema = data.get("ema_weights")
            fits = isinstance(ema, torch.Tensor) and ema.numel() == self.flat.numel
            # a checkpoint from a run without the average (or another model size) starts it from the weights
            self.ema_weights.copy_(ema if fits else self.flat.weights.detach())
        self.optimizer.load_state_dict(regroup_optimizer_state(data["optimizer"], self.optimizer))
        if "scheduler" in data:
            self.scheduler.load_state_dict(data["scheduler"])
            restart_schedule(self.scheduler, self.optimizer)
        self.counters = CoordinatorCounters.from_dict(data["counters"])
        self._targets_changed = True
