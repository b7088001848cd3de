"""Dreamer update cost on CPU with 1 torch thread, against the DDQN learner on as many frames, in the same run.

Measured (median of interleaved rounds, default RunConfig sizes at 84x84, random frames):
  * world model: forward + backward of the world-model loss on B sequences x L steps (B x L frames);
  * full update: forward + backward of the whole Dreamer loss (world model + imagination + actor + critic);
  * imagination alone: the no-grad rollout of imag_horizon steps from imag_starts posterior states;
  * baseline: the DDQN learner's forward + backward on B x L transitions (4-frame stacks, Double-DQN target).

    uv run python benchmarks/bench_dreamer.py [--sequences 16] [--reps 10]
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
import torch
from timing import median_ms  # benchmarks/ is sys.path[0] when a script runs

from mario_tui.engine.config import RunConfig
from mario_tui.engine.flat import parameter_count
from mario_tui.engine.learners.dreamer import DreamerLearner
from mario_tui.engine.registry import build_model
from mario_tui.engine.replay import SequenceBatch

ACTIONS = 7  # the `simple` action set


def sequence_batch(sequences: int, length: int, frame: int) -> SequenceBatch:
    rng = np.random.default_rng(0)
    is_first = np.zeros((sequences, length), np.float32)
    is_first[::4, length // 2] = 1
    return SequenceBatch(obs=rng.integers(0, 256, (sequences, length, frame, frame), dtype=np.uint8),
                         actions=rng.integers(0, ACTIONS, (sequences, length)),
                         rewards=rng.normal(size=(sequences, length)).astype(np.float32),
                         terminals=np.zeros((sequences, length), np.float32), is_first=is_first,
                         starts=np.zeros(sequences, np.int64))


def transition_batch(size: int, frame: int, stack: int):
    from types import SimpleNamespace

    rng = np.random.default_rng(0)
    return SimpleNamespace(
        obs=rng.integers(0, 256, (size, stack, frame, frame), dtype=np.uint8),
        next_obs=rng.integers(0, 256, (size, stack, frame, frame), dtype=np.uint8),
        actions=rng.integers(0, ACTIONS, size), returns=rng.normal(size=size).astype(np.float32),
        discounts=np.full(size, 0.97, np.float32), weights=np.ones(size, np.float32), indices=np.arange(size),
        prev_actions=rng.integers(0, ACTIONS, size), next_prev_actions=rng.integers(0, ACTIONS, size))




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequences", type=int, default=16, help="sequences per batch (B)")
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)

    config = RunConfig(model="dreamer", batch_size=args.sequences)
    model, learner = build_model(config, ACTIONS)
    assert isinstance(learner, DreamerLearner)
    batch = sequence_batch(args.sequences, config.seq_len, config.frame_size)
    frames = args.sequences * config.seq_len
    ddqn_model, ddqn = build_model(config.replace(model="ddqn", batch_size=frames), ACTIONS)
    transitions = transition_batch(frames, config.frame_size, config.frame_stack)

    def world_model() -> None:
        model.zero_grad(set_to_none=False)
        loss, *_ = learner.world_model_loss(batch)
        loss.backward()

    def full() -> None:
        model.zero_grad(set_to_none=False)
        loss, _ = learner.compute_loss(batch)
        loss.backward()

    with torch.no_grad():
        _, states, alive, _ = learner.world_model_loss(batch)
    start, _ = learner.start_states(states, alive)

    def imagination() -> None:
        learner.imagine(start, config.imag_horizon)

    def baseline() -> None:
        ddqn_model.zero_grad(set_to_none=False)
        loss, _ = ddqn.compute_loss(transitions)
        loss.backward()

    timings: dict[str, list[float]] = {"baseline": [], "world_model": [], "full": [], "imagination": []}
    fns = {"baseline": baseline, "world_model": world_model, "full": full, "imagination": imagination}
    for _ in range(args.rounds):  # interleave: the machine is noisy
        for name, fn in fns.items():
            timings[name].append(median_ms(fn, args.reps))
    ms = {name: statistics.median(values) for name, values in timings.items()}

    print(f"torch {torch.__version__}, 1 thread, {config.frame_size}x{config.frame_size}, "
          f"median of {args.rounds} x {args.reps} reps")
    print(f"dreamer: B={args.sequences} sequences x L={config.seq_len} = {frames} frames; deter {config.deter_size}, "
          f"stoch {config.stoch_size}x{config.stoch_classes}, conv_width {config.conv_width}, hidden "
          f"{config.hidden_size}; imagination {config.imag_horizon} steps from "
          f"{start.h.shape[0]} start states; {parameter_count(model.parameters()):,} trainable parameters")
    print(f"ddqn baseline: {frames} transitions ({config.frame_stack}-frame stacks), "
          f"{parameter_count(ddqn_model.parameters()):,} parameters")
    print(f"baseline  DDQN loss fwd+bwd, {frames} transitions:      {ms['baseline']:7.1f} ms")
    print(f"dreamer   world-model loss fwd+bwd, {frames} frames:     {ms['world_model']:7.1f} ms "
          f"({ms['world_model'] / frames * 1000:.0f} us/frame)")
    print(f"dreamer   full loss fwd+bwd (world model + behaviour): {ms['full']:7.1f} ms")
    print(f"dreamer   imagination rollout alone (no grad):         {ms['imagination']:7.1f} ms")
    print(f"ratio world model / DDQN: {ms['world_model'] / ms['baseline']:.2f}")
    print(f"ratio full update / DDQN: {ms['full'] / ms['baseline']:.2f}")
    print(f"ratio imagination / full update: {ms['imagination'] / ms['full']:.2f}")


if __name__ == "__main__":
    main()
