"""Learning per wall-clock minute: mario-tui (DDQN, Dreamer) against Stable-Baselines3 (DQN, PPO) on 1-1.

Each system trains for `--minutes` of wall clock, one system at a time on this machine, in this one script run
(absolute speeds swing ~2x between days on these boxes: only same-run comparisons mean anything). At `--curve-points`
evenly spaced times it saves a snapshot of its weights. After ALL training, every snapshot of every system is
evaluated with the same protocol: greedy, `--eval-episodes` episodes, each after a seeded random number of no-op
actions (0..30, the Atari "no-op starts"), ended at death / flag / time-up, after 2,000 agent steps, or when max x
has not advanced for 150 agent steps.

    uv run --group bench python benchmarks/bench_learning.py --minutes 15 --seeds 3
    uv run --group bench python benchmarks/bench_learning.py --minutes 1 --seeds 1 --eval-episodes 2 --systems ddqn

Prints agent steps, frames/s, greedy mean max x, max x, flag rate per system and seed, and DDQN's mean x as a ratio
to each peer's; writes `results.json` and `learning.png` (mean over seeds, per curve point) into `--out`.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import dataclasses
import datetime as dt
import functools
import json
import multiprocessing as mp
import os
import platform
import shutil
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MARIO_SYSTEMS = ("ddqn", "dreamer")
SB3_SYSTEMS = ("sb3-dqn", "sb3-ppo")
SYSTEMS = (*MARIO_SYSTEMS, *SB3_SYSTEMS)
LEVEL = "1-1"
SB3_ENV_ID = "SuperMarioBros-1-1-v0"
SB3_ENVS = 2
SB3_DQN_KWARGS: dict[str, Any] = {
    "buffer_size": 50_000, "learning_starts": 2_000, "batch_size": 32, "learning_rate": 1e-4,
    "target_update_interval": 2_000, "train_freq": 4, "exploration_fraction": 0.3, "exploration_final_eps": 0.05,
}
SB3_PPO_KWARGS: dict[str, Any] = {
    "n_steps": 512, "batch_size": 256, "n_epochs": 4, "learning_rate": 2.5e-4, "ent_coef": 0.01,
}
"""The SB3 hyperparameters of ../shared/notes/peers.md, so that figures stay comparable with the ones there."""


# --- records ------------------------------------------------------------------------------------------------

@dataclass
class Evaluation:
    """What one snapshot scored over the protocol's episodes."""

    x_mean: float
    x_max: int
    flag_rate: float
    return_mean: float
    episodes: list[dict[str, Any]]


@dataclass
class Snapshot:
    """The weights of one system at one curve point (nominal `minutes`, taken at `elapsed_s` after its start)."""

    point: int
    minutes: float
    elapsed_s: float
    agent_steps: int
    path: str
    evaluation: Evaluation | None = None


@dataclass
class Training:
    """One system trained for the budget with one seed."""

    system: str
    seed: int
    agent_steps: int
    train_seconds: float
    snapshots: list[Snapshot] = field(default_factory=list)

    @property
    def frames_per_s(self) -> float:
        return self.agent_steps * 4 / self.train_seconds if self.train_seconds > 0 else 0.0

    @property
    def final(self) -> Evaluation:
        evaluation = self.snapshots[-1].evaluation
        assert evaluation is not None, "evaluate the snapshots before reading the figures"
        return evaluation


# --- the machine and the clock -------------------------------------------------------------------------------

def machine_info() -> dict[str, Any]:
    """Cores, CPU model and date: figures from different machines (or days) do not compare."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu": cpu, "date": dt.datetime.now().isoformat(timespec="seconds"),
            "python": platform.python_version()}


def curve_seconds(minutes: float, points: int) -> list[float]:
    """`points` evenly spaced times after the start, the last one at the budget."""
    return [minutes * 60 * (i + 1) / points for i in range(points)]


def snapshot_path(out: Path, system: str, seed: int, point: int, suffix: str) -> Path:
    folder = out / "snapshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{system}-seed{seed}-point{point}{suffix}"


# --- mario-tui systems ---------------------------------------------------------------------------------------

def is_mario(system: str) -> bool:
    """mario-tui's own systems: `ddqn`, `dreamer` and variants of them such as `ddqn:ratio4` (see --variant)."""
    return system.split(":")[0] in MARIO_SYSTEMS


