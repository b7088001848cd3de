"""Per-group optimisation: Dreamer's world model, actor and critic each get their own learning rate and their own
gradient clipping; an optimizer state saved with one group (older Dreamer checkpoints) still resumes."""

from __future__ import annotations

import math

import pytest
import torch

from mario_tui.engine.config import RunConfig
from mario_tui.engine.coordinator import Coordinator
from mario_tui.engine.optim import clip_gradients, cosine_lr, make_optimizer, make_scheduler, param_groups
from mario_tui.engine.registry import build_model

TINY_DREAMER = dict(model="dreamer", frame_size=36, conv_width=4, hidden_size=16, deter_size=16, stoch_size=4,
                    stoch_classes=4, actions="right_only", lr=3e-4, lr_min=3e-5, lr_decay_updates=10,
                    actor_lr=5e-5, critic_lr=1e-4, grad_clip=10.0)


def dreamer_coordinator(**changes: object) -> Coordinator:
    config = RunConfig(**{**TINY_DREAMER, **changes})
    torch.manual_seed(0)
    _, learner = build_model(config, 5)
    return Coordinator(config, learner, torch.device("cpu"))


def test_groups_partition_the_parameters_in_order_with_their_own_rates():
    coordinator = dreamer_coordinator()
    groups = coordinator.optimizer.param_groups
    assert [g["name"] for g in groups] == ["world_model", "actor", "critic"]
    assert [g["lr"] for g in groups] == [3e-4, 5e-5, 1e-4]
    # The flat gradient layout follows parameters(): the groups must cover it exactly, in the same order.
    in_groups = [p for g in groups for p in g["params"]]
    assert [id(p) for p in in_groups] == [id(p) for p in coordinator.model.parameters()]
    ddqn_config = RunConfig(frame_size=36, conv_width=4, hidden_size=16)
    ddqn, _ = build_model(ddqn_config, 5)
    assert [g["name"] for g in param_groups(ddqn, ddqn_config)] == ["q"]


def test_each_group_is_clipped_on_its_own():
    coordinator = dreamer_coordinator()
    groups = {g["name"]: g["params"] for g in coordinator.optimizer.param_groups}
    for name, scale in (("world_model", 1e3), ("actor", 1e-3), ("critic", 1e-3)):
        for p in groups[name]:
            p.grad = torch.full_like(p, scale)
    actor_before = [p.grad.clone() for p in groups["actor"]]
    total, norms = clip_gradients(coordinator.optimizer, 10.0)
    assert norms["world_model"] > 1e3 and total == pytest.approx(math.sqrt(sum(n * n for n in norms.values())))
    clipped = torch.linalg.vector_norm(torch.cat([p.grad.ravel() for p in groups["world_model"]]))
    assert float(clipped) == pytest.approx(10.0, rel=1e-4)
    # One global clip would have scaled the actor's gradient by 10 / 1e3+; per group it is untouched.
    assert all(torch.equal(p.grad, before) for p, before in zip(groups["actor"], actor_before, strict=True))


def test_every_group_follows_the_cosine_schedule_from_its_own_rate():
    coordinator = dreamer_coordinator()
    config = coordinator.config
    for step in range(1, 13):
        coordinator.optimizer.step()
        coordinator.scheduler.step()
        factor = cosine_lr(step, config) / config.lr
        assert [g["lr"] for g in coordinator.optimizer.param_groups] == pytest.approx(
            [3e-4 * factor, 5e-5 * factor, 1e-4 * factor])
    assert coordinator.optimizer.param_groups[1]["lr"] == pytest.approx(5e-5 * 3e-5 / 3e-4)  # the schedule's end


def test_a_single_group_optimizer_state_resumes_into_the_groups():
    """A checkpoint written before Dreamer had per-part groups: one Adam group over parameters()."""
    old = dreamer_coordinator()
    old_optimizer = make_optimizer([{"params": list(old.model.parameters()), "lr": old.config.lr}],
                                   torch.device("cpu"))
    old_scheduler = make_scheduler(old_optimizer, old.config)
    for step in range(4):
        for p in old.model.parameters():
            p.grad = torch.randn_like(p) * (step + 1)
        old_optimizer.step()
        old_scheduler.step()
    saved = {**old.state(), "optimizer": old_optimizer.state_dict(), "scheduler": old_scheduler.state_dict()}

    resumed = dreamer_coordinator()
    resumed.load_state(saved)
    factor = cosine_lr(4, resumed.config) / resumed.config.lr
    assert [g["lr"] for g in resumed.optimizer.param_groups] == pytest.approx([3e-4 * factor, 5e-5 * factor,
                                                                              1e-4 * factor])
    old_moments = [old_optimizer.state[p]["exp_avg"] for p in old.model.parameters()]
    new_moments = [resumed.optimizer.state[p]["exp_avg"] for p in resumed.model.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(old_moments, new_moments, strict=True))
    resumed.step(torch.ones(resumed.numel).numpy())  # and it trains on
    assert resumed.scheduler.last_epoch == 5 and resumed.counters.updates == old.counters.updates + 1
