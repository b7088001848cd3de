"""Dueling Double DQN model and learner: the maths, checked on tiny networks."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from mario_tui.engine.learners.ddqn import DDQNLearner
from mario_tui.engine.models.base import Model
from mario_tui.engine.models.ddqn import DuelingDDQN, bounded

FRAME = 36
STACK = 4


def tiny_model(actions: int = 3, q_scale: float = 100.0, seed: int = 0) -> DuelingDDQN:
    torch.manual_seed(seed)
    return DuelingDDQN(STACK, actions, FRAME, conv_width=4, hidden_size=16, q_scale=q_scale, seed=seed)


def constant_heads(net: torch.nn.Module, value: float, advantages: list[float]) -> None:
    """Zero every weight and set the last biases, so Q is the same known vector for every input."""
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        net.value[-1].bias.fill_(value)
        net.advantage[-1].bias.copy_(torch.tensor(advantages))


def random_obs(batch: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, STACK, FRAME, FRAME), dtype=torch.uint8, generator=g)


def test_model_satisfies_protocol_and_parameters_are_online_only():
    model = tiny_model()
    assert isinstance(model, Model)
    online = {id(p) for p in model.online.parameters()}
    assert {id(p) for p in model.parameters()} == online
    assert all(not p.requires_grad for p in model.target.parameters())
    state = model.state_dict()
    assert any(k.startswith("target.") for k in state) and any(k.startswith("online.") for k in state)


def test_dueling_combination_subtracts_mean_advantage():
    model = tiny_model(actions=3, q_scale=1e6)
    constant_heads(model.online, value=2.0, advantages=[1.0, 4.0, 1.0])
    q = model(random_obs(5))
    expected = torch.tensor([2.0 + 1 - 2, 2.0 + 4 - 2, 2.0 + 1 - 2])
    assert q.shape == (5, 3)
    torch.testing.assert_close(q, expected.expand(5, 3), rtol=1e-5, atol=1e-5)


def test_softsign_bound_holds_for_extreme_inputs():
    model = tiny_model(q_scale=10.0)
    with torch.no_grad():
        for p in model.online.parameters():
            p.mul_(1e4)
    obs = torch.full((4, STACK, FRAME, FRAME), 255, dtype=torch.uint8)
    q = model(obs)
    assert torch.isfinite(q).all()
    assert q.abs().max() <= 10.0
    assert q.abs().max() > 9.0  # really pushed to the bound
    # near zero the bound is ~identity
    small = torch.tensor([0.01, -0.5])
    torch.testing.assert_close(bounded(small, 100.0), small, rtol=1e-2, atol=1e-4)


def test_double_dqn_target_matches_hand_computed_case():
    model = tiny_model(actions=3, q_scale=100.0)
    constant_heads(model.online, value=0.0, advantages=[1.0, 3.0, 2.0])   # Q_online = [-1, 1, 0] → a* = 1
    constant_heads(model.target, value=1.0, advantages=[5.0, 0.0, 4.0])   # Q_target = [3, -2, 2]
    learner = DDQNLearner(model, reward_scale=0.5)
    target = learner.td_target(torch.tensor([2.0, 2.0]), torch.tensor([0.9, 0.0]), random_obs(2))
    q_target_a1 = 100.0 * (-2.0 / 100.0) / (1 + 2.0 / 100.0)      # softsign-bounded −2
    expected = torch.tensor([2.0 * 0.5 + 0.9 * q_target_a1, 2.0 * 0.5])  # no bootstrap after a terminal
    torch.testing.assert_close(target, expected)
    assert target[0] < 1.0 + 0.9 * 2.9  # plain DQN (max over target) would have taken Q_target = 3


def test_munchausen_target_matches_hand_computed_case():
    model = tiny_model(actions=3, q_scale=1e6)  # a huge bound: Q is the heads' vector, softsign aside
    constant_heads(model.online, value=0.0, advantages=[9.0, 9.0, 9.0])  # the online net takes no part
    constant_heads(model.target, value=0.0, advantages=[1.0, 0.0, -1.0])  # Q_target = [1, 0, -1] everywhere
    temperature, alpha = 0.5, 0.9
    learner = DDQNLearner(model, reward_scale=0.5, munchausen_alpha=alpha, munchausen_temperature=temperature)
    q = torch.tensor([1.0, 0.0, -1.0])
    log_pi = torch.log_softmax(q / temperature, dim=0)
    soft_value = float((log_pi.exp() * (q - temperature * log_pi)).sum())
    bonus_a0 = alpha * max(float(temperature * log_pi[0]), -1.0)
    bonus_a2 = alpha * max(float(temperature * log_pi[2]), -1.0)  # T · log pi(a2) = -2.07: clipped at -1
    target = learner.munchausen_target(torch.tensor([2.0, 2.0]), torch.tensor([0.9, 0.0]), random_obs(2),
                                       torch.tensor([0, 2]), random_obs(2, seed=1))
    expected = torch.tensor([1.0 + bonus_a0 + 0.9 * soft_value, 1.0 + bonus_a2])
    torch.testing.assert_close(target, expected, rtol=1e-5, atol=1e-5)
    assert bonus_a2 == pytest.approx(-0.9)
    assert soft_value > 1.0  # the soft value exceeds max Q by the policy's entropy bonus


def test_the_learner_uses_the_munchausen_target_only_when_asked():
    batch = fixed_batch()
    losses = []
    for alpha in (0.0, 0.9):
        model = tiny_model(seed=3)
        losses.append(DDQNLearner(model, munchausen_alpha=alpha).compute_loss(batch)[0].item())
    assert losses[0] != pytest.approx(losses[1])
    model = tiny_model(seed=3)
    learner = DDQNLearner(model, munchausen_alpha=0.9, munchausen_temperature=0.03)
    loss, info = learner.compute_loss(batch)
    loss.backward()
    assert np.isfinite(info.priorities).all() and all(p.grad is not None for p in model.parameters())


def test_the_lower_bound_raises_targets_below_it_and_only_when_asked():
    model = tiny_model(q_scale=1e6)
    for net in (model.online, model.target):
        constant_heads(net, value=1.0, advantages=[0.0, 0.0, 0.0])  # Q = 1 everywhere
    batch = fixed_batch(4)
    batch.returns = np.zeros(4, dtype=np.float32)
    batch.discounts = np.ones(4, dtype=np.float32)  # plain target: 0 + 1 * Q_target = 1
    batch.weights = np.ones(4, dtype=np.float32)
    batch.lower_bounds = np.array([30.0, 6.0, -np.inf, -np.inf], dtype=np.float32)  # scaled by 1/10: 3, 0.6
    off = DDQNLearner(model, reward_scale=0.1)
    _, info = off.compute_loss(batch)
    np.testing.assert_allclose(info.priorities, 0.0, atol=1e-6)
    assert "bound_share" not in info.metrics
    on = DDQNLearner(model, reward_scale=0.1, lower_bound=True)
    _, info = on.compute_loss(batch)
    np.testing.assert_allclose(info.priorities, [2.0, 0.0, 0.0, 0.0], atol=1e-5)  # only 3 > 1 raises a target
    assert info.metrics["bound_share"] == 0.25
    del batch.lower_bounds  # a batch without bounds (a world-model buffer's, or an old one) trains as before
    _, info = on.compute_loss(batch)
    np.testing.assert_allclose(info.priorities, 0.0, atol=1e-6)


def fixed_batch(batch: int = 8) -> SimpleNamespace:
    rng = np.random.default_rng(1)
    return SimpleNamespace(
        obs=rng.integers(0, 256, (batch, STACK, FRAME, FRAME), dtype=np.uint8),
        actions=rng.integers(0, 3, batch),
        returns=rng.normal(size=batch).astype(np.float32),
        next_obs=rng.integers(0, 256, (batch, STACK, FRAME, FRAME), dtype=np.uint8),
        discounts=np.where(rng.random(batch) < 0.3, 0.0, 0.97).astype(np.float32),
        weights=rng.uniform(0.3, 1.0, batch).astype(np.float32),
        indices=np.arange(batch),
        prev_actions=rng.integers(0, 3, batch),
        next_prev_actions=rng.integers(0, 3, batch),
    )


def test_loss_goes_to_zero_when_overfitting_a_fixed_batch():
    model = tiny_model()
    learner = DDQNLearner(model, reward_scale=1.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    batch = fixed_batch()
    first, info = learner.compute_loss(batch)
    assert set(info.metrics) >= {"q_mean", "q_max", "q_loss", "td_error_mean"}
    assert info.priorities is not None and info.priorities.shape == (8,)
    for _ in range(300):
        optimizer.zero_grad()
        loss, info = learner.compute_loss(batch)
        loss.backward()
        optimizer.step()
    assert loss.item() < 1e-3 * max(first.item(), 1e-3) or loss.item() < 1e-4
    assert info.metrics["td_error_mean"] < 0.05


def test_importance_weights_scale_the_loss():
    model = tiny_model()
    learner = DDQNLearner(model)
    batch = fixed_batch()
    loss_full, _ = learner.compute_loss(batch)
    batch.weights = batch.weights * 0.5
    loss_half, _ = learner.compute_loss(batch)
    torch.testing.assert_close(loss_half, loss_full * 0.5)


def test_hard_and_soft_target_updates():
    model = tiny_model()
    learner = DDQNLearner(model)
    with torch.no_grad():
        for p in model.online.parameters():
            p.add_(1.0)
    before = [p.clone() for p in model.target.parameters()]
    learner.update_targets(tau=0.25)
    for b, t, o in zip(before, model.target.parameters(), model.online.parameters(), strict=True):
        torch.testing.assert_close(t, 0.75 * b + 0.25 * o)
    learner.update_targets(None)
    for t, o in zip(model.target.parameters(), model.online.parameters(), strict=True):
        assert torch.equal(t, o)


@pytest.mark.parametrize("epsilon, expect_random", [(0.0, False), (1.0, True)])
def test_select_action_is_epsilon_greedy(epsilon, expect_random):
    model = tiny_model(actions=3)
    constant_heads(model.online, value=0.0, advantages=[0.0, 5.0, 0.0])
    actions = model.select_action(random_obs(300), epsilon)
    assert actions.dtype == np.int64 and actions.shape == (300,)
    if expect_random:
        assert set(actions.tolist()) == {0, 1, 2}
    else:
        assert (actions == 1).all()


def prev_action_model() -> DuelingDDQN:
    """A 3-action model whose Q depends only on the previous action (shown one-hot): after action k, action
    (k + 1) % 3 is best."""
    torch.manual_seed(0)
    model = DuelingDDQN(STACK, 3, FRAME, conv_width=4, hidden_size=16, q_scale=100.0, seed=0,
                        prev_action_codes=np.eye(3).tolist())
    with torch.no_grad():
        for p in model.online.parameters():
            p.zero_()
        first, last = model.online.advantage[0], model.online.advantage[-1]
        for k in range(3):
            first.weight[k, first.in_features - 3 + k] = 1.0  # hidden unit k fires after action k
            last.weight[(k + 1) % 3, k] = 5.0
    return model


def test_the_previous_action_is_an_input_and_select_action_carries_it():
    """NES Mario jumps only on a fresh press of A: what an action does depends on the one before it, which the
    frames do not show. The model sees it beside the frames, and remembers what it chose last."""
    model = prev_action_model()
    obs = random_obs(3)
    q = model(obs, "online", torch.tensor([0, 1, 2]))
    assert q.argmax(dim=1).tolist() == [1, 2, 0]
    assert model(obs).argmax(dim=1).tolist() == [1, 1, 1]  # no previous action given: as after the no-op
    model.reset_state(1)
    chosen = [int(model.select_action(obs[:1], 0.0)[0]) for _ in range(4)]
    assert chosen == [1, 2, 0, 1]
    model.reset_state(1)  # a new episode starts after the no-op again
    assert int(model.select_action(obs[:1], 0.0)[0]) == 1
    assert model.select_action(obs[:1], 1.0)[0] in (0, 1, 2)  # a random action is carried too
    follow = model.select_action(obs[:1], 0.0)[0]
    assert follow == (int(model.last_values.argmax()))


def test_the_learner_feeds_the_batchs_previous_actions():
    model = prev_action_model()
    constant_heads(model.target, value=0.0, advantages=[0.0, 0.0, 0.0])
    learner = DDQNLearner(model, reward_scale=1.0)
    batch = fixed_batch(3)
    batch.actions = np.array([1, 2, 0])
    batch.discounts = np.zeros(3, np.float32)
    batch.returns = np.zeros(3, np.float32)
    batch.prev_actions = np.array([0, 1, 2])  # each action taken is the one the model rates best after its prev
    _, info = learner.compute_loss(batch)
    q_taken = model(torch.from_numpy(batch.obs), "online", torch.from_numpy(batch.prev_actions)).gather(
        1, torch.from_numpy(batch.actions)[:, None]).squeeze(1)
    np.testing.assert_allclose(info.priorities, q_taken.detach().abs().numpy(), rtol=1e-5)
    assert (q_taken > 3.0).all()  # the best action after each row's own previous action
    batch.prev_actions = np.array([2, 0, 1])  # the same actions after other previous actions are rated lower
    _, shifted = learner.compute_loss(batch)
    assert shifted.priorities.max() < info.priorities.min()


def test_random_shift_moves_each_row_by_at_most_pad_pixels_with_edges_repeated():
    from mario_tui.engine.augment import random_shift

    x = torch.arange(8 * 8, dtype=torch.uint8).reshape(1, 1, 8, 8).repeat(64, 2, 1, 1)
    shifted = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert shifted.shape == x.shape and shifted.dtype == torch.uint8
    assert torch.equal(shifted[:, 0], shifted[:, 1])  # one offset for the whole stack
    padded = torch.nn.functional.pad(x[:1].float(), (2, 2, 2, 2), mode="replicate")[0, 0]
    crops = {(dy, dx): padded[dy:dy + 8, dx:dx + 8] for dy in range(5) for dx in range(5)}
    seen = set()
    for row in shifted[:, 0].float():
        match = [offset for offset, crop in crops.items() if torch.equal(crop, row)]
        assert match, "every row is the frame padded and cropped at some offset within the pad"
        seen.add(match[0])
    assert len(seen) > 10  # offsets vary between rows
    assert random_shift(x, 0) is x


def test_the_learner_augments_both_observations_when_asked():
    batch = fixed_batch(8)
    model = tiny_model()
    plain, _ = DDQNLearner(model).compute_loss(batch)
    again, _ = DDQNLearner(model).compute_loss(batch)
    torch.testing.assert_close(plain, again)  # without augmentation the loss is a function of the batch
    torch.manual_seed(1)
    augmented, _ = DDQNLearner(model, augment_shift=4).compute_loss(batch)
    assert not torch.allclose(augmented, plain)


def test_a_bf16_trunk_keeps_q_values_and_gradients_in_float32_and_close_to_float32():
    """`--bf16` runs only the conv trunk in bfloat16: Q-values, the loss and every gradient stay float32 (the
    shared-memory gradient slots are float32), and Q stays within bfloat16's rounding of the float32 network."""
    full = tiny_model(seed=3)
    half = DuelingDDQN(STACK, 3, FRAME, conv_width=4, hidden_size=16, q_scale=100.0, seed=3, bf16_trunk=True)
    half.load_state_dict(full.state_dict())
    obs = random_obs(8, seed=1)
    q_full, q_half = full(obs), half(obs)
    assert q_half.dtype == torch.float32
    assert not torch.equal(q_full, q_half)  # the trunk really ran in bfloat16
    torch.testing.assert_close(q_half, q_full, rtol=0.05, atol=0.02)
    batch = SimpleNamespace(obs=obs.numpy(), next_obs=random_obs(8, seed=2).numpy(), actions=np.arange(8) % 3,
                            returns=np.ones(8, np.float32), discounts=np.full(8, 0.9, np.float32),
                            weights=np.ones(8, np.float32), prev_actions=np.zeros(8, np.int64),
                            next_prev_actions=np.zeros(8, np.int64))
    loss, _ = DDQNLearner(half).compute_loss(batch)
    loss.backward()
    grads = [p.grad for p in half.parameters()]
    assert all(g is not None and g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads[:2])  # the first conv layer learns through the bfloat16 trunk
