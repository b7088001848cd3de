"""Quantile-regression Double DQN (`--quantiles N`): the network's quantile outputs, the loss, the learner's target."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from mario_tui.engine.config import ConfigError, RunConfig
from mario_tui.engine.learners.qrdqn import QuantileDDQNLearner, quantile_huber_loss
from mario_tui.engine.models.ddqn import DuelingDDQN
from mario_tui.engine.registry import build_model

FRAME = 36
STACK = 4


def tiny_quantile_model(actions: int = 3, quantiles: int = 8, seed: int = 0, q_scale: float = 100.0) -> DuelingDDQN:
    torch.manual_seed(seed)
    return DuelingDDQN(STACK, actions, FRAME, conv_width=4, hidden_size=16, q_scale=q_scale, seed=seed,
                       num_quantiles=quantiles)


def constant_quantiles(net: torch.nn.Module, value: list[float], advantages: list[list[float]]) -> None:
    """Zero every weight and set the last biases: the same known quantiles (per action) for every input."""
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        net.value[-1].bias.copy_(torch.tensor(value))
        net.advantage[-1].bias.copy_(torch.tensor(advantages).flatten())


def batch_of(obs: np.ndarray, actions: np.ndarray, returns: np.ndarray, discounts: np.ndarray) -> SimpleNamespace:
    n = len(actions)
    rng = np.random.default_rng(5)
    return SimpleNamespace(obs=obs, actions=actions, returns=returns.astype(np.float32),
                           next_obs=rng.integers(0, 256, obs.shape, dtype=np.uint8),
                           discounts=discounts.astype(np.float32), weights=np.ones(n, dtype=np.float32),
                           indices=np.arange(n), prev_actions=np.zeros(n, dtype=np.int64),
                           next_prev_actions=np.zeros(n, dtype=np.int64))


def test_q_values_are_the_mean_of_dueling_quantiles():
    model = tiny_quantile_model(actions=2, quantiles=3, q_scale=1e6)
    constant_quantiles(model.online, value=[1.0, 2.0, 3.0], advantages=[[0.0, 0.0, 0.0], [2.0, 4.0, 6.0]])
    obs = torch.zeros(4, STACK, FRAME, FRAME, dtype=torch.uint8)
    quantiles = model.quantiles(obs)
    # per quantile: value + advantage - mean over actions of the advantage
    expected = torch.tensor([[1.0 - 1, 2.0 - 2, 3.0 - 3], [1.0 + 1, 2.0 + 2, 3.0 + 3]])
    assert quantiles.shape == (4, 2, 3)
    torch.testing.assert_close(quantiles, expected.expand(4, 2, 3), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model(obs), expected.mean(dim=1).expand(4, 2), rtol=1e-5, atol=1e-5)
    assert (model.select_action(obs, 0.0) == 1).all()


def test_a_network_without_quantiles_refuses_to_give_them():
    model = DuelingDDQN(STACK, 3, FRAME, conv_width=4, hidden_size=16)
    with pytest.raises(ValueError, match="no quantile"):
        model.quantiles(torch.zeros(1, STACK, FRAME, FRAME, dtype=torch.uint8))


def test_quantile_loss_minimised_by_the_distributions_quantiles():
    """Free quantiles fitted to samples of a known distribution settle at its quantiles at the midpoints."""
    torch.manual_seed(0)
    n = 10
    estimates = torch.zeros(1, n, requires_grad=True)
    optimizer = torch.optim.Adam([estimates], lr=0.02)
    for _ in range(1500):
        samples = torch.rand(1, 256) * 4.0  # uniform on [0, 4]: quantile tau is 4 tau
        optimizer.zero_grad()
        quantile_huber_loss(estimates, samples, kappa=0.1).sum().backward()
        optimizer.step()
    taus = (torch.arange(n) + 0.5) / n
    torch.testing.assert_close(estimates.detach()[0], 4.0 * taus, atol=0.15, rtol=0.0)


def test_the_target_bootstraps_on_the_target_networks_quantiles_of_the_online_choice():
    model = tiny_quantile_model(actions=2, quantiles=2, q_scale=1e6)
    constant_quantiles(model.online, value=[0.0, 0.0], advantages=[[0.0, 0.0], [1.0, 1.0]])  # online picks 1
    constant_quantiles(model.target, value=[0.0, 0.0], advantages=[[9.0, 9.0], [1.0, 3.0]])  # target prefers 0
    learner = QuantileDDQNLearner(model, reward_scale=0.5)
    obs = torch.zeros(2, STACK, FRAME, FRAME, dtype=torch.uint8)
    targets = learner.quantile_targets(torch.tensor([2.0, 2.0]), torch.tensor([0.5, 0.0]), obs)
    # action 1's target quantiles: 1 - 5 = -4 and 3 - 6 = -3 (advantages minus their mean over actions)
    expected = torch.tensor([[1.0 + 0.5 * -4.0, 1.0 + 0.5 * -3.0], [1.0, 1.0]])  # no bootstrap after a terminal
    torch.testing.assert_close(targets, expected, rtol=1e-5, atol=1e-5)


def test_the_learner_learns_a_two_outcome_return_distribution_and_its_mean():
    """The same observation and action end with a return of 0 or 10, half the time each: the lower quantiles go
    to 0, the upper ones to 10, and the Q-value (their mean) to 5, where a DQN would learn the mean alone. (Within
    the Huber threshold, 1, the loss is quadratic and pulls quantiles toward the mean: outcomes 10 apart show the
    quantiles clearly.)"""
    model = tiny_quantile_model(actions=2, quantiles=8, seed=1)
    learner = QuantileDDQNLearner(model, reward_scale=1.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    obs = np.full((32, STACK, FRAME, FRAME), 100, dtype=np.uint8)
    batch = batch_of(obs, np.zeros(32, dtype=np.int64), np.tile([0.0, 10.0], 16), np.zeros(32))
    first, info = learner.compute_loss(batch)
    assert set(info.metrics) >= {"q_loss", "q_mean", "q_max", "td_error_mean"}
    assert info.priorities is not None and info.priorities.shape == (32,) and np.isfinite(info.priorities).all()
    for _ in range(800):
        optimizer.zero_grad()
        loss, info = learner.compute_loss(batch)
        loss.backward()
        optimizer.step()
    assert loss.item() < first.item()
    with torch.no_grad():
        quantiles = model.quantiles(torch.from_numpy(obs[:1]))[0, 0]
        q = float(model(torch.from_numpy(obs[:1]))[0, 0])
    np.testing.assert_allclose(quantiles[:3].numpy(), 0.0, atol=1.0)
    np.testing.assert_allclose(quantiles[-3:].numpy(), 10.0, atol=1.0)
    assert q == pytest.approx(5.0, abs=0.5)


def test_importance_weights_scale_the_quantile_loss():
    model = tiny_quantile_model()
    learner = QuantileDDQNLearner(model)
    rng = np.random.default_rng(2)
    batch = batch_of(rng.integers(0, 256, (6, STACK, FRAME, FRAME), dtype=np.uint8), rng.integers(0, 3, 6),
                     rng.normal(size=6), np.full(6, 0.9))
    full, _ = learner.compute_loss(batch)
    batch.weights = batch.weights * 0.5
    half, _ = learner.compute_loss(batch)
    torch.testing.assert_close(half, full * 0.5)


def test_the_option_builds_the_quantile_learner_and_is_checked():
    model, learner = build_model(RunConfig(quantiles=16, conv_width=4, hidden_size=16, frame_size=36).validate(), 7)
    assert isinstance(learner, QuantileDDQNLearner)
    assert model.quantiles(torch.zeros(1, 4, 36, 36, dtype=torch.uint8)).shape == (1, 7, 16)
    _, plain = build_model(RunConfig(conv_width=4, hidden_size=16, frame_size=36), 7)
    assert not isinstance(plain, QuantileDDQNLearner)
    for bad in ({"quantiles": -1}, {"quantiles": 8, "lower_bound": True}, {"quantiles": 8, "munchausen_alpha": 0.9}):
        with pytest.raises(ConfigError, match="--quantiles"):
            RunConfig(**bad).validate()