def mario_config(system: str, seed: int, out: Path, overrides: dict[str, str] | None = None) -> Any:
    """RunConfig defaults (what a user gets), on 1-1, one run folder per system and seed; a variant's options
    (`--variant`) over them."""
    from mario_tui.engine.config import RunConfig, coerce

    changes = {key: coerce(key, value) for key, value in (overrides or {}).items()}
    return RunConfig.with_model_defaults(model=system.split(":")[0], level=LEVEL, run_dir=str(out / "runs"),
                                         name=f"{system.replace(':', '-')}-seed{seed}", seed=seed, **changes).validate()


def wait_for(run: Any, deadline: float) -> None:
    """Sleep until `deadline` (monotonic), failing at once if the run broke."""
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(0.5, left))
        if run.error is not None:
            raise RuntimeError(f"{run.name} failed: {run.error!r}")


def train_mario(system: str, seed: int, times: Sequence[float], out: Path,
                overrides: dict[str, str] | None = None) -> list[Training]:
    """Drive the engine's `Run` as a front end does: start, checkpoint at the curve points, stop at the budget.

    A run with `eval_ema` > 0 gives two systems from ONE training: `system` (its online weights, weights.pt) and
    `system@ema` (the moving average, weights-ema.pt), so the average is compared with the very weights it
    averages, on the same data."""
    from mario_tui.engine.session import Run

    t0 = time.monotonic()
    config = mario_config(system, seed, out, overrides)
    run = Run(config)
    sources = {system: lambda: run.paths.weights}
    if config.eval_ema > 0:
        sources[f"{system}@ema"] = lambda: run.paths.ema_weights
    snapshots: dict[str, list[Snapshot]] = {name: [] for name in sources}
    try:
        run.start()
        for point, at in enumerate(times):
            wait_for(run, t0 + at)
            steps, elapsed = int(run.coordinator_stats()["env_steps"]), time.monotonic() - t0
            if not run.save_checkpoint():
                raise RuntimeError(f"{run.name}: the checkpoint at {elapsed:.0f} s timed out")
            for name, source in sources.items():
                path = snapshot_path(out, name, seed, point, ".pt")
                shutil.copyfile(source(), path)
                snapshots[name].append(Snapshot(point, at / 60, elapsed, steps, str(path)))
    finally:
        run.stop()
    last = snapshots[system][-1]
    return [Training(name, seed, last.agent_steps, last.elapsed_s, shots) for name, shots in snapshots.items()]


# --- SB3 systems ---------------------------------------------------------------------------------------------

def make_sb3_env(repress_jump: bool = False) -> Any:
    """The peers' pipeline: JoypadSpace(SIMPLE_MOVEMENT), skip 4 with max, grayscale, 84x84, stack 4; with
    `repress_jump`, mario-tui's `RepressJump` under the joypad, so both sides play the same game."""
    import gym_super_mario_bros  # noqa: F401  (registers the SuperMarioBros-* ids)
    import gymnasium as gym
    from gym_super_mario_bros.actions import SIMPLE_MOVEMENT
    from gymnasium.wrappers import FrameStackObservation, GrayscaleObservation, MaxAndSkipObservation, ResizeObservation
    from nes_py.wrappers import JoypadSpace

    from mario_tui.engine.env import RepressJump

    env = gym.make(SB3_ENV_ID)
    env = JoypadSpace(RepressJump(env) if repress_jump else env, SIMPLE_MOVEMENT)
    env = MaxAndSkipObservation(env, skip=4)
    env = GrayscaleObservation(env, keep_dim=False)
    env = ResizeObservation(env, (84, 84))
    return FrameStackObservation(env, 4)


class WallClockEpsilon:
    """DQN's epsilon, linear from 1 to `final` over the first `fraction` of the wall-clock budget.

    SB3 decays it over `exploration_fraction` of `total_timesteps`; a wall-clock budget has no step count to give
    (learn() must not end early on steps), so the fraction is taken of the budget's time instead.
    """

    def __init__(self, t0: float, budget_s: float, fraction: float, final: float) -> None:
        self.t0, self.span, self.final = t0, budget_s * fraction, final

    def __call__(self, _progress_remaining: float) -> float:
        done = min(1.0, (time.monotonic() - self.t0) / self.span)
        return 1.0 + (self.final - 1.0) * done


