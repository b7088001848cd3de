"""Dreamer world model + imagined actor-critic: shapes, lambda-returns, SSIM, gradient routing, and learning on
real Mario frames (tiny sizes, 1 torch thread)."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from mario_tui.engine.config import RunConfig
from mario_tui.engine.env import make_env
from mario_tui.engine.flat import FlatParameters
from mario_tui.engine.learners.base import Learner
from mario_tui.engine.learners.dreamer import DreamerLearner, categorical_kl, lambda_returns
from mario_tui.engine.models.base import Model
from mario_tui.engine.models.dreamer import DreamerModel, RSSMState
from mario_tui.engine.registry import REGISTRY, build_model, make_buffer
from mario_tui.engine.replay import ReplayBuffer, SequenceBatch
from mario_tui.engine.ssim import gaussian_window, ssim

FRAME = 36
ACTIONS = 5  # right_only
TINY = dict(model="dreamer", frame_size=FRAME, conv_width=8, hidden_size=32, deter_size=32, stoch_size=4,
            stoch_classes=4, seq_len=8, imag_horizon=5, imag_starts=0, batch_size=4, actions="right_only",
            buffer_size=400, learning_starts=16)


def tiny(seed: int = 0, **changes: object) -> tuple[DreamerModel, DreamerLearner]:
    torch.manual_seed(seed)
    model, learner = build_model(RunConfig(**{**TINY, **changes}, seed=seed), ACTIONS)
    assert isinstance(model, DreamerModel) and isinstance(learner, DreamerLearner)
    return model, learner


def random_batch(batch: int = 3, length: int = 8, seed: int = 0) -> SequenceBatch:
    rng = np.random.default_rng(seed)
    is_first = np.zeros((batch, length), np.float32)
    is_first[:, 0] = 1
    is_first[0, 5] = 1
    terminals = np.zeros((batch, length), np.float32)
    terminals[0, 4] = 1
    return SequenceBatch(obs=rng.integers(0, 256, (batch, length, FRAME, FRAME), dtype=np.uint8),
                         actions=np.where(is_first > 0, 0, rng.integers(0, ACTIONS, (batch, length))),
                         rewards=np.where(is_first > 0, 0, rng.normal(size=(batch, length))).astype(np.float32),
                         terminals=terminals, is_first=is_first, starts=np.zeros(batch, np.int64))


@pytest.fixture(scope="module")
def mario_buffer() -> ReplayBuffer:
    """~200 random right_only steps of real 1-1 frames at 36x36, in the project's own replay buffer."""
    config = RunConfig(**TINY)
    env = make_env(config, seed=0)
    buffer = make_buffer(config, seed=0)
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=0)
    buffer.start_episode(obs)
    for _ in range(200):
        action = int(rng.integers(ACTIONS))
        obs, reward, terminated, truncated, _ = env.step(action)
        buffer.add(action, float(reward), obs, terminated, truncated)
        if terminated or truncated:
            obs, _ = env.reset()
            buffer.start_episode(obs)
    env.close()
    return buffer


# --- protocol and shapes -----------------------------------------------------------------------------------

def test_protocol_conformance_and_parameters_exclude_slow_critic():
    model, learner = tiny()
    assert isinstance(model, Model) and isinstance(learner, Learner)
    params = list(model.parameters())
    ids = [id(p) for p in params]
    assert len(ids) == len(set(ids))
    slow = {id(p) for p in model.slow_critic.parameters()}
    assert not slow & set(ids)
    everything = {id(p) for p in torch.nn.Module.parameters(model)}
    assert set(ids) | slow == everything
    assert all(not p.requires_grad for p in model.slow_critic.parameters())
    assert ids == [id(p) for p in model.parameters()]  # fixed order
    assert any(k.startswith("slow_critic.") for k in model.state_dict())
    assert "batch_size" in REGISTRY["dreamer"].metrics and len(REGISTRY["dreamer"].metrics) <= 16


