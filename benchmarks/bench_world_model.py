"""Dreamer's world model alone, on recorded Mario play: reconstruction quality (SSIM, MSE) against updates.

The design's signs of good world-model training are recon MSE < 0.01 and SSIM > 0.9. This script separates the
world model from the RL loop, so its quality can be read per update and compared across options: it records play
once (a right-leaning random policy, half the episodes started from states reached before, so the frames cover the
level and not only its start), fills one replay buffer for training and one for
held-out episodes, then trains the world-model loss of each variant on the same batches and prints SSIM / MSE of
the posterior reconstructions of the held-out frames at fixed update counts, beside the floor of one constant
picture (the mean training frame as every reconstruction). Variants are RunConfig options on top of Dreamer's
defaults (`name:field=value,...`; `adam_eps=E` sets the optimizer's epsilon). `--checkpoint` measures a trained
Dreamer run's world model on the same kind of held-out play instead, so a training run's figures (taken on its own
training batches) can be checked on frames it never saw. Findings: benchmarks/README.md.

    uv run python benchmarks/bench_world_model.py [--steps 12000] [--updates 3000] [--every 500]
        [--variant "wide:conv_width=64"] [--threads 1]
    uv run python benchmarks/bench_world_model.py --checkpoint RUN_OR_WEIGHTS [--checkpoint ...] [--png DIR]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mario_tui.engine.checkpoint import CheckpointError
from mario_tui.engine.config import ConfigError, RunConfig, coerce
from mario_tui.engine.env import make_env, num_actions
from mario_tui.engine.learners.dreamer import DreamerLearner
from mario_tui.engine.optim import clip_gradients, make_optimizer
from mario_tui.engine.playback import read_policy
from mario_tui.engine.registry import build_model
from mario_tui.engine.replay import ReplayBuffer, SequenceBatch
from mario_tui.engine.ssim import ssim

# right-leaning random play over the `simple` actions: noop, right, right+A, right+B, right+A+B, A, left
POLICY = np.array([0.05, 0.2, 0.2, 0.2, 0.2, 0.1, 0.05])
MAX_EPISODE_STEPS = 400  # cut long stuck episodes, so both buffers hold many episodes


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    """`lr1e3:lr=0.001,adam_eps=1e-8` -> ("lr1e3", {"lr": "0.001", "adam_eps": "1e-8"})."""
    name, _, body = text.partition(":")
    pairs = [item.split("=", 1) for item in body.split(",") if item.strip()]
    if not name or not pairs or any(len(pair) != 2 for pair in pairs):
        raise ConfigError(f"--variant {text!r} is not NAME:option=value,option=value")
    return name, {key.strip(): value.strip() for key, value in pairs}


def config_for(options: dict[str, str]) -> RunConfig:
    """Dreamer's defaults with the variant's options, parsed and checked as the CLI does."""
    changes = {key: coerce(key, value) for key, value in options.items() if key != "adam_eps"}
    return RunConfig.with_model_defaults(model="dreamer", **changes).validate()


def record(config: RunConfig, steps: int, seed: int, reached_starts: float = 0.5
           ) -> tuple[ReplayBuffer, ReplayBuffer]:
    """Play `steps` env steps; every fifth episode goes to the held-out buffer (not trained on)."""
    train = ReplayBuffer(steps + 16, (config.frame_size,) * 2, config.frame_stack, seed=seed)
    held = ReplayBuffer(steps // 3 + 16, (config.frame_size,) * 2, config.frame_stack, seed=seed + 1)
    env = make_env(replace(config, reached_starts=reached_starts), seed=seed, training=True)
    rng = np.random.default_rng(seed)
    episode, length, done = 0, 0, True
    for _ in range(steps):
        if done:
            buffer = held if episode % 5 == 4 else train
            obs, _ = env.reset(seed=int(rng.integers(1 << 30)))
            buffer.start_episode(obs)
            episode, length = episode + 1, 0
        action = int(rng.choice(len(POLICY), p=POLICY))
        obs, reward, terminated, truncated, _ = env.step(action)
        length += 1
        truncated = truncated or length >= MAX_EPISODE_STEPS
        done = terminated or truncated
        buffer.add(action, float(reward), obs, terminated, truncated)
    env.close()
    return train, held


@torch.no_grad()
def reconstruct(learner: DreamerLearner, batch: SequenceBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """(posterior reconstructions, targets), both (B·L, H, W) on [0, 1]."""
    frames = torch.as_tensor(batch.obs)
    states, _, _ = learner.observe(frames, torch.as_tensor(batch.actions), torch.as_tensor(batch.is_first))
    recon = learner.model.decoder(states.features().flatten(0, 1)).clamp(0, 1)
    return recon, frames.flatten(0, 1).float() / 255.0


def held_out_quality(learner: DreamerLearner, batches: list[SequenceBatch]) -> tuple[float, float]:
    pairs = [reconstruct(learner, batch) for batch in batches]
    return (float(np.mean([float(ssim(recon, target)) for recon, target in pairs])),
            float(np.mean([float((recon - target).square().mean()) for recon, target in pairs])))


def save_pairs(learner: DreamerLearner, batch: SequenceBatch, path: Path, count: int = 8) -> None:
    """Held-out frames (top row) over their reconstructions (bottom row), twice the size, as a PNG."""
    recon, target = reconstruct(learner, batch)
    pick = np.linspace(0, len(target) - 1, count).astype(int)
    rows = [np.concatenate([(images[i].numpy() * 255).astype(np.uint8) for i in pick], axis=1)
            for images in (target, recon)]
    grid = np.concatenate(rows, axis=0)
    Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(path)


def train_variant(config: RunConfig, options: dict[str, str], train: ReplayBuffer,
                  held_batches: list[SequenceBatch], updates: int, every: int, name: str, seed: int
                  ) -> tuple[DreamerLearner, list[tuple[int, float, float, float]]]:
    """Train one variant's world model; (learner, [(update, held-out SSIM, MSE, ms per update)])."""
    torch.manual_seed(seed)
    model, learner = build_model(config, num_actions(config.actions))
    groups = [{"params": list(model.world_model_parameters()), "lr": config.lr, "name": "world_model"}]
    optimizer = make_optimizer(groups, torch.device("cpu"))
    if "adam_eps" in options:  # not a RunConfig option: the optimizer's epsilon
        optimizer.param_groups[0]["eps"] = float(options["adam_eps"])
    spent, norms, points = 0.0, [], []
    for update in range(1, updates + 1):
        batch = learner.sample_batch(train, config.batch_size)
        t0 = time.perf_counter()
        loss, _, _, _ = learner.world_model_loss(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norms.append(clip_gradients(optimizer, config.grad_clip)[0])
        optimizer.step()
        spent += time.perf_counter() - t0
        if update % every == 0:
            quality, mse = held_out_quality(learner, held_batches)
            points.append((update, quality, mse, 1000 * spent / update))
            print(f"{name:>12} update {update:>6}  held-out SSIM {quality:.3f}  MSE {mse:.4f}  "
                  f"{1000 * spent / update:.0f} ms/update  grad norm {np.median(norms[-every:]):.0f}", flush=True)
    return learner, points


def trained_learner(path: Path) -> tuple[RunConfig, DreamerLearner, dict]:
    """A Dreamer run's config, a learner around its trained model (only `observe` is used), and its counters."""
    config, model, counters = read_policy(path)
    if config.model != "dreamer":
        raise CheckpointError(f"{path}: holds a {config.model!r} model, not a Dreamer world model")
    return config, DreamerLearner(model), counters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=12_000, help="env steps recorded (train + held out)")
    parser.add_argument("--updates", type=int, default=3_000)
    parser.add_argument("--every", type=int, default=500, help="evaluate every this many updates")
    parser.add_argument("--variant", action="append", default=[], help="name:field=value,... (repeatable)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--png", type=Path, help="folder for each variant's held-out frames over their reconstructions")
    parser.add_argument("--reached-starts", type=float, default=0.5,
                        help="share of recorded episodes started from states reached before (0: all from the start)")
    parser.add_argument("--checkpoint", type=Path, action="append", default=[],
                        help="a Dreamer run folder or weights file: measure its world model instead of training "
                             "(repeatable: all are measured on the same held-out play)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    try:
        trained = {path: trained_learner(path) for path in args.checkpoint}
    except CheckpointError as exc:
        parser.error(str(exc))

    try:
        variants = [("defaults", {})] + [parse_variant(text) for text in args.variant]
        configs = {name: config_for(options) for name, options in variants}
    except ConfigError as exc:
        parser.error(str(exc))
    started = time.perf_counter()
    first = next(iter(trained.values()), None)
    train, held = record(first[0] if first else config_for({}), args.steps, args.seed, args.reached_starts)
    try:
        held_batches = [held.sample_sequences(16, RunConfig.seq_len) for _ in range(4)]
    except ValueError:
        parser.error(f"--steps {args.steps} recorded too little held-out play for sequences of "
                     f"{RunConfig.seq_len} steps; record more (the figures in benchmarks/README.md used 12000)")
    # the floor: one constant picture, the mean training frame, as every reconstruction
    mean_frame = torch.as_tensor(train.state_dict()["frames"][: len(train)]).float().mean(0) / 255.0
    targets = torch.cat([torch.as_tensor(batch.obs).flatten(0, 1) for batch in held_batches]).float() / 255.0
    floor = float(ssim(mean_frame.expand_as(targets).contiguous(), targets))
    print(f"recorded {args.steps} steps in {time.perf_counter() - started:.0f} s ({len(train)} train / "
          f"{len(held)} held-out transitions); the mean frame as every reconstruction: SSIM {floor:.3f}", flush=True)
    for index, (path, (_config, learner, counters)) in enumerate(trained.items()):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(args.seed)  # the posterior samples its latents: seed them
            quality, mse = held_out_quality(learner, held_batches)
        print(f"{path} (updates {counters.get('updates', '?')}, agent steps {counters.get('env_steps', '?')}): "
              f"held-out SSIM {quality:.3f}  MSE {mse:.4f}", flush=True)
        if args.png:
            args.png.mkdir(parents=True, exist_ok=True)
            save_pairs(learner, held_batches[0], args.png / f"checkpoint-{index}-{path.stem}.png")
    if trained:
        return

    sampling_state = train.state_dict()  # every variant trains on the same batches
    results = {}
    for name, options in variants:
        train.load_state_dict(sampling_state)
        learner, results[name] = train_variant(configs[name], options, train, held_batches, args.updates,
                                               args.every, name, args.seed)
        if args.png:
            args.png.mkdir(parents=True, exist_ok=True)
            save_pairs(learner, held_batches[0], args.png / f"{name}.png")

    base = results["defaults"]
    print(f"\nheld-out SSIM per update count (the mean frame: {floor:.3f}); in brackets, updates the defaults needed "
          "for the same SSIM")
    for name, points in results.items():
        cells = []
        for update, quality, _, _ in points:
            reached = next((u for u, q, _, _ in base if q >= quality), None)
            cells.append(f"{update}: {quality:.3f} ({reached if reached else f'>{base[-1][0]}'})")
        print(f"{name:>12}  " + "  ".join(cells) + f"  | {points[-1][3]:.0f} ms/update")


if __name__ == "__main__":
    main()
