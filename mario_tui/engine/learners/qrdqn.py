"""Quantile-regression Double DQN (QR-DQN, Dabney et al. 2017) on n-step returns, weighted by PER's IS weights."""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F

from mario_tui.engine.learners.base import LossInfo
from mario_tui.engine.learners.ddqn import DDQNLearner


def quantile_huber_loss(quantiles: torch.Tensor, targets: torch.Tensor, kappa: float = 1.0) -> torch.Tensor:
    """Per-sample quantile Huber loss (B,) of `quantiles` (B, N) at the midpoints (2i + 1) / 2N against the target
    samples `targets` (B, M): summed over the N quantiles, averaged over the M targets (the paper's estimator)."""
    n = quantiles.shape[1]
    taus = (torch.arange(n, device=quantiles.device, dtype=quantiles.dtype) + 0.5) / n
    errors = targets.unsqueeze(1) - quantiles.unsqueeze(2)  # (B, N, M): target j minus quantile i
    huber = F.huber_loss(quantiles.unsqueeze(2).expand_as(errors), targets.unsqueeze(1).expand_as(errors),
                         reduction="none", delta=kappa)
    weight = (taus.view(1, n, 1) - (errors.detach() < 0).to(quantiles.dtype)).abs()
    return (weight * huber / kappa).mean(dim=2).sum(dim=1)


class QuantileDDQNLearner(DDQNLearner):
    """Learns each action's return distribution as N quantiles instead of its mean.

    target_j = R_n + gamma^n · z_j(s_n, a*), a* = argmax_a mean_j z_j^online(s_n, a) (Double DQN's choice of the
    next action), and z the target network's quantiles; the loss is the quantile Huber loss. Why it is here: the
    greedy policy of the expected-value DQN churns (its evaluations swing by hundreds of x between minutes), and
    learning the whole distribution is the one Rainbow component this agent lacked; Rainbow's ablation found it
    among the three that mattered most. Replay priorities are each sample's loss (as Rainbow's, for its
    distributional loss); `td_error_mean` reports the mean target minus the mean quantile, comparable with DDQN's.
    """

    def __init__(self, model: Any, reward_scale: float = 1.0, huber_delta: float = 1.0,
                 augment_shift: int = 0) -> None:
        super().__init__(model, reward_scale=reward_scale, huber_delta=huber_delta, augment_shift=augment_shift)

    def quantile_targets(self, returns: torch.Tensor, discounts: torch.Tensor, next_obs: torch.Tensor,
                         next_prev_actions: torch.Tensor | None = None) -> torch.Tensor:
        """Target samples (B, N) of the return distribution from s (see the class docstring)."""
        with torch.no_grad():
            next_actions = self.model(next_obs, "online", next_prev_actions).argmax(dim=1)
            next_quantiles = self.model.quantiles(next_obs, "target", next_prev_actions)
            chosen = next_quantiles[torch.arange(len(next_actions)), next_actions]
            return (returns * self.reward_scale).unsqueeze(1) + discounts.unsqueeze(1) * chosen

    def compute_loss(self, batch: Any) -> tuple[torch.Tensor, LossInfo]:
        device = self.device
        obs, actions, returns, discounts, weights, next_obs, prev_actions, next_prev_actions = self.batch_tensors(batch)

        all_quantiles = self.model.quantiles(obs, "online", prev_actions)
        taken = all_quantiles[torch.arange(len(actions), device=device), actions]
        targets = self.quantile_targets(returns, discounts, next_obs, next_prev_actions)
        per_sample = quantile_huber_loss(taken, targets, self.huber_delta)
        loss = (weights * per_sample).mean()

        q_all = all_quantiles.detach().mean(dim=2)
        td_error = (targets.mean(dim=1) - taken.detach().mean(dim=1)).abs()
        metrics = {
            "q_loss": float(loss.detach()),
            "q_mean": float(q_all.mean()),
            "q_max": float(q_all.max()),
            "td_error_mean": float(td_error.mean()),
        }
        return loss, LossInfo(metrics=metrics, priorities=per_sample.detach().cpu().numpy())