def test_shapes_through_every_head():
    model, _ = tiny()
    batch, rssm = 6, model.rssm
    frames = torch.randint(0, 256, (batch, FRAME, FRAME), dtype=torch.uint8)
    embed = model.encoder(frames)
    assert embed.shape == (batch, model.encoder.embed_size)
    state = rssm.initial(batch, "cpu")
    h = rssm.recurrent(state, torch.zeros(batch, ACTIONS))
    assert h.shape == (batch, 32)
    prior = rssm.prior_logits(h)
    post = rssm.posterior_logits(h, rssm.post_embed(embed))
    assert prior.shape == post.shape == (batch, 4, 4)
    torch.testing.assert_close(post.exp().sum(-1), torch.ones(batch, 4))
    z = rssm.sample(post)
    assert z.shape == (batch, 16)
    one_hot = z.detach().unflatten(-1, (4, 4))
    torch.testing.assert_close(one_hot.sum(-1), torch.ones(batch, 4))
    torch.testing.assert_close(one_hot.max(-1).values, torch.ones(batch, 4))  # one class per variable
    features = RSSMState(h, z).features()
    assert features.shape == (batch, rssm.feature_size) == (batch, 32 + 16)
    assert model.decoder(features).shape == (batch, FRAME, FRAME)
    assert model.reward_head(features).shape == (batch, 1)
    assert model.continue_head(features).shape == (batch, 1)
    assert model.actor(features).shape == (batch, ACTIONS)
    assert model.critic(features).shape == model.slow_critic(features).shape == (batch, 1)
    stacked = torch.randint(0, 256, (batch, 4, FRAME, FRAME), dtype=torch.uint8)
    assert model(stacked).shape == (batch, ACTIONS)


@pytest.mark.parametrize("frame_size", [36, 42, 84])
def test_decoder_reproduces_any_frame_size(frame_size):
    model = DreamerModel(ACTIONS, frame_size, conv_width=4, hidden_size=16, deter_size=8, stoch_size=2,
                         stoch_classes=3)
    assert model.decoder(torch.zeros(2, model.rssm.feature_size)).shape == (2, frame_size, frame_size)


# --- lambda-returns ----------------------------------------------------------------------------------------

def test_lambda_returns_hand_computed_with_a_terminal_in_the_middle():
    # step t goes from state t to t+1; continues[1] = 0: state 2 is terminal, so nothing after it counts
    rewards = torch.tensor([1.0, 2.0, 3.0])
    values = torch.tensor([99.0, 10.0, 20.0])  # v(state 0) is a baseline only, never bootstrapped from
    continues = torch.tensor([1.0, 0.0, 1.0])
    bootstrap = torch.tensor(30.0)
    gamma, lam = 0.9, 0.5
    r2 = 3 + 0.9 * 1 * (0.5 * 30 + 0.5 * 30)  # = 30.0
    r1 = 2 + 0.9 * 0 * (0.5 * 20 + 0.5 * r2)  # = 2.0: the terminal cuts the return
    r0 = 1 + 0.9 * 1 * (0.5 * 10 + 0.5 * r1)  # = 6.4
    out = lambda_returns(rewards, values, continues, bootstrap, lam, gamma)
    torch.testing.assert_close(out, torch.tensor([r0, r1, r2]))
    torch.testing.assert_close(out, torch.tensor([6.4, 2.0, 30.0]))


def test_lambda_returns_limits_and_batch_dims():
    torch.manual_seed(0)
    rewards, values = torch.randn(4, 3), torch.randn(4, 3)
    continues, bootstrap = torch.ones(4, 3), torch.randn(3)
    gamma = 0.8
    monte_carlo = lambda_returns(rewards, values, continues, bootstrap, 1.0, gamma)
    expected0 = sum(gamma**k * rewards[k] for k in range(4)) + gamma**4 * bootstrap
    torch.testing.assert_close(monte_carlo[0], expected0)
    td0 = lambda_returns(rewards, values, continues, bootstrap, 0.0, gamma)
    torch.testing.assert_close(td0, rewards + gamma * torch.cat([values[1:], bootstrap[None]]))


def test_categorical_kl_is_zero_for_equal_and_positive_otherwise():
    p = torch.log_softmax(torch.randn(5, 4, 3), -1)
    q = torch.log_softmax(torch.randn(5, 4, 3), -1)
    assert torch.allclose(categorical_kl(p, p), torch.zeros(5), atol=1e-6)
    assert (categorical_kl(p, q) > 0).all()


# --- SSIM --------------------------------------------------------------------------------------------------