def sb3_model(system: str, env: Any, seed: int, t0: float, budget_s: float) -> Any:
    from stable_baselines3 import DQN, PPO

    if system == "sb3-ppo":
        return PPO("CnnPolicy", env, seed=seed, verbose=0, **SB3_PPO_KWARGS)
    model = DQN("CnnPolicy", env, seed=seed, verbose=0, **SB3_DQN_KWARGS)
    model.exploration_schedule = WallClockEpsilon(t0, budget_s, SB3_DQN_KWARGS["exploration_fraction"],
                                                  SB3_DQN_KWARGS["exploration_final_eps"])
    return model


def snapshot_callback(system: str, seed: int, t0: float, times: Sequence[float], out: Path,
                      snapshots: list[Snapshot]) -> Any:
    """A callback that saves the model at the curve points and ends learn() at the last one."""
    from stable_baselines3.common.callbacks import BaseCallback

    class Snapshots(BaseCallback):
        def _on_step(self) -> bool:
            elapsed = time.monotonic() - t0
            if elapsed < times[len(snapshots)]:
                return True
            point = len(snapshots)
            path = snapshot_path(out, system, seed, point, ".zip")
            self.model.save(path, exclude=["exploration_schedule"])  # ours lives in __main__: not worth pickling
            snapshots.append(Snapshot(point, times[point] / 60, elapsed, int(self.model.num_timesteps), str(path)))
            return len(snapshots) < len(times)

    return Snapshots()


def train_sb3(system: str, seed: int, times: Sequence[float], out: Path, repress_jump: bool) -> Training:
    """The peers' setup: 2 spawned env processes, one torch thread, stopped by a callback at the budget."""
    import torch
    from stable_baselines3.common.vec_env import SubprocVecEnv

    torch.set_num_threads(1)
    t0 = time.monotonic()
    env = SubprocVecEnv([functools.partial(make_sb3_env, repress_jump)] * SB3_ENVS, start_method="spawn")
    snapshots: list[Snapshot] = []
    try:
        model = sb3_model(system, env, seed, t0, times[-1])
        model.learn(total_timesteps=10**12, callback=snapshot_callback(system, seed, t0, times, out, snapshots))
    finally:
        env.close()
    if len(snapshots) < len(times):
        raise RuntimeError(f"{system} seed {seed}: learn() ended after {len(snapshots)} of {len(times)} snapshots")
    last = snapshots[-1]
    return Training(system, seed, last.agent_steps, last.elapsed_s, snapshots)


def train(system: str, seed: int, times: Sequence[float], out: Path,
          variants: dict[str, dict[str, str]] | None = None, peers_repress_jump: bool = False) -> list[Training]:
    """Train one system in a fresh process: no torch threads, memory or CUDA state carried from one to the next.
    (Two trainings come back where one run is measured two ways: see `train_mario`.)"""
    with cf.ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"), max_tasks_per_child=1) as pool:
        if is_mario(system):
            return pool.submit(train_mario, system, seed, list(times), out, (variants or {}).get(system)).result()
        return [pool.submit(train_sb3, system, seed, list(times), out, peers_repress_jump).result()]


# --- evaluation ----------------------------------------------------------------------------------------------
# Both sides play through `mario_tui.engine.evaluate.play_evaluation_episode` (no-op starts, stall cutoff, step cap),
# with the same episode seeds: the rules cannot drift between mario-tui and its peers.

def eval_options(episodes: int, seed: int, workers: int) -> Any:
    """The engine's `EvalOptions` on 1-1, greedy; its defaults are the protocol (2,000 steps, 150-step stall
    cutoff, 0..30 no-ops), the same `mario-tui --eval` and the periodic evaluation use."""
    from mario_tui.engine.evaluate import EvalOptions

    return EvalOptions(episodes=episodes, level=LEVEL, epsilon=0.0, seed=seed, workers=workers).validate()


def evaluation(episodes: Sequence[Any]) -> Evaluation:
    """The figures of one snapshot from its `EvalEpisode`s (summarised by the engine's own `summarize`)."""
    from mario_tui.engine.evaluate import summarize

    s = summarize(LEVEL, episodes)
    return Evaluation(s.x_mean, s.x_max, s.flag_rate, s.return_mean, [dataclasses.asdict(e) for e in episodes])


