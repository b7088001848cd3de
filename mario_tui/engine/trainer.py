"""Single-process reference trainer: collect → store → sample → loss → optimizer step.

The distributed runtime must match what this does; tests use it to check learning end to end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from mario_tui.engine.collector import Collector, EpisodeResult
from mario_tui.engine.config import RunConfig
from mario_tui.engine.optim import (
    clip_gradients,
    group_norm_metrics,
    make_optimizer,
    make_scheduler,
    param_groups,
)
from mario_tui.engine.registry import build_model


def make_buffer(config: RunConfig, seed: int | None) -> Any:
    from mario_tui.engine.registry import REGISTRY
    from mario_tui.engine.replay import ReplayBuffer

    prioritized = config.per and REGISTRY[config.model].prioritized_replay
    return ReplayBuffer(config.buffer_size, (config.frame_size, config.frame_size), config.frame_stack,
                        n_step=config.n_step, gamma=config.gamma, prioritized=prioritized,
                        alpha=config.per_alpha, beta_start=config.per_beta, beta_steps=config.per_beta_steps,
                        seed=seed)


@dataclass
class TrainerReport:
    updates: int = 0
    env_steps: int = 0
    episodes: list[EpisodeResult] = field(default_factory=list)
    last_metrics: dict[str, float] = field(default_factory=dict)


class Trainer:
    """Everything in one process, on one env: the reference for the distributed runtime."""

    def __init__(self, config: RunConfig, env: Any = None) -> None:
        config.validate()
        self.config = config
        torch.manual_seed(config.seed)
        if env is None:
            from mario_tui.engine.env import make_env

            env = make_env(config, seed=config.seed)
        self.env = env
        self.model, self.learner = build_model(config, int(env.action_space.n))
        self.buffer = make_buffer(config, config.seed)
        self.collector = Collector(env, self.buffer, self.model, config.eps_start, config.eps_end,
                                   config.eps_decay_steps, seed=config.seed)
        self.optimizer = make_optimizer(param_groups(self.model, config), torch.device("cpu"))
        self.scheduler = make_scheduler(self.optimizer, config)
        self.report = TrainerReport()

    def ready_to_learn(self) -> bool:
        return len(self.buffer) >= max(self.config.learning_starts, self.config.batch_size)

    def learn_step(self) -> dict[str, float]:
        """One optimizer step over `accumulate_grads` batches; updates priorities and targets."""
        cfg = self.config
        self.optimizer.zero_grad(set_to_none=True)
        metrics: dict[str, float] = {}
        for _ in range(cfg.accumulate_grads):
            batch = self.learner.sample_batch(self.buffer, cfg.batch_size)
            loss, info = self.learner.compute_loss(batch)
            (loss / cfg.accumulate_grads).backward()
            if info.priorities is not None and cfg.per:
                self.buffer.update_priorities(batch.indices, info.priorities)
            metrics = info.metrics
        metrics["grad_norm"], group_norms = clip_gradients(self.optimizer, cfg.grad_clip)
        metrics.update(group_norm_metrics(group_norms))
        self.optimizer.step()
        self.scheduler.step()
        self.report.updates += 1
        if cfg.tau > 0:
            self.learner.update_targets(cfg.tau)
        elif self.report.updates % cfg.target_update == 0:
            self.learner.update_targets(None)
        metrics["lr"] = self.optimizer.param_groups[0]["lr"]
        return metrics

    def run(self, updates: int) -> TrainerReport:
        """Train until `updates` optimizer steps were made in total."""
        while self.report.updates < updates:
            self.report.episodes.extend(self.collector.collect(self.config.collect_steps))
            self.report.env_steps = self.collector.stats.steps
            if self.ready_to_learn():
                self.report.last_metrics = self.learn_step()
        return self.report
