"""How far one update moves Dreamer's actor: one Adam group with one global clip (the layout before per-part
groups) against per-part groups and clips, on the same real Mario frames, in the same run.

The world model's gradient norm is ~10^3 (pixel reconstruction), the actor's ~0.5. One global clip at
`--grad-clip` scales the actor's gradient down with the world model's, to a size Adam's eps then swamps.

    uv run python benchmarks/bench_dreamer_clipping.py [--updates 8] [--steps 600]
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
import torch

from mario_tui.engine.config import RunConfig
from mario_tui.engine.env import make_env
from mario_tui.engine.optim import clip_gradients, make_optimizer, param_groups
from mario_tui.engine.registry import build_model, make_buffer


def real_frames(config: RunConfig, steps: int):
    """A replay buffer of `steps` random-action steps of the real emulator."""
    env = make_env(config, seed=config.seed)
    buffer = make_buffer(config, config.seed)
    rng = np.random.default_rng(config.seed)
    obs, _ = env.reset(seed=config.seed)
    buffer.start_episode(obs)
    for _ in range(steps):
        action = int(rng.integers(env.action_space.n))
        obs, reward, terminated, truncated, _ = env.step(action)
        buffer.add(action, float(reward), obs, terminated, truncated)
        if terminated or truncated:
            obs, _ = env.reset()
            buffer.start_episode(obs)
    actions = int(env.action_space.n)
    env.close()
    return buffer, actions


def actor_moves(config: RunConfig, buffer, actions: int, updates: int, one_group: bool) -> tuple[float, float]:
    """(median share of the actor's gradient norm left after clipping, median L2 move of the actor per update)."""
    torch.manual_seed(config.seed)
    model, learner = build_model(config, actions)
    groups = ([{"params": list(model.parameters()), "lr": config.lr, "name": "all"}] if one_group
              else param_groups(model, config))
    optimizer = make_optimizer(groups, torch.device("cpu"))
    actor = list(model.actor.parameters())

    def flat(tensors) -> torch.Tensor:
        return torch.cat([t.detach().ravel() for t in tensors])

    kept, moves = [], []
    for _ in range(updates):
        before = flat(actor).clone()
        optimizer.zero_grad()
        loss, _ = learner.compute_loss(learner.sample_batch(buffer, config.batch_size))
        loss.backward()
        raw = float(torch.linalg.vector_norm(flat(p.grad for p in actor)))
        clip_gradients(optimizer, config.grad_clip)
        kept.append(float(torch.linalg.vector_norm(flat(p.grad for p in actor))) / raw)
        optimizer.step()
        moves.append(float(torch.linalg.vector_norm(flat(actor) - before)))
    return statistics.median(kept), statistics.median(moves)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--updates", type=int, default=8)
    parser.add_argument("--steps", type=int, default=600, help="real emulator steps in the replay buffer")
    parser.add_argument("--batch", type=int, default=16, help="sequences per batch")
    args = parser.parse_args()
    torch.set_num_threads(2)
    config = RunConfig.with_model_defaults(model="dreamer", batch_size=args.batch, seed=0)
    buffer, actions = real_frames(config, args.steps)
    same_rate = config.replace(actor_lr=config.lr, critic_lr=config.lr)
    rows = [("one group, global clip (baseline), all at --lr", actor_moves(same_rate, buffer, actions, args.updates,
                                                                           True)),
            ("per-part clips, all at --lr (the clip alone)", actor_moves(same_rate, buffer, actions, args.updates,
                                                                         False)),
            (f"per-part clips and rates (defaults: actor {config.actor_lr:g})",
             actor_moves(config, buffer, actions, args.updates, False))]
    base_move = rows[0][1][1]
    print(f"Dreamer defaults at {config.frame_size}x{config.frame_size}, batch {args.batch} x {config.seq_len}, "
          f"grad clip {config.grad_clip:g}, median of {args.updates} updates on {args.steps} real steps")
    for label, (kept, move) in rows:
        print(f"{label:58s} actor gradient kept {kept:.4f}  actor move {move:.4f}  ratio {move / base_move:.1f}")


if __name__ == "__main__":
    main()