def evaluate_sb3_episodes(path: str, system: str, plan: list[tuple[str, int]], options: Any,
                          repress_jump: bool) -> list[Any]:
    """Some episodes of one SB3 snapshot, greedy (`predict(deterministic=True)`), in an evaluation process."""
    import torch
    from stable_baselines3 import DQN, PPO

    from mario_tui.engine.evaluate import play_evaluation_episode

    torch.set_num_threads(1)
    model = (PPO if system == "sb3-ppo" else DQN).load(path, device="cpu")

    def policy(obs: Any) -> int:
        return int(model.predict(obs, deterministic=True)[0])

    env = make_sb3_env(repress_jump)
    try:
        return [play_evaluation_episode(env, policy, stage, seed, options) for stage, seed in plan]
    finally:
        env.close()


def evaluate_sb3(trainings: list[Training], options: Any, repress_jump: bool) -> None:
    """All SB3 snapshots on `workers` processes (each plays a share of every snapshot's episodes)."""
    from mario_tui.engine.evaluate import episode_plan

    plan = episode_plan(LEVEL, options.episodes, options.seed)
    shares = [plan[i::options.workers] for i in range(options.workers) if plan[i::options.workers]]
    snapshots = [(t.system, s) for t in trainings for s in t.snapshots]
    if not snapshots:
        return
    with cf.ProcessPoolExecutor(options.workers, mp_context=mp.get_context("spawn")) as pool:
        futures = [[pool.submit(evaluate_sb3_episodes, s.path, system, share, options, repress_jump)
                    for share in shares] for system, s in snapshots]
        for (_system, s), parts in zip(snapshots, futures, strict=True):
            episodes = [e for part in parts for e in part.result()]
            s.evaluation = evaluation(sorted(episodes, key=lambda e: e.seed))


def evaluate_mario(trainings: list[Training], options: Any) -> None:
    """mario-tui snapshots through the engine's `evaluate` (what `mario-tui --eval` measures)."""
    from mario_tui.engine.evaluate import evaluate

    for training in trainings:
        for snapshot in training.snapshots:
            snapshot.evaluation = evaluation(evaluate(snapshot.path, options).episodes)


def evaluate_all(trainings: list[Training], options: Any, peers_repress_jump: bool = False) -> None:
    evaluate_mario([t for t in trainings if is_mario(t.system)], options)
    evaluate_sb3([t for t in trainings if t.system in SB3_SYSTEMS], options, peers_repress_jump)


# --- figures -------------------------------------------------------------------------------------------------

def by_system(trainings: list[Training]) -> dict[str, list[Training]]:
    out: dict[str, list[Training]] = {}
    for t in trainings:
        out.setdefault(t.system, []).append(t)
    return out


def figures(trainings: list[Training]) -> dict[str, float]:
    """The printed figures of one system, averaged over the given seeds (one seed: its own figures)."""
    return {"agent_steps": statistics.fmean(t.agent_steps for t in trainings),
            "frames_per_s": statistics.fmean(t.frames_per_s for t in trainings),
            "x_mean": statistics.fmean(t.final.x_mean for t in trainings),
            "x_max": statistics.fmean(t.final.x_max for t in trainings),
            "flag_rate": statistics.fmean(t.final.flag_rate for t in trainings)}


def ratio(ours: float, theirs: float) -> float | None:
    return ours / theirs if theirs > 0 else None


def curve(trainings: list[Training]) -> list[float]:
    """Greedy mean max x per curve point, mean over seeds."""
    points = len(trainings[0].snapshots)
    return [statistics.fmean(t.snapshots[p].evaluation.x_mean for t in trainings) for p in range(points)]


def per_seed(t: Training, reference: dict[int, Training]) -> dict[str, Any]:
    """One training's record with its figures and the reference system's mean x over its own (same seed)."""
    own = reference.get(t.seed)
    return {**dataclasses.asdict(t), **figures([t]),
            "reference_x_ratio": ratio(own.final.x_mean, t.final.x_mean) if own is not None else None}