def reference_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """Straightforward SSIM: loop over every valid 11x11 window, two-pass weighted statistics (float64)."""
    g = gaussian_window().numpy()
    w = np.outer(g, g)
    c1, c2 = 0.01**2, 0.03**2
    values = []
    for i in range(x.shape[0] - 10):
        for j in range(x.shape[1] - 10):
            px, py = x[i:i + 11, j:j + 11], y[i:i + 11, j:j + 11]
            mx, my = (w * px).sum(), (w * py).sum()
            vx, vy = (w * (px - mx) ** 2).sum(), (w * (py - my) ** 2).sum()
            cov = (w * (px - mx) * (py - my)).sum()
            values.append((2 * mx * my + c1) * (2 * cov + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return float(np.mean(values))


def test_ssim_known_values():
    rng = np.random.default_rng(0)
    x = rng.random((16, 18))
    y = np.clip(x + 0.2 * rng.standard_normal((16, 18)), 0, 1)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    assert float(ssim(tx, tx)) == pytest.approx(1.0, abs=1e-12)
    assert float(ssim(tx, ty)) == pytest.approx(reference_ssim(x, y), abs=1e-10)
    smooth = np.add.outer(np.linspace(0, 1, 16), np.linspace(0, 0.5, 18)) / 1.5
    assert float(ssim(torch.from_numpy(smooth), ty)) == pytest.approx(reference_ssim(smooth, y), abs=1e-10)
    # constant images: sigma = 0, so SSIM = (2ab + C1) / (a^2 + b^2 + C1)
    a, b = torch.full((12, 12), 0.2, dtype=torch.float64), torch.full((12, 12), 0.6, dtype=torch.float64)
    assert float(ssim(a, b)) == pytest.approx((2 * 0.2 * 0.6 + 1e-4) / (0.2**2 + 0.6**2 + 1e-4), abs=1e-12)
    # float32 batches: per-image values, symmetric, in [-1, 1]
    batch = torch.from_numpy(np.stack([x, y, smooth])).float()
    per_image = ssim(batch, batch.flip(0), reduction="none")
    assert per_image.shape == (3,)
    torch.testing.assert_close(per_image, ssim(batch.flip(0), batch, reduction="none"))
    assert float(per_image[1]) == pytest.approx(1.0, abs=1e-6)  # the middle image is paired with itself
    with pytest.raises(ValueError):
        ssim(torch.zeros(8, 8), torch.zeros(8, 8))


# --- acting --------------------------------------------------------------------------------------------------

def test_select_action_carries_state_and_reset_restores_zeros():
    model, _ = tiny()
    obs = torch.randint(0, 256, (1, 4, FRAME, FRAME), dtype=torch.uint8)
    model.reset_state(1)
    assert model.state is not None and model.prev_action is not None
    assert not model.state.h.any() and not model.state.z.any() and not model.prev_action.any()
    logits_before = model(obs)
    a1 = model.select_action(obs, 0.0)
    h1 = model.state.h.clone()
    assert a1.dtype == np.int64 and a1.shape == (1,) and 0 <= a1[0] < ACTIONS
    assert model.last_values is not None and model.last_values.shape == (1, ACTIONS)
    assert model.prev_action[0, a1[0]] == 1 and model.prev_action.sum() == 1
    logits_after = model(obs)  # forward reads the carried state without advancing it
    torch.testing.assert_close(model.state.h, h1)
    assert not torch.allclose(logits_before, logits_after)
    model.select_action(obs, 0.0)
    assert not torch.allclose(model.state.h, h1)  # same observation, but the state moved on
    model.reset_state(1)
    assert not model.state.h.any() and not model.state.z.any() and not model.prev_action.any()
    torch.testing.assert_close(model(obs), logits_before)

    model.reset_state(3)
    actions = model.select_action(torch.randint(0, 256, (3, 4, FRAME, FRAME), dtype=torch.uint8), 1.0)
    assert actions.shape == (3,) and model.last_values.shape == (3, ACTIONS) and model.state.h.shape == (3, 32)


def test_sampled_actions_follow_the_actor_and_epsilon():
    model, _ = tiny()
    with torch.no_grad():
        model.actor[-1].weight.zero_()
        model.actor[-1].bias.copy_(torch.tensor([0.0, 0.0, 50.0, 0.0, 0.0]))  # actor always wants action 2
    obs = torch.zeros(64, 4, FRAME, FRAME, dtype=torch.uint8)
    model.reset_state(64)
    assert (model.select_action(obs, 0.0) == 2).all()
    greedy_share = (model.select_action(obs, 1.0) == 2).mean()
    assert greedy_share < 0.6  # uniform random actions instead


# --- losses and gradients ------------------------------------------------------------------------------------

def test_gradients_are_routed_world_model_actor_critic_apart():
    model, learner = tiny(critic_coef=0.0)
    batch = random_batch()
    _, states, alive, _ = learner.world_model_loss(batch)
    start, alive = learner.start_states(states, alive)
    assert not start.h.requires_grad and not start.z.requires_grad
    model.zero_grad(set_to_none=True)
    actor_loss, _ = learner.behaviour_loss(start, alive)  # critic_coef 0: the actor loss alone
    actor_loss.backward()
    actor_grads = [p.grad for p in model.actor.parameters()]
    assert all(g is not None for g in actor_grads) and sum(float(g.abs().sum()) for g in actor_grads) > 0
    assert all(p.grad is None for p in model.world_model_parameters())
    assert all(p.grad is None or not p.grad.any() for p in model.critic.parameters())  # weighted by 0 here
    assert all(p.grad is None for p in model.slow_critic.parameters())

    # the full loss gives the world model exactly the world-model loss's gradient (same random draws)
    learner.critic_coef = 1.0
    model.zero_grad(set_to_none=True)
    torch.manual_seed(1)
    total, info = learner.compute_loss(batch)
    total.backward()
    full = [p.grad.clone() for p in model.world_model_parameters()]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.critic.parameters())
    model.zero_grad(set_to_none=True)
    torch.manual_seed(1)
    wm_loss, *_ = learner.world_model_loss(batch)
    wm_loss.backward()
    for got, want in zip(full, [p.grad for p in model.world_model_parameters()], strict=True):
        torch.testing.assert_close(got, want)
    assert info.priorities is None


def test_update_targets_hard_and_polyak():
    model, learner = tiny()
    with torch.no_grad():
        for p in model.critic.parameters():
            p.add_(1.0)
    before = [p.clone() for p in model.slow_critic.parameters()]
    learner.update_targets(0.25)
    for slow, old, new in zip(model.slow_critic.parameters(), before, model.critic.parameters(), strict=True):
        torch.testing.assert_close(slow, 0.75 * old + 0.25 * new)
    learner.update_targets(None)
    for slow, new in zip(model.slow_critic.parameters(), model.critic.parameters(), strict=True):
        torch.testing.assert_close(slow, new)


def test_compute_loss_on_real_mario_sequences(mario_buffer):
    model, learner = tiny()
    flat = FlatParameters(model.parameters())  # as the workers and the coordinator do
    batch = learner.sample_batch(mario_buffer, 4)
    assert batch.obs.shape == (4, 8, FRAME, FRAME)
    loss, info = learner.compute_loss(batch)
    loss.backward()
    assert math.isfinite(float(loss.detach()))
    names = set(REGISTRY["dreamer"].metrics) - {"batch_size"}
    assert set(info.metrics) == names
    assert all(math.isfinite(v) and isinstance(v, float) for v in info.metrics.values())
    assert 0.0 <= info.metrics["wm_terminal_acc"] <= 1.0 and -1.0 <= info.metrics["wm_ssim"] <= 1.0
    assert np.isfinite(flat.grads_numpy()).all() and np.abs(flat.grads_numpy()).sum() > 0


def test_world_model_overfits_a_fixed_batch_of_real_frames(mario_buffer):
    model, learner = tiny(seed=1)
    mario_buffer._rng = np.random.default_rng(3)
    batch = learner.sample_batch(mario_buffer, 4)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    t0 = time.perf_counter()
    first = None
    for _ in range(300):
        optimizer.zero_grad()
        loss, _, _, metrics = learner.world_model_loss(batch)
        loss.backward()
        optimizer.step()
        first = metrics if first is None else first
    assert time.perf_counter() - t0 < 20
    with torch.no_grad():
        _, _, _, last = learner.world_model_loss(batch)
    assert last["wm_recon_mse"] * 5 <= first["wm_recon_mse"], (first, last)
    assert last["wm_ssim"] > first["wm_ssim"] + 0.2
    assert last["wm_loss"] < first["wm_loss"] / 5


def test_config_validation_for_dreamer():
    problems = RunConfig(model="dreamer", seq_len=64, learning_starts=10, batch_size=8, buffer_size=50).problems()
    assert "learning_starts" in problems and "buffer_size" in problems
    assert "td_lambda" in RunConfig(td_lambda=1.5).problems()
    assert "stoch_classes" in RunConfig(stoch_classes=1).problems()
    assert not RunConfig(**TINY).problems()


def test_preview_mosaic_shows_real_reconstructed_and_imagined_frames():
    from mario_tui.engine.preview import world_model_mosaic
    torch.manual_seed(0)
    model = DreamerModel(num_actions=3, frame_size=36, conv_width=4, hidden_size=16, deter_size=16, stoch_size=4,
                         stoch_classes=4)
    assert model.preview_frames() == []
    model.reset_state(1)
    model.select_action(torch.randint(0, 256, (1, 4, 36, 36), dtype=torch.uint8), 0.0)
    frames = model.preview_frames((2, 4))
    assert len(frames) == 3 and all(f.shape == (36, 36) and f.dtype == np.uint8 for f in frames)
    rgb = np.full((240, 256, 3), 200, np.uint8)
    mosaic = world_model_mosaic(rgb, frames)
    assert mosaic.shape == (240, 256, 3)
    assert (mosaic[:120, :128] == 200).all()  # the real frame, half size, top left
    rows, cols = np.arange(120) * 36 // 120, np.arange(128) * 36 // 128
    assert np.array_equal(mosaic[:120, 128:, 0], frames[0][rows][:, cols])  # reconstruction, top right
    assert np.array_equal(mosaic[120:, 128:, 1], frames[2][rows][:, cols])  # imagined 4 steps ahead
