"""Double-DQN (or Munchausen-DQN) loss on n-step returns, weighted by prioritized-replay importance weights."""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F

from mario_tui.engine.augment import random_shift
from mario_tui.engine.learners.base import LossInfo
from mario_tui.engine.models.ddqn import DuelingDDQN


def as_tensor(array: Any, device: torch.device) -> torch.Tensor:
    """numpy → tensor without a copy on CPU (uint8 frames stay uint8 until the model scales them)."""
    return torch.as_tensor(array, device=device)


class DDQNLearner:
    """target = R_n + gamma^n · Q_target(s_n, argmax_a Q_online(s_n, a)); Huber loss × IS weights.

    `R_n` and `gamma^n` (0 after a terminal) come precomputed from the replay buffer, so the learner is
    independent of n and of where episodes ended. The batch's previous actions (of s and of s_n) reach a model
    that takes them (`prev_action`); others ignore them. With `augment_shift`, both observations are randomly
    shifted (DrQ, `augment.py`), each on its own.

    With `munchausen_alpha` > 0 the target is Munchausen-DQN's (Vieillard et al., 2020) instead:

        R_n + alpha · clip(T · log pi(a|s), clip, 0)
            + gamma^n · sum_a' pi(a'|s_n) · (Q_target(s_n, a') - T · log pi(a'|s_n))

    with pi = softmax(Q_target / T) and T = `munchausen_temperature`. The bonus on the taken action makes the
    update an implicit KL penalty between successive policies, which is why it is here: the greedy policy of
    plain Double DQN churns (its evaluation swings by hundreds of x between minutes). With n-step returns the
    bonus is added for the first action only, as Dopamine's n-step Munchausen agents do.

    With `lower_bound` the target is raised to the transition's Monte-Carlo return where its episode terminated
    (`Batch.lower_bounds`): target = max(target, G_t), lower-bound Q-learning (He et al. 2017, "Learning to Play
    in a Day"; Tang 2020). The emulator is deterministic, so an action that once earned G_t from a state is worth
    at least that; an exploring episode that got past a pit or reached the flag then lifts the values along its
    own path at once, instead of over many n-step backups. The floor holds only where the observation fixes what
    follows; four stacked frames do not (sub-pixel speed, timers, dropped frames), so here it is optimistic.
    """

    def __init__(self, model: DuelingDDQN, reward_scale: float = 1.0, huber_delta: float = 1.0,
                 augment_shift: int = 0, munchausen_alpha: float = 0.0, munchausen_temperature: float = 0.03,
                 munchausen_clip: float = -1.0, lower_bound: bool = False) -> None:
        self.model = model
        self.reward_scale = float(reward_scale)
        self.huber_delta = float(huber_delta)
        self.augment_shift = int(augment_shift)
        self.munchausen_alpha = float(munchausen_alpha)
        self.munchausen_temperature = float(munchausen_temperature)
        self.munchausen_clip = float(munchausen_clip)
        self.lower_bound = bool(lower_bound)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def sample_batch(self, buffer: Any, batch_size: int) -> Any:
        return buffer.sample(batch_size)

    def td_target(self, returns: torch.Tensor, discounts: torch.Tensor, next_obs: torch.Tensor,
                  next_prev_actions: torch.Tensor | None = None) -> torch.Tensor:
        with torch.no_grad():
            next_actions = self.model(next_obs, "online", next_prev_actions).argmax(dim=1, keepdim=True)
            next_q = self.model(next_obs, "target", next_prev_actions).gather(1, next_actions).squeeze(1)
            return returns * self.reward_scale + discounts * next_q

    def munchausen_target(self, returns: torch.Tensor, discounts: torch.Tensor, obs: torch.Tensor,
                          actions: torch.Tensor, next_obs: torch.Tensor, prev_actions: torch.Tensor | None = None,
                          next_prev_actions: torch.Tensor | None = None) -> torch.Tensor:
        """Munchausen-DQN's target (see the class docstring): soft bootstrap plus the scaled log-policy bonus."""
        temperature = self.munchausen_temperature
        with torch.no_grad():
            next_q = self.model(next_obs, "target", next_prev_actions)
            next_log_pi = F.log_softmax(next_q / temperature, dim=1)
            soft_value = (next_log_pi.exp() * (next_q - temperature * next_log_pi)).sum(dim=1)
            q_now = self.model(obs, "target", prev_actions)
            log_pi_taken = F.log_softmax(q_now / temperature, dim=1).gather(1, actions.unsqueeze(1)).squeeze(1)
            bonus = (temperature * log_pi_taken).clamp(min=self.munchausen_clip, max=0.0)
            return returns * self.reward_scale + self.munchausen_alpha * bonus + discounts * soft_value

    def batch_tensors(self, batch: Any) -> tuple[torch.Tensor, ...]:
        """The replay batch on the learner's device: obs, actions, returns, discounts, IS weights, next obs, and the
        previous actions of obs and next obs; both observations randomly shifted when `augment_shift` is set."""
        device = self.device
        return (random_shift(as_tensor(batch.obs, device), self.augment_shift),
                as_tensor(batch.actions, device).long(),
                as_tensor(batch.returns, device).float(),
                as_tensor(batch.discounts, device).float(),
                as_tensor(batch.weights, device).float(),
                random_shift(as_tensor(batch.next_obs, device), self.augment_shift),
                as_tensor(batch.prev_actions, device).long(),
                as_tensor(batch.next_prev_actions, device).long())

    def compute_loss(self, batch: Any) -> tuple[torch.Tensor, LossInfo]:
        device = self.device
        obs, actions, returns, discounts, weights, next_obs, prev_actions, next_prev_actions = self.batch_tensors(batch)

        q_all = self.model(obs, "online", prev_actions)
        q_taken = q_all.gather(1, actions.unsqueeze(1)).squeeze(1)
        if self.munchausen_alpha > 0:
            target = self.munchausen_target(returns, discounts, obs, actions, next_obs, prev_actions,
                                            next_prev_actions)
        else:
            target = self.td_target(returns, discounts, next_obs, next_prev_actions)
        bound_share = None
        lower_bounds = getattr(batch, "lower_bounds", None)
        if self.lower_bound and lower_bounds is not None:
            bounds = as_tensor(lower_bounds, device).float() * self.reward_scale
            raised = bounds > target
            target = torch.where(raised, bounds, target)
            bound_share = float(raised.float().mean())
        td_error = target - q_taken
        per_sample = F.huber_loss(q_taken, target, reduction="none", delta=self.huber_delta)
        loss = (weights * per_sample).mean()

        abs_td = td_error.detach().abs()
        q_detached = q_all.detach()
        metrics = {
            "q_loss": float(loss.detach()),
            "q_mean": float(q_detached.mean()),
            "q_max": float(q_detached.max()),
            "td_error_mean": float(abs_td.mean()),
        }
        if bound_share is not None:
            metrics["bound_share"] = bound_share
        return loss, LossInfo(metrics=metrics, priorities=abs_td.cpu().numpy())

    def update_targets(self, tau: float | None = None) -> None:
        if tau is None or tau >= 1.0:
            self.model.sync_target()
        else:
            self.model.soft_update_target(tau)