def results(trainings: list[Training], failures: list[dict[str, Any]], args: argparse.Namespace,
            machine: dict[str, Any], options: Any, times: Sequence[float]) -> dict[str, Any]:
    """Everything measured, as one JSON-ready dict (per seed, mean over seeds, ratios, curves)."""
    systems = by_system(trainings)
    means = {name: figures(ts) for name, ts in systems.items()}
    reference_mean = means.get(args.reference)
    ratios = {peer: ratio(reference_mean["x_mean"], m["x_mean"]) for peer, m in means.items()
              if reference_mean and peer != args.reference}
    reference = {t.seed: t for t in systems.get(args.reference, [])}
    return {
        "machine": machine, "level": LEVEL, "minutes": args.minutes, "seeds": args.seeds,
        "first_seed": args.first_seed,
        "systems_asked": list(args.systems), "variants": args.variants, "peers_repress_jump": args.peers_repress_jump,
        "protocol": dataclasses.asdict(options),
        "curve_minutes": [t / 60 for t in times],
        "systems": {name: {"mean": means[name], "curve_x_mean": curve(ts),
                           "per_seed": [per_seed(t, reference) for t in ts]}
                    for name, ts in systems.items()},
        "reference": args.reference, "reference_x_mean_ratio": ratios, "failures": failures,
    }


def print_table(trainings: list[Training], machine: dict[str, Any], reference_name: str = "ddqn") -> None:
    """Per seed and the mean over seeds, with the reference system's mean x as a ratio to each system's (same
    seed)."""
    from rich.console import Console
    from rich.table import Table

    systems = by_system(trainings)
    reference = {t.seed: t for t in systems.get(reference_name, [])}
    table = Table(title=f"Learning on {LEVEL}: {machine['cores']} cores, {machine['cpu']}, {machine['date']}",
                  caption=f"mean x: greedy mean max x at the end of the budget; {reference_name} x / this: "
                          f"{reference_name}'s mean x over this system's (same seed)")
    for column in ("system", "seed", "agent steps", "frames/s", "mean x", "max x", "flags", "ref x / this"):
        table.add_column(column, justify="left" if column == "system" else "right")

    def row(name: str, seed: str, f: dict[str, float], reference_x: float | None) -> None:
        r = ratio(reference_x, f["x_mean"]) if reference_x is not None and name != reference_name else None
        table.add_row(name, seed, f"{f['agent_steps']:,.0f}", f"{f['frames_per_s']:.0f}", f"{f['x_mean']:.0f}",
                      f"{f['x_max']:.0f}", f"{f['flag_rate']:.0%}", "-" if r is None else f"{r:.2f}")

    for name, ts in systems.items():
        for t in ts:
            row(name, str(t.seed), figures([t]), reference[t.seed].final.x_mean if t.seed in reference else None)
        if len(ts) > 1:
            row(name, "mean", figures(ts), figures(list(reference.values()))["x_mean"] if reference else None)
    console = Console()
    (console if console.is_terminal else Console(width=120)).print(table)  # a log file is not 80 columns wide


# --- the learning-curve picture ------------------------------------------------------------------------------

COLOURS = {"ddqn": (214, 39, 40), "dreamer": (148, 103, 189), "sb3-dqn": (31, 119, 180), "sb3-ppo": (44, 160, 44)}
VARIANT_COLOURS = ((255, 127, 14), (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))


def nice_ticks(top: float, count: int = 5) -> list[float]:
    """0, step, 2*step, ... up to at least `top`, with step 1, 2 or 5 times a power of ten."""
    import math

    raw = max(top, 1e-9) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return [round(i * step, 12) for i in range(math.ceil(top / step - 1e-9) + 1)]


def draw_vertical_text(image: Any, centre: tuple[float, float], text: str, font: Any) -> None:
    """Text turned 90 degrees (the y-axis label), centred on `centre`: ImageDraw only writes horizontally."""
    from PIL import Image, ImageDraw

    left, top, right, bottom = font.getbbox(text)
    label = Image.new("L", (right - left + 4, bottom - top + 4), 0)
    ImageDraw.Draw(label).text((2 - left, 2 - top), text, fill=255, font=font)
    label = label.rotate(90, expand=True)
    at = (int(centre[0] - label.width / 2), int(centre[1] - label.height / 2))
    image.paste((0, 0, 0), (*at, at[0] + label.width, at[1] + label.height), label)


def marker(draw: Any, centre: tuple[float, float], sides: int, radius: float, colour: tuple[int, int, int]) -> None:
    """A circle (sides 0) or a regular polygon with `sides` sides."""
    x, y = centre
    if sides == 0:
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour)
    else:
        draw.regular_polygon((x, y, radius), sides, fill=colour)


