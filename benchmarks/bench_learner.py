"""Learner cost: one forward+backward+optimizer step of a batch on CPU with 1 torch thread.

Ours (dueling DDQN, Double-DQN n-step target, fused Adam) against a baseline measured in the same run:
the plain Nature-DQN loss (one stream, max target) with torch's default Adam. `--bf16` also times ours with the
conv trunk in bfloat16 (`RunConfig.bf16`), against the same float32 step.

    uv run python benchmarks/bench_learner.py [--batch 32] [--reps 30] [--bf16]
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import torch
from timing import median_ms  # benchmarks/ is sys.path[0] when a script runs
from torch import nn
from torch.nn import functional as F

from mario_tui.engine.config import RunConfig
from mario_tui.engine.flat import parameter_count
from mario_tui.engine.optim import clip_gradients, make_optimizer, param_groups
from mario_tui.engine.registry import build_model


def batch_of(size: int, actions: int, frame: int = 84) -> SimpleNamespace:
    rng = np.random.default_rng(0)
    return SimpleNamespace(
        obs=rng.integers(0, 256, (size, 4, frame, frame), dtype=np.uint8),
        next_obs=rng.integers(0, 256, (size, 4, frame, frame), dtype=np.uint8),
        actions=rng.integers(0, actions, size), returns=rng.normal(size=size).astype(np.float32),
        discounts=np.full(size, 0.97, np.float32), weights=np.ones(size, np.float32), indices=np.arange(size),
        prev_actions=rng.integers(0, actions, size), next_prev_actions=rng.integers(0, actions, size))


def nature_dqn(actions: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(4, 32, 8, 4), nn.ReLU(), nn.Conv2d(32, 64, 4, 2), nn.ReLU(),
                         nn.Conv2d(64, 64, 3, 1), nn.ReLU(), nn.Flatten(), nn.Linear(3136, 512), nn.ReLU(),
                         nn.Linear(512, actions))




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--bf16", action="store_true", help="also time ours with the conv trunk in bfloat16")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = RunConfig()
    batch = batch_of(args.batch, 7)

    def learner_step(config: RunConfig) -> tuple[Callable[[], None], torch.nn.Module, torch.optim.Optimizer]:
        model, learner = build_model(config, 7)
        optimizer = make_optimizer(param_groups(model, config), torch.device("cpu"))

        def step() -> None:
            optimizer.zero_grad(set_to_none=False)
            loss, _ = learner.compute_loss(batch)
            loss.backward()
            clip_gradients(optimizer, config.grad_clip)
            optimizer.step()

        return step, model, optimizer

    ours, model, optimizer = learner_step(config)
    ours_bf16 = learner_step(replace(config, bf16=True))[0] if args.bf16 else None

    base_online, base_target = nature_dqn(7), nature_dqn(7)
    base_opt = torch.optim.Adam(base_online.parameters(), lr=config.lr)
    obs = torch.from_numpy(batch.obs)
    next_obs = torch.from_numpy(batch.next_obs)
    acts = torch.from_numpy(batch.actions).long()

    def baseline() -> None:
        base_opt.zero_grad()
        q = base_online(obs.float() / 255).gather(1, acts[:, None]).squeeze(1)
        with torch.no_grad():
            target = torch.from_numpy(batch.returns) + 0.97 * base_target(next_obs.float() / 255).max(1).values
        F.huber_loss(q, target).backward()
        base_opt.step()

    rounds_ours, rounds_base, rounds_bf16 = [], [], []
    for _ in range(3):  # interleave: the machine is noisy
        rounds_base.append(median_ms(baseline, args.reps))
        rounds_ours.append(median_ms(ours, args.reps))
        if ours_bf16 is not None:
            rounds_bf16.append(median_ms(ours_bf16, args.reps))
    ours_ms, base_ms = statistics.median(rounds_ours), statistics.median(rounds_base)
    print(f"torch {torch.__version__}, 1 thread, batch {args.batch}, 84x84x4, median of 3 x {args.reps} reps")
    print(f"parameters: ours {parameter_count(model.parameters()):,} (dueling, 2 x {config.hidden_size} hidden), "
          f"baseline {parameter_count(base_online.parameters()):,} (Nature DQN)")
    print(f"baseline (Nature DQN, max target, default Adam): {base_ms:.1f} ms per step")
    print(f"ours (dueling Double DQN, n-step target, fused Adam, clip): {ours_ms:.1f} ms per step")
    print(f"ratio ours/baseline: {ours_ms / base_ms:.2f}")
    if rounds_bf16:
        bf16_ms = statistics.median(rounds_bf16)
        print(f"ours with a bfloat16 trunk (--bf16): {bf16_ms:.1f} ms per step; ratio bf16/float32: "
              f"{bf16_ms / ours_ms:.2f}")
    print(f"  of which Adam step: fused {median_ms(optimizer.step, args.reps):.2f} ms, "
          f"default {median_ms(base_opt.step, args.reps):.2f} ms")


if __name__ == "__main__":
    main()
