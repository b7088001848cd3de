"""Dreamer loss: world model on replayed sequences + actor-critic on imagined rollouts, as ONE scalar.

The three parts are summed into one loss (the pipeline backpropagates one tensor and steps one optimizer over
all of `model.parameters()`), built so that their gradients do not mix:

* world model (encoder, RSSM, decoder, reward and continue heads) ← reconstruction + reward + continue + KL;
* critic ← regression to lambda-returns, on imagined features computed without a graph (detached);
* actor ← REINFORCE with the critic as baseline + entropy bonus, on the same detached features, with
  detached advantages.

So no actor or critic gradient reaches the world model and no world-model gradient reaches the actor or critic.

Conventions (observation-major, see `SequenceBatch`): row t of a sequence is observation x_t with the action,
reward and terminal flag of the step *into* it.  The state resets (zero h, z and action vector) at `is_first`
rows and at each sequence's first row.  In imagination, s_0 is a posterior state and s_1..s_H come from the
prior; the reward and continue heads evaluated on s_{t+1} give the reward and continuation of step t.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F

from mario_tui.engine.learners.base import LossInfo
from mario_tui.engine.learners.ddqn import as_tensor
from mario_tui.engine.models.dreamer import DreamerModel, RSSMState
from mario_tui.engine.ssim import ssim

SSIM_FRAMES = 32
"""Frames per batch the wm_ssim metric is computed on (a strided subset when the batch has more)."""


def lambda_returns(rewards: torch.Tensor, values: torch.Tensor, continues: torch.Tensor, bootstrap: torch.Tensor,
                   lam: float, gamma: float) -> torch.Tensor:
    """TD(lambda) returns over time (dim 0), computed backwards:

        R_t = r_t + gamma · c_t · ((1 - lam) · v_{t+1} + lam · R_{t+1}),   v_T = R_T = bootstrap

    rewards, values, continues: (T, ...); bootstrap: (...).  r_t and c_t belong to the step from state t to
    state t+1 (c_t = 0 if state t+1 is terminal, so nothing after it counts); values[t] = v(state t), of which
    only values[1:] enter (values[0] is the baseline, not a bootstrap).  Returns (T, ...).
    """
    if not rewards.shape == values.shape == continues.shape or bootstrap.shape != rewards.shape[1:]:
        raise ValueError("rewards, values and continues must be (T, ...) and bootstrap (...)")
    next_values = torch.cat([values[1:], bootstrap.unsqueeze(0)], dim=0)
    out = []
    last = bootstrap
    for t in range(rewards.shape[0] - 1, -1, -1):
        last = rewards[t] + gamma * continues[t] * ((1 - lam) * next_values[t] + lam * last)
        out.append(last)
    return torch.stack(out[::-1], dim=0)


def categorical_kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """KL(p || q) of (..., stoch, classes) log-probabilities, summed over the latent variables → (...)."""
    return (p_logits.exp() * (p_logits - q_logits)).sum(dim=(-2, -1))


class DreamerLearner:
    """World-model, actor and critic losses of DreamerV2 (with V3's return scaling) for one replayed batch."""

    def __init__(self, model: DreamerModel, seq_len: int = 16, imag_horizon: int = 15, imag_starts: int = 0,
                 gamma: float = 0.99, td_lambda: float = 0.95, reward_scale: float = 1.0, kl_coef: float = 1.0,
                 kl_balance: float = 0.8, free_nats: float = 1.0, entropy_coef: float = 3e-4,
                 actor_coef: float = 1.0, critic_coef: float = 1.0) -> None:
        self.model = model
        self.seq_len, self.imag_horizon, self.imag_starts = int(seq_len), int(imag_horizon), int(imag_starts)
        self.gamma, self.td_lambda, self.reward_scale = float(gamma), float(td_lambda), float(reward_scale)
        self.kl_coef, self.kl_balance, self.free_nats = float(kl_coef), float(kl_balance), float(free_nats)
        self.entropy_coef = float(entropy_coef)
        self.actor_coef, self.critic_coef = float(actor_coef), float(critic_coef)

    @property
    def device(self) -> torch.device:
        return self.model.device

    def sample_batch(self, buffer: Any, batch_size: int) -> Any:
        """`batch_size` sequences of `seq_len` newest frames (the encoder sees one frame per step)."""
        return buffer.sample_sequences(batch_size, self.seq_len)

    def update_targets(self, tau: float | None = None) -> None:
        if tau is None or tau >= 1.0:
            self.model.sync_target()
        else:
            self.model.soft_update_target(tau)

    # --- world model ---------------------------------------------------------------------------
    def observe(self, frames: torch.Tensor, actions: torch.Tensor, is_first: torch.Tensor
                ) -> tuple[RSSMState, torch.Tensor, torch.Tensor]:
        """Posterior states over a (B, L) sequence: (states with (B, L, ·) tensors, post logits, prior logits)."""
        rssm = self.model.rssm
        batch, length = actions.shape
        embed = self.model.encoder(frames.flatten(0, 1)).unflatten(0, (batch, length))
        embed_hidden = rssm.post_embed(embed)
        keep = (1.0 - is_first).unsqueeze(-1)
        action_vectors = F.one_hot(actions, self.model.num_actions).float() * keep
        state = rssm.initial(batch, frames.device)
        hs, zs, post = [], [], []
        for t in range(length):
            state = RSSMState(state.h * keep[:, t], state.z * keep[:, t])
            h = rssm.recurrent(state, action_vectors[:, t])
            logits = rssm.posterior_logits(h, embed_hidden[:, t])
            state = RSSMState(h, rssm.sample(logits))
            hs.append(h)
            zs.append(state.z)
            post.append(logits)
        h_all = torch.stack(hs, dim=1)
        prior = rssm.prior_logits(h_all)  # batched: the prior never feeds the observation loop
        return RSSMState(h_all, torch.stack(zs, dim=1)), torch.stack(post, dim=1), prior

    def world_model_loss(self, batch: Any) -> tuple[torch.Tensor, RSSMState, torch.Tensor, dict[str, float]]:
        """(loss, posterior states (B, L, ·), alive = 1 - terminals (B, L), metrics)."""
        device, model = self.device, self.model
        obs = as_tensor(batch.obs, device)
        frames = obs[:, :, -1] if obs.dim() == 5 else obs  # stacked=True batches: keep the newest frame
        actions = as_tensor(batch.actions, device).long()
        rewards = as_tensor(batch.rewards, device).float() * self.reward_scale
        terminals = as_tensor(batch.terminals, device).float()
        is_first = as_tensor(batch.is_first, device).float()

        states, post, prior = self.observe(frames, actions, is_first)
        features = states.features()
        target = frames.float() / 255.0
        recon = model.decoder(features.flatten(0, 1)).view_as(target)
        sq_error = (recon - target).square()
        recon_loss = 0.5 * sq_error.flatten(2).sum(-1).mean()  # unit-variance Gaussian NLL per frame
        reward_pred = model.reward_head(features).squeeze(-1)
        reward_loss = F.mse_loss(reward_pred, rewards)
        continue_logit = model.continue_head(features).squeeze(-1)
        continue_loss = F.binary_cross_entropy_with_logits(continue_logit, 1.0 - terminals)
        kl_prior = categorical_kl(post.detach(), prior).mean()  # trains the prior towards the posterior
        kl_post = categorical_kl(post, prior.detach()).mean()  # regularises the posterior
        kl_loss = (self.kl_balance * kl_prior.clamp(min=self.free_nats)
                   + (1 - self.kl_balance) * kl_post.clamp(min=self.free_nats))
        loss = recon_loss + reward_loss + continue_loss + self.kl_coef * kl_loss

        with torch.no_grad():
            flat_recon, flat_target = recon.flatten(0, 1), target.flatten(0, 1)
            step = max(1, flat_recon.shape[0] // SSIM_FRAMES)
            metrics = {
                "wm_loss": float(loss),
                "wm_recon_mse": float(sq_error.mean()),
                "wm_ssim": float(ssim(flat_recon[::step].clamp(0, 1), flat_target[::step])),
                "wm_kl": float(kl_prior),
                "wm_reward_loss": float(reward_loss),
                "wm_cont_loss": float(continue_loss),
                "wm_terminal_acc": float(((continue_logit < 0).float() == terminals).float().mean()),
            }
        return loss, states, 1.0 - terminals, metrics

    # --- behaviour -----------------------------------------------------------------------------
    @torch.no_grad()
    def imagine(self, start: RSSMState, horizon: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Roll the prior dynamics forward under the actor: features (H+1, N, F) and actions (H, N)."""
        rssm, actor = self.model.rssm, self.model.actor
        state = start
        features, actions = [state.features()], []
        for _ in range(horizon):
            logits = actor(features[-1])
            gumbel = -torch.empty_like(logits).exponential_().log()
            action = (logits + gumbel).argmax(-1)
            state = rssm.imagine_step(state, F.one_hot(action, self.model.num_actions).float())
            features.append(state.features())
            actions.append(action)
        return torch.stack(features), torch.stack(actions)

    def start_states(self, states: RSSMState, alive: torch.Tensor) -> tuple[RSSMState, torch.Tensor]:
        """Detached posterior states (N, ·) to imagine from: all B·L of them, or a random imag_starts of them."""
        h, z, alive = states.h.detach().flatten(0, 1), states.z.detach().flatten(0, 1), alive.flatten()
        count = h.shape[0]
        if 0 < self.imag_starts < count:
            index = torch.randperm(count, device=h.device)[: self.imag_starts]
            h, z, alive = h[index], z[index], alive[index]
        return RSSMState(h, z), alive

    def behaviour_loss(self, start: RSSMState, alive: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        model = self.model
        features, actions = self.imagine(start, self.imag_horizon)
        with torch.no_grad():
            rewards = model.reward_head(features[1:]).squeeze(-1)
            continues = torch.sigmoid(model.continue_head(features[1:])).squeeze(-1)
            slow_values = model.slow_critic(features).squeeze(-1)
            returns = lambda_returns(rewards, slow_values[:-1], continues, slow_values[-1], self.td_lambda, self.gamma)
            # weight of state t: probability the imagined episode is still running there (start must be alive)
            weights = alive * torch.cat([torch.ones_like(continues[:1]), continues[:-1]]).cumprod(0)
            flat = returns.flatten()
            quantiles = torch.quantile(flat, torch.tensor([0.05, 0.95], device=flat.device, dtype=flat.dtype))
            scale = torch.clamp(quantiles[1] - quantiles[0], min=1.0)

        states = features[:-1]  # already detached: computed without a graph
        values = model.critic(states).squeeze(-1)
        critic_loss = 0.5 * (weights * (values - returns).square()).mean()
        log_probs = model.actor(states).log_softmax(-1)
        entropy = -(log_probs.exp() * log_probs).sum(-1)
        chosen = log_probs.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        advantage = (returns - values.detach()) / scale
        actor_loss = -(weights * (chosen * advantage + self.entropy_coef * entropy)).mean()
        loss = self.actor_coef * actor_loss + self.critic_coef * critic_loss
        metrics = {
            "actor_loss": float(actor_loss.detach()),
            "actor_entropy": float(entropy.detach().mean()),
            "imag_return": float(returns[0].mean()),
            "imag_value": float(values.detach().mean()),
            "critic_loss": float(critic_loss.detach()),
        }
        return loss, metrics

    def compute_loss(self, batch: Any) -> tuple[torch.Tensor, LossInfo]:
        wm_loss, states, alive, wm_metrics = self.world_model_loss(batch)
        start, alive = self.start_states(states, alive)
        behaviour, behaviour_metrics = self.behaviour_loss(start, alive)
        return wm_loss + behaviour, LossInfo(metrics={**wm_metrics, **behaviour_metrics}, priorities=None)