def draw_curve(curves: dict[str, list[float]], minutes: Sequence[float], title: str, subtitle: str) -> Any:
    """The learning curves as a Pillow image: axes, ticks, one line per system, legend, title."""
    from PIL import Image, ImageDraw, ImageFont

    width, height, left, right, top, bottom = 1060, 620, 90, 230, 70, 60
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font, small = ImageFont.load_default(16), ImageFont.load_default(13)
    x_ticks = nice_ticks(max(minutes))
    y_ticks = nice_ticks(max((y for ys in curves.values() for y in ys), default=1.0) * 1.05)
    x1, y1 = width - right, height - bottom

    def px(m: float, x: float) -> tuple[float, float]:
        return (left + (x1 - left) * m / x_ticks[-1], y1 - (y1 - top) * x / y_ticks[-1])

    for m in x_ticks:
        x, _ = px(m, 0)
        draw.line([(x, top), (x, y1)], fill=(235, 235, 235))
        draw.line([(x, y1), (x, y1 + 5)], fill="black")
        draw.text((x, y1 + 8), f"{m:g}", fill="black", font=small, anchor="mt")
    for v in y_ticks:
        _, y = px(0, v)
        draw.line([(left, y), (x1, y)], fill=(235, 235, 235))
        draw.line([(left - 5, y), (left, y)], fill="black")
        draw.text((left - 8, y), f"{v:g}", fill="black", font=small, anchor="rm")
    draw.rectangle([left, top, x1, y1], outline="black")
    draw.text(((left + x1) / 2, height - 20), "training minutes (wall clock)", fill="black", font=font, anchor="mm")
    draw_vertical_text(image, (22, (top + y1) / 2), "greedy mean max x (per episode, mean of episodes)", font)
    draw.text((width / 2, 22), title, fill="black", font=font, anchor="mm")
    draw.text((width / 2, 46), subtitle, fill=(90, 90, 90), font=small, anchor="mm")
    variants = [name for name in curves if name not in COLOURS]
    for i, (name, ys) in enumerate(curves.items()):
        colour = COLOURS.get(name) or VARIANT_COLOURS[variants.index(name) % len(VARIANT_COLOURS)]
        # lines drawn first are wider, and each system has its own marker: equal curves stay visible
        width, sides = 2 + max(0, 3 - i), (0, 4, 3, 5)[i % 4]
        points = [px(m, y) for m, y in zip(minutes, ys, strict=True)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=width, joint="curve")
        for x, y in points:
            marker(draw, (x, y), sides, 2 + width, colour)
        ly = top + 10 + 24 * i
        draw.line([(x1 + 15, ly), (x1 + 45, ly)], fill=colour, width=width)
        marker(draw, (x1 + 30, ly), sides, 2 + width, colour)
        draw.text((x1 + 52, ly), f"{name} ({ys[-1]:.0f})", fill="black", font=font, anchor="lm")
    return image


# --- output --------------------------------------------------------------------------------------------------

def write_outputs(out: Path, data: dict[str, Any], minutes: Sequence[float]) -> None:
    """results.json and learning.png, each written to a temporary name and renamed (never half written)."""
    machine = data["machine"]
    curves = {name: s["curve_x_mean"] for name, s in data["systems"].items()}
    seeds = f"{data['seeds']} seed{'s' if data['seeds'] != 1 else ''}"
    title = f"Greedy mean max x on {LEVEL} vs training time (mean of {seeds}, {data['protocol']['episodes']} episodes)"
    subtitle = f"{machine['date'][:10]}, {machine['cores']} cores, {machine['cpu']}"
    if data.get("peers_repress_jump"):
        subtitle += "; the SB3 peers played the easier --repress-jump game"
    png = out / "learning.png"
    draw_curve(curves, minutes, title, subtitle).save(out / ".learning.png.tmp", format="PNG")
    os.replace(out / ".learning.png.tmp", png)
    tmp = out / ".results.json.tmp"
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, out / "results.json")


TRAININGS_FILE = "trainings.json"
"""Every finished training's record (snapshots, agent steps, seconds), rewritten after each one: an evaluation
that fails after hours of training is run again with --evaluate-only instead of training again."""


