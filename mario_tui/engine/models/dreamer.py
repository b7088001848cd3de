"""Dreamer-style agent: a recurrent state-space world model (RSSM) plus an actor-critic trained in imagination.

Pieces (all on the model state s = (h, z); "features" are concat(h, z)):

    encoder          e_t = Conv(x_t)                  Nature-DQN-style conv trunk on the newest frame
    RSSM, recurrent  h_t = GRU(h_{t-1}, [z_{t-1}, onehot(a_t)])      a_t: the action that led to x_t
    RSSM, prior      p(z_t | h_t)                     what the dynamics expect, used for imagination
    RSSM, posterior  q(z_t | h_t, e_t)                what the observation says, used while observing
    decoder          x̂_t = ConvT(h_t, z_t)           the frame back, same shape as the input frame
    reward head      r̂_t (reward of the step into x_t, times reward_scale)
    continue head    Bernoulli logit of "x_t is not terminal"
    actor / critic   policy logits over num_actions / value; a slow critic (a lagged copy) for bootstrapping

Latents: categorical, `stoch_size` variables of `stoch_classes` classes each, sampled as one-hot vectors with
straight-through gradients and 1% uniform mixing of the probabilities (DreamerV2/V3).  Chosen over Gaussians
because Mario's dynamics are discrete and multi-modal (an enemy appears or not, Mario dies or not): categorical
variables put probability on distinct outcomes directly, where a single Gaussian blurs them into an average; the
mixing also bounds the KL (no prior probability is below 1% / classes), which keeps KL balancing stable.  The
defaults (32 x 16) are smaller than DreamerV3's 32 x 32 to keep the decoder's input layer cheap on a CPU.

What the encoder sees: only the newest grayscale frame of each observation, not the frame stack.  The GRU state
carries the history (velocities, what left the screen), so stacking would only repeat information the model
already has, quadruple the encoder's input and make the decoder reconstruct four frames; the replay buffer
also stores one frame per step, so sequences come out without rebuilding stacks.

Acting keeps a per-environment state (h, z, previous action) between `select_action` calls; `reset_state`
clears it at the start of an episode, matching how training resets the state at `is_first` rows (zero h, zero
z, zero action vector).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from mario_tui.engine.models.base import Network

UNIMIX = 0.01


def mlp(in_size: int, hidden: int, out_size: int, layers: int = 2) -> nn.Sequential:
    """`layers` × (Linear → LayerNorm → SiLU), then a linear output layer."""
    parts: list[nn.Module] = []
    size = in_size
    for _ in range(layers):
        parts += [nn.Linear(size, hidden), nn.LayerNorm(hidden), nn.SiLU()]
        size = hidden
    parts.append(nn.Linear(size, out_size))
    return nn.Sequential(*parts)


def trunk_sizes(frame_size: int) -> tuple[int, int, int, int]:
    """(padded side / 4, and the spatial sizes after each of the three convs) for a square frame."""
    blocks = -(-frame_size // 4)
    s1 = blocks - 1
    s2 = (s1 - 4) // 2 + 1
    return blocks, s1, s2, s2 - 2


class ConvEncoder(nn.Module):
    """(N, H, W) uint8 or float frames → (N, embed_size) with the Nature-DQN conv trunk on one channel.

    The trunk's 8x8 stride-4 first layer is written as space-to-depth (4x4 pixel blocks → 16 channels, the
    frame zero-padded to a multiple of 4) followed by a 2x2 conv: the same receptive field and function class,
    but about 5x cheaper to backpropagate on a CPU.  Then 4x4/2 and 3x3/1 convs as in the Nature trunk.
    """

    def __init__(self, frame_size: int, width: int) -> None:
        super().__init__()
        blocks, _, _, s3 = trunk_sizes(frame_size)
        self.pad = 4 * blocks - frame_size
        self.trunk = nn.Sequential(
            nn.PixelUnshuffle(4),
            nn.Conv2d(16, width, kernel_size=2),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, 2 * width, kernel_size=4, stride=2),
            nn.ReLU(inplace=True),
            nn.Conv2d(2 * width, 2 * width, kernel_size=3),
            nn.ReLU(inplace=True),
            nn.Flatten(),
        )
        self.embed_size = 2 * width * s3 * s3

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = frames.float() / 255.0 if frames.dtype == torch.uint8 else frames
        x = self.trunk[0](F.pad(x.unsqueeze(1), (0, self.pad, 0, self.pad)))
        return self.trunk[1:](x.contiguous(memory_format=torch.channels_last))  # ~10% faster convs on CPU


class ConvDecoder(nn.Module):
    """(N, features) → (N, H, W) pixel means on the [0, 1] scale: the encoder mirrored.

    Linear → (2w, s3, s3), transposed 3x3/1 and 4x4/2 convs (`output_padding` restores the sizes the
    encoder's floor divisions dropped), a transposed 2x2 conv to 16 channels and depth-to-space back to pixels,
    cropped to the frame.  The output is linear (no sigmoid): the loss is a squared error on [0, 1] pixels.
    """

    def __init__(self, feature_size: int, frame_size: int, width: int) -> None:
        super().__init__()
        _, s1, s2, s3 = trunk_sizes(frame_size)
        self.frame_size = frame_size
        self.shape = (2 * width, s3, s3)
        self.linear = nn.Linear(feature_size, 2 * width * s3 * s3)
        self.net = nn.Sequential(
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(2 * width, 2 * width, kernel_size=3),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(2 * width, width, kernel_size=4, stride=2, output_padding=s1 - ((s2 - 1) * 2 + 4)),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(width, 16, kernel_size=2),
            nn.PixelShuffle(4),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.net(self.linear(features).view(-1, *self.shape).contiguous(memory_format=torch.channels_last))
        return x[:, 0, : self.frame_size, : self.frame_size]


@dataclass
class RSSMState:
    """Deterministic h (N, deter_size) and stochastic z (N, stoch_size * stoch_classes, one-hot per variable)."""

    h: torch.Tensor
    z: torch.Tensor

    def features(self) -> torch.Tensor:
        return torch.cat([self.h, self.z], dim=-1)


class RSSM(nn.Module):
    """Recurrent state-space model with categorical latents (DreamerV2)."""

    def __init__(self, num_actions: int, embed_size: int, deter_size: int, stoch_size: int, stoch_classes: int,
                 hidden_size: int) -> None:
        super().__init__()
        self.num_actions = num_actions
        self.deter_size, self.stoch_size, self.stoch_classes = deter_size, stoch_size, stoch_classes
        self.latent_size = stoch_size * stoch_classes
        self.img_in = nn.Sequential(nn.Linear(self.latent_size + num_actions, hidden_size),
                                    nn.LayerNorm(hidden_size), nn.SiLU())
        self.gru = nn.GRUCell(hidden_size, deter_size)
        self.prior_net = mlp(deter_size, hidden_size, self.latent_size, layers=1)
        # posterior MLP on concat(h, e), with its first layer split so the embedding half runs once per batch
        self.post_embed = nn.Linear(embed_size, hidden_size)
        self.post_deter = nn.Linear(deter_size, hidden_size, bias=False)
        self.post_out = nn.Sequential(nn.LayerNorm(hidden_size), nn.SiLU(), nn.Linear(hidden_size, self.latent_size))

    @property
    def feature_size(self) -> int:
        return self.deter_size + self.latent_size

    def initial(self, batch: int, device: torch.device | str) -> RSSMState:
        return RSSMState(torch.zeros(batch, self.deter_size, device=device),
                         torch.zeros(batch, self.latent_size, device=device))

    def recurrent(self, state: RSSMState, action: torch.Tensor) -> torch.Tensor:
        """h_t from (h_{t-1}, z_{t-1}) and the action vector (one-hot, or zeros at an episode start)."""
        return self.gru(self.img_in(torch.cat([state.z, action], dim=-1)), state.h)

    def prior_logits(self, h: torch.Tensor) -> torch.Tensor:
        """(..., stoch_size, stoch_classes) logits of p(z | h), uniform-mixed."""
        return self.logits(self.prior_net(h))

    def posterior_logits(self, h: torch.Tensor, embed_hidden: torch.Tensor) -> torch.Tensor:
        """Logits of q(z | h, e), given `embed_hidden` = self.post_embed(e) (precomputed for a whole batch)."""
        return self.logits(self.post_out(embed_hidden + self.post_deter(h)))

    def logits(self, raw: torch.Tensor) -> torch.Tensor:
        """Reshape to (..., stoch, classes) and mix 1% uniform into the probabilities (returned as log-probs)."""
        raw = raw.unflatten(-1, (self.stoch_size, self.stoch_classes))
        probs = (1 - UNIMIX) * raw.softmax(-1) + UNIMIX / self.stoch_classes
        return probs.log()

    @staticmethod
    def sample(logits: torch.Tensor) -> torch.Tensor:
        """One-hot samples with straight-through gradients, flattened to (..., stoch * classes)."""
        probs = logits.softmax(-1)
        gumbel = -torch.empty_like(logits).exponential_().log()
        index = (logits + gumbel).argmax(-1)
        one_hot = F.one_hot(index, logits.shape[-1]).to(probs.dtype)
        return (one_hot + probs - probs.detach()).flatten(-2)

    @staticmethod
    def mode(logits: torch.Tensor) -> torch.Tensor:
        """The most likely class of each variable, one-hot, flattened (no gradient)."""
        return F.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype).flatten(-2)

    def imagine_step(self, state: RSSMState, action: torch.Tensor) -> RSSMState:
        """One step of the learned dynamics: h from the GRU, z sampled from the prior."""
        h = self.recurrent(state, action)
        return RSSMState(h, self.sample(self.prior_logits(h)))


class DreamerModel(nn.Module):
    """World model + actor + critic (+ slow critic) behind the `Model` protocol.

    `parameters()` yields the trainable parameters in a fixed order (world model, actor, critic) and leaves the
    slow critic out; `state_dict()` holds everything.  `world_model_parameters()`, `actor.parameters()` and
    `critic.parameters()` split them for tests and diagnostics.
    """

    def __init__(self, num_actions: int, frame_size: int, conv_width: int = 32, hidden_size: int = 256,
                 deter_size: int = 200, stoch_size: int = 32, stoch_classes: int = 16, seed: int | None = None) -> None:
        super().__init__()
        self.num_actions = num_actions
        self.frame_size = frame_size
        self.encoder = ConvEncoder(frame_size, conv_width)
        self.rssm = RSSM(num_actions, self.encoder.embed_size, deter_size, stoch_size, stoch_classes, hidden_size)
        features = self.rssm.feature_size
        self.decoder = ConvDecoder(features, frame_size, conv_width)
        self.reward_head = mlp(features, hidden_size, 1, layers=1)
        self.continue_head = mlp(features, hidden_size, 1, layers=1)
        self.actor = mlp(features, hidden_size, num_actions, layers=2)
        self.critic = mlp(features, hidden_size, 1, layers=2)
        self.slow_critic = copy.deepcopy(self.critic)
        self.slow_critic.requires_grad_(False)
        self._rng = np.random.default_rng(seed)
        self.greedy = False
        """Act with the actor's most likely action instead of sampling it (greedy evaluation)."""
        self.state: RSSMState | None = None
        self.prev_action: torch.Tensor | None = None
        self.last_values: np.ndarray | None = None

    # --- parameters and targets ----------------------------------------------------------------
    def world_model_modules(self) -> tuple[nn.Module, ...]:
        return (self.encoder, self.rssm, self.decoder, self.reward_head, self.continue_head)

    def world_model_parameters(self) -> Iterator[nn.Parameter]:
        return chain.from_iterable(m.parameters() for m in self.world_model_modules())

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]:  # type: ignore[override]
        modules = (*self.world_model_modules(), self.actor, self.critic)
        return chain.from_iterable(m.parameters(recurse) for m in modules)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """World model, actor and critic: Dreamer trains each at its own rate, with its own gradient clipping."""
        return {"world_model": list(self.world_model_parameters()), "actor": list(self.actor.parameters()),
                "critic": list(self.critic.parameters())}

    def sync_target(self) -> None:
        self.slow_critic.load_state_dict(self.critic.state_dict())

    def target_parameters(self) -> Iterator[nn.Parameter]:
        return self.slow_critic.parameters()

    @torch.no_grad()
    def soft_update_target(self, tau: float) -> None:
        """Polyak averaging: slow critic ← (1 - tau) · slow critic + tau · critic."""
        torch._foreach_lerp_(list(self.slow_critic.parameters()), list(self.critic.parameters()), tau)

    # --- acting --------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.decoder.linear.weight.device

    def reset_state(self, batch_size: int = 1) -> None:
        """Zero h, z and the previous action: the state training uses at an episode's first observation."""
        self.state = self.rssm.initial(batch_size, self.device)
        self.prev_action = torch.zeros(batch_size, self.num_actions, device=self.device)

    def _carried(self, batch: int) -> tuple[RSSMState, torch.Tensor]:
        """The acting state if it fits this batch, else a zero state (as after reset_state)."""
        state, action = self.state, self.prev_action
        if state is None or action is None or state.h.shape[0] != batch or state.h.device != self.device:
            return self.rssm.initial(batch, self.device), torch.zeros(batch, self.num_actions, device=self.device)
        return state, action

    def _observe(self, x: torch.Tensor, sample: bool) -> RSSMState:
        """Posterior state after observing `x` (uint8 (B, stack, H, W) or (B, H, W)) from the carried state."""
        frames = x[:, -1] if x.dim() == 4 else x
        state, action = self._carried(frames.shape[0])
        h = self.rssm.recurrent(state, action)
        logits = self.rssm.posterior_logits(h, self.rssm.post_embed(self.encoder(frames.to(self.device))))
        z = self.rssm.sample(logits) if sample else self.rssm.mode(logits)
        return RSSMState(h, z)

    @torch.no_grad()
    def forward(self, x: torch.Tensor, network: Network = "online") -> torch.Tensor:
        """Policy logits (B, num_actions) for observing `x` now, without advancing the carried state.

        The posterior's most likely latent is used, so the answer is deterministic; `network` is ignored
        (the policy has no target copy).
        """
        return self.actor(self._observe(x, sample=False).features())

    @torch.no_grad()
    def select_action(self, x: torch.Tensor, epsilon: float) -> np.ndarray:
        """Advance the carried state with this observation, sample from the actor (its most likely action when
        `greedy`; uniform with prob epsilon)."""
        state = self._observe(x, sample=True)
        logits = self.actor(state.features())
        self.last_values = logits.cpu().numpy()
        batch = logits.shape[0]
        probs = logits.double().softmax(-1).cpu().numpy()
        draws = self._rng.random(batch)
        sampled = np.minimum((probs.cumsum(axis=1) < draws[:, None]).sum(axis=1), self.num_actions - 1)
        if self.greedy:
            sampled = probs.argmax(axis=1)
        explore = self._rng.random(batch) < epsilon
        actions = np.where(explore, self._rng.integers(0, self.num_actions, size=batch), sampled).astype(np.int64)
        self.state = state
        self.prev_action = F.one_hot(torch.from_numpy(actions).to(self.device), self.num_actions).float()
        return actions

    @torch.no_grad()
    def preview_frames(self, imagine_steps: tuple[int, ...] = (5, 10)) -> list[np.ndarray]:
        """What the model "sees": the decoded current latent state, then frames it imagines `imagine_steps`
        ahead following its own greedy policy. Grayscale uint8 (frame_size, frame_size) each; [] before the
        first step of an episode. The dashboard shows them beside the real frame."""
        if self.state is None:
            return []
        state = RSSMState(self.state.h[:1], self.state.z[:1])
        decoded = [self.decoder(state.features())]
        for step in range(1, max(imagine_steps, default=0) + 1):
            action = F.one_hot(self.actor(state.features()).argmax(-1), self.num_actions).float()
            state = self.rssm.imagine_step(state, action)
            if step in imagine_steps:
                decoded.append(self.decoder(state.features()))
        return [(frame[0].clamp(0, 1) * 255).to(torch.uint8).cpu().numpy() for frame in decoded]