def save_trainings(out: Path, trainings: list[Training]) -> None:
    tmp = out / f".{TRAININGS_FILE}.tmp"
    tmp.write_text(json.dumps([dataclasses.asdict(t) for t in trainings], indent=1) + "\n")
    os.replace(tmp, out / TRAININGS_FILE)


def load_trainings(out: Path) -> list[Training]:
    records = json.loads((out / TRAININGS_FILE).read_text())
    return [Training(**{**r, "snapshots": [Snapshot(**{**s, "evaluation": None}) for s in r["snapshots"]]})
            for r in records]


def resumable(trainings: list[Training], times: Sequence[float]) -> list[Training]:
    """The earlier trainings, if their snapshots were taken at this run's times (else the curves would not line up)."""
    for t in trainings:
        taken = [round(s.minutes * 60, 3) for s in t.snapshots]
        if taken != [round(x, 3) for x in times]:
            raise SystemExit(f"--resume: {t.system} seed {t.seed} has snapshots at "
                             f"{', '.join(f'{m / 60:.2f}' for m in taken)} min, not this run's; "
                             "give the same --minutes and --curve-points")
    return trainings


def ignore_bulk(out: Path) -> None:
    """A .gitignore for the weights and run folders (~0.1-0.4 GB per run): only the figures are worth committing."""
    (out / ".gitignore").write_text("# written by bench_learning.py: keep results.json and learning.png only\n"
                                    "runs/\nsnapshots/\n")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=15.0, help="wall-clock training budget per system and seed")
    parser.add_argument("--seeds", type=int, default=1, help="seeds 0..K-1 per system (from --first-seed)")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="train seeds N..N+K-1 instead (to add seeds to an earlier run's, e.g. in another session)")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma-separated, of {', '.join(SYSTEMS)}")
    parser.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/learning-<timestamp>/")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME:OPTION=VALUE,...",
                        help="also train a mario-tui variant with these run options over the defaults, as system "
                             "ddqn:NAME (model=dreamer for a Dreamer variant); repeatable. The judge for tuning "
                             "defaults: variants and the defaults train in the same run.")
    parser.add_argument("--eval-episodes", type=int, default=10, help="greedy episodes per snapshot")
    parser.add_argument("--curve-points", type=int, default=5, help="snapshots per run, evenly spaced, last at the end")
    parser.add_argument("--eval-workers", type=int, default=min(2, os.cpu_count() or 1),
                        help="evaluation processes (after training)")
    parser.add_argument("--eval-seed", type=int, default=0, help="episode i of every snapshot uses seed eval-seed + i")
    parser.add_argument("--evaluate-only", action="store_true",
                        help=f"train nothing: evaluate the snapshots of the trainings recorded in --out's "
                             f"{TRAININGS_FILE} (a run whose evaluation failed), with this run's evaluation options")
    parser.add_argument("--resume", action="store_true",
                        help=f"keep the trainings recorded in --out's {TRAININGS_FILE} (a run that was interrupted) "
                             "and train only the missing system-seed pairs; same --minutes and --curve-points")
    parser.add_argument("--reference", default="ddqn",
                        help="the system whose greedy mean x the others' is divided by (e.g. ddqn:ema@ema)")
    parser.add_argument("--peers-repress-jump", action=argparse.BooleanOptionalAction, default=False,
                        help="the peers play with mario-tui's RepressJump, the easier game of --repress-jump (give it "
                             "with a variant that sets repress_jump=True, so both sides play the same game)")
    args = parser.parse_args(argv)
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    try:
        args.variants = dict(parse_variant(text) for text in args.variant)
    except ValueError as exc:
        parser.error(f"--variant: {exc}")
    args.systems += [name for name in args.variants if name not in args.systems]
    unknown = sorted(set(args.systems) - set(SYSTEMS) - set(args.variants))
    if unknown or not args.systems:
        parser.error(f"--systems: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(SYSTEMS)}")
    if args.first_seed < 0:
        parser.error("--first-seed must be 0 or more")
    if args.minutes <= 0 or args.seeds < 1 or args.eval_episodes < 1 or args.curve_points < 1 or args.eval_workers < 1:
        parser.error("--minutes must be above 0; --seeds, --eval-episodes, --curve-points, --eval-workers at least 1")
    for flag, given in (("--evaluate-only", args.evaluate_only), ("--resume", args.resume)):
        if given and (args.out is None or not (args.out / TRAININGS_FILE).exists()):
            parser.error(f"{flag} needs --out with the {TRAININGS_FILE} of an earlier run")
    if args.out is None:
        args.out = Path(__file__).parent / "results" / f"learning-{dt.datetime.now():%Y%m%d-%H%M%S}"
    return args


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    """`ratio4:collect_steps=8,eps_decay_steps=25000` → ("ddqn:ratio4", {...}); `model=dreamer` picks the model."""
    name, _, body = text.partition(":")
    pairs = [item.split("=", 1) for item in body.split(",") if item.strip()]
    if not name or not pairs or any(len(p) != 2 for p in pairs):
        raise ValueError(f"{text!r} is not NAME:option=value,option=value")
    options = {k.strip().replace("-", "_"): v.strip() for k, v in pairs}
    model = options.pop("model", "ddqn")
    if model not in MARIO_SYSTEMS:
        raise ValueError(f"model {model!r} is not one of {', '.join(MARIO_SYSTEMS)}")
    return f"{model}:{name}", options


def train_all(systems: Sequence[str], seeds: int, times: Sequence[float], out: Path,
              variants: dict[str, dict[str, str]] | None = None, peers_repress_jump: bool = False,
              done_before: Sequence[Training] = (), first_seed: int = 0
              ) -> tuple[list[Training], list[dict[str, Any]]]:
    """Every system with every seed, one at a time, except those in `done_before` (a resumed run); a failure is
    reported and the others still run (an hour-long benchmark should not be lost to one crash)."""
    trainings: list[Training] = list(done_before)
    failures: list[dict[str, Any]] = []
    finished = {(t.system, t.seed) for t in done_before}
    for seed in range(first_seed, first_seed + seeds):  # seeds outermost: a slow spell hits every system alike
        for system in systems:
            if (system, seed) in finished:
                print(f"kept {system} seed {seed} from the earlier run", flush=True)
                continue
            try:
                done = train(system, seed, times, out, variants, peers_repress_jump)
            except Exception as exc:  # noqa: BLE001 - report it, go on with the other systems
                failures.append({"system": system, "seed": seed, "error": f"{type(exc).__name__}: {exc}"})
                print(f"FAILED {system} seed {seed}: {failures[-1]['error']}", flush=True)
                continue
            trainings.extend(done)
            save_trainings(out, trainings)
            t = done[0]
            print(f"trained {system} seed {seed}: {t.agent_steps:,} agent steps in {t.train_seconds:.0f} s "
                  f"({t.frames_per_s:.0f} frames/s)", flush=True)
    return trainings, failures


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    ignore_bulk(args.out)
    machine = machine_info()
    times = curve_seconds(args.minutes, args.curve_points)
    options = eval_options(args.eval_episodes, args.eval_seed, args.eval_workers)
    print(f"{machine['cores']} cores, {machine['cpu']}, {machine['date']}; {args.minutes:g} min per system and seed, "
          f"snapshots at {', '.join(f'{t / 60:.2f}' for t in times)} min; output in {args.out}", flush=True)
    if args.evaluate_only:
        trainings, failures = load_trainings(args.out), []
        times = [s.minutes * 60 for s in trainings[0].snapshots]
    else:
        done_before = resumable(load_trainings(args.out), times) if args.resume else []
        trainings, failures = train_all(args.systems, args.seeds, times, args.out, args.variants,
                                         args.peers_repress_jump, done_before, args.first_seed)
    t0 = time.monotonic()
    evaluate_all(trainings, options, args.peers_repress_jump)
    print(f"evaluated {sum(len(t.snapshots) for t in trainings)} snapshots x {options.episodes} episodes "
          f"in {time.monotonic() - t0:.0f} s", flush=True)
    data = results(trainings, failures, args, machine, options, times)
    print_table(trainings, machine, args.reference)
    for peer, r in data["reference_x_mean_ratio"].items():
        print(f"{args.reference} greedy mean x / {peer}: {'-' if r is None else f'{r:.2f}'} (mean over seeds)")
    write_outputs(args.out, data, data["curve_minutes"])
    print(f"wrote {args.out / 'results.json'} and {args.out / 'learning.png'}")
    if failures:
        raise SystemExit(f"{len(failures)} of {len(failures) + len(trainings)} trainings failed (see above)")


if __name__ == "__main__":
    main()

