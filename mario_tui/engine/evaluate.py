"""Greedy evaluation: how well a saved agent plays, measured the same way every time.

`evaluate(checkpoint, options)` plays `options.episodes` episodes per stage and returns an `EvalReport` (a table per
level, a summary line, JSON and CSV). The periodic evaluation during training (`periodic_eval.py`), `mario-tui --eval`
and `benchmarks/bench_learning.py` all play episodes through `play_evaluation_episode`, so their figures compare.

The protocol. The emulator is deterministic, so a greedy agent would play the same episode every time: each episode
starts with a seeded random number (0..`noop_max`) of no-op steps (the Atari "no-op starts" protocol), which moves
the enemies and the timer relative to Mario. An episode ends at death, the flag or time-up, after `max_steps` agent
steps, or when max x has not advanced for `stall_steps` agent steps (a stuck agent would burn the budget otherwise).
Every episode's seed seeds its no-op count and the model's own random choices, so the same options give the same
report, whichever process plays which episode.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mario_tui.engine.config import ConfigError, RunConfig, all_stages, parse_level_spec
from mario_tui.engine.env import action_meanings, current_rgb_frame, make_env
from mario_tui.engine.fileio import atomic_write_text
from mario_tui.engine.models.base import Model

NOOP_ACTION = 0
"""Index of the no-op in every action set of gym_super_mario_bros.actions (`["NOOP"]` comes first)."""

EnvFactory = Callable[[RunConfig, int], Any]
"""`factory(config, seed) -> env`: builds the env an agent plays (default `make_env`); tests pass a tiny task."""


# --- the protocol ---------------------------------------------------------------------------------------------

def noop_count(seed: int, noop_max: int) -> int:
    """The no-op steps that start the episode of `seed` (uniform in 0..noop_max)."""
    return int(np.random.default_rng([seed, 0x6E6F6F70]).integers(0, noop_max + 1)) if noop_max > 0 else 0


class StallCutoff:
    """True once max x has not advanced for `stall_steps` agent steps (0: never)."""

    def __init__(self, stall_steps: int, x_pos: int = 0) -> None:
        self.stall_steps = stall_steps
        self.max_x = x_pos
        self._since = 0

    def update(self, x_pos: int) -> bool:
        if x_pos > self.max_x:
            self.max_x, self._since = x_pos, 0
        else:
            self._since += 1
        return self.stall_steps > 0 and self._since >= self.stall_steps


@dataclass(frozen=True)
class EvalOptions:
    """How to evaluate: episodes per stage, which stages, and the per-episode rules (see the module docstring)."""

    episodes: int = 10
    level: str | None = None
    """A stage, a list like `1-1,1-2`, `all` (every stage) or `random` (a seeded draw per episode); None: the run's
    own level."""
    epsilon: float = 0.0
    seed: int = 0
    max_steps: int = 2000
    stall_steps: int = 150
    noop_max: int = 30
    workers: int = 1
    """Processes that play episodes in parallel (1: in this process)."""
    per_stage: bool = True
    """`episodes` on every stage; False: `episodes` in all, round robin over the stages (periodic evaluation)."""

    def validate(self) -> EvalOptions:
        """Raise ConfigError naming the first bad option (flag names as `mario-tui --eval` spells them)."""
        checks = (
            (1 <= self.episodes <= 10_000, "--episodes: must be between 1 and 10000"),
            (0.0 <= self.epsilon <= 1.0, "--epsilon: must be in [0, 1]"),
            (0 <= self.seed < 2**31, "--seed: must be between 0 and 2**31-1"),
            (1 <= self.max_steps <= 100_000, "--eval-max-steps: must be between 1 and 100000"),
            (self.stall_steps >= 0, "--eval-stall-steps: must be 0 (never) or more"),
            (0 <= self.noop_max <= 1000, "--eval-noops: must be between 0 and 1000"),
            (1 <= self.workers <= 64, "--workers: must be between 1 and 64"),
        )
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        if self.level is not None:
            eval_stages(self.level)
        return self

    @classmethod
    def periodic(cls, config: RunConfig, seed: int) -> EvalOptions:
        """The options of the evaluation during training: the run's eval_* fields, in one process."""
        return cls(episodes=config.eval_episodes, level=config.level, seed=seed, max_steps=config.eval_max_steps,
                   stall_steps=config.eval_stall_steps, noop_max=config.eval_noops, per_stage=False)


def eval_stages(spec: str) -> list[str] | str:
    """`all` → every stage; `random` → 'random'; else the stages of a level spec. ConfigError if invalid."""
    if spec.strip().lower() == "all":
        return all_stages()
    try:
        return parse_level_spec(spec)
    except ConfigError as exc:
        raise ConfigError(f"--level: {exc} (or 'all' for every stage)") from None


def episode_plan(spec: str, episodes: int, seed: int, per_stage: bool = True) -> list[tuple[str, int]]:
    """(stage, episode seed) of every episode: `episodes` per stage (`per_stage`) or in all, round robin over the
    stages; for `random` each episode draws its stage with its seed."""
    stages = eval_stages(spec)
    if stages == "random":
        every = all_stages()
        return [(every[int(np.random.default_rng([seed + i, 1]).integers(len(every)))], seed + i)
                for i in range(episodes)]
    if per_stage:
        return [(stage, seed + i) for stage in stages for i in range(episodes)]
    return [(stages[i % len(stages)], seed + i) for i in range(episodes)]


# --- results ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EvalEpisode:
    """One evaluation episode."""

    level: str
    seed: int
    noops: int
    max_x: int
    flag: bool
    total_return: float
    steps: int
    """Agent steps, the no-ops included."""
    ended: str
    """flag, death, time-up, stalled, max-steps or truncated."""


@dataclass(frozen=True)
class LevelSummary:
    level: str
    episodes: int
    flag_rate: float
    x_mean: float
    x_max: int
    return_mean: float
    steps_mean: float


def summarize(level: str, episodes: Sequence[EvalEpisode]) -> LevelSummary:
    return LevelSummary(level, len(episodes), float(np.mean([e.flag for e in episodes])),
                        float(np.mean([e.max_x for e in episodes])), int(max(e.max_x for e in episodes)),
                        float(np.mean([e.total_return for e in episodes])),
                        float(np.mean([e.steps for e in episodes])))


@dataclass
class EvalReport:
    """What an evaluation measured, with where the weights came from."""

    checkpoint: str
    run_name: str
    model: str
    updates: int
    env_steps: int
    options: EvalOptions
    episodes: list[EvalEpisode]
    wall_s: float
    elapsed_s: float = 0.0
    """The run's training time (wall clock) when these weights were saved."""
    finished_at: str = field(default_factory=lambda: dt.datetime.now().isoformat(timespec="seconds"))

    @property
    def overall(self) -> LevelSummary:
        return summarize("all", self.episodes)

    @property
    def x_mean(self) -> float:
        """Mean over episodes of the episode's max x: the score best.pt is kept by."""
        return self.overall.x_mean

    @property
    def x_max(self) -> int:
        return self.overall.x_max

    @property
    def flag_rate(self) -> float:
        return self.overall.flag_rate

    @property
    def return_mean(self) -> float:
        return self.overall.return_mean

    def by_level(self) -> list[LevelSummary]:
        levels = list(dict.fromkeys(e.level for e in self.episodes))
        return [summarize(level, [e for e in self.episodes if e.level == level]) for level in levels]

    def best_episode(self) -> EvalEpisode:
        """The flag first, then the furthest x, then the highest return."""
        return max(self.episodes, key=lambda e: (e.flag, e.max_x, e.total_return))

    def table(self) -> str:
        """The per-level table and the summary line, as `mario-tui --eval` prints them."""
        header = f"{'level':<6} {'episodes':>8} {'flags':>9} {'mean x':>8} {'max x':>6} {'return':>8} {'steps':>7}"
        lines = [header, "-" * len(header)]
        rows = self.by_level()
        if len(rows) > 1:
            rows.append(self.overall)
        for row in rows:
            flags = f"{round(row.flag_rate * row.episodes)}/{row.episodes}"
            lines.append(f"{row.level:<6} {row.episodes:>8} {flags:>9} {row.x_mean:>8.0f} {row.x_max:>6} "
                         f"{row.return_mean:>8.1f} {row.steps_mean:>7.0f}")
        return "\n".join(lines)

    def summary_line(self) -> str:
        o = self.overall
        return (f"{self.run_name} (update {self.updates:,}, {self.env_steps:,} agent steps): {o.episodes} greedy "
                f"episodes{_epsilon_text(self.options.epsilon)}, flags {o.flag_rate:.0%}, mean max x {o.x_mean:.0f}, "
                f"best x {o.x_max}, mean return {o.return_mean:.1f} ({self.wall_s:.0f} s)")

    def to_dict(self) -> dict[str, Any]:
        return {"checkpoint": self.checkpoint, "run": self.run_name, "model": self.model, "updates": self.updates,
                "env_steps": self.env_steps, "training_s": round(self.elapsed_s, 1),
                "finished_at": self.finished_at, "wall_s": round(self.wall_s, 2),
                "protocol": "greedy; each episode starts with a seeded random 0..noop_max no-op steps, and ends at "
                            "death, the flag, time-up, max_steps, or stall_steps without a new max x",
                "options": asdict(self.options),
                "summary": asdict(self.overall), "levels": [asdict(row) for row in self.by_level()],
                "episodes": [asdict(e) for e in self.episodes]}

    def csv_text(self) -> str:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(EvalEpisode.__dataclass_fields__))
        writer.writeheader()
        for episode in self.episodes:
            writer.writerow(asdict(episode))
        return out.getvalue()

    def save(self, folder: str | Path, stem: str | None = None) -> tuple[Path, Path]:
        """Write `<folder>/<timestamp>.json` and `.csv` atomically; returns their paths."""
        folder = Path(folder)
        stem = stem or dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        json_path, csv_path = folder / f"{stem}.json", folder / f"{stem}.csv"
        n = 1
        while json_path.exists() or csv_path.exists():  # two evaluations in one second keep both reports
            n += 1
            json_path, csv_path = folder / f"{stem}-{n}.json", folder / f"{stem}-{n}.csv"
        atomic_write_text(csv_path, self.csv_text())
        atomic_write_text(json_path, json.dumps(self.to_dict(), indent=2) + "\n")
        return json_path, csv_path


def _epsilon_text(epsilon: float) -> str:
    return f" (epsilon {epsilon:g})" if epsilon else ""


# --- playing --------------------------------------------------------------------------------------------------

def _ended(info: dict[str, Any], terminated: bool, truncated: bool) -> str:
    if info.get("flag_get"):
        return "flag"
    if terminated:
        return "time-up" if int(info.get("time", 1)) <= 0 else "death"
    return "truncated"


@torch.no_grad()
def play_evaluation_episode(env: Any, policy: Callable[[Any], int], stage: str, seed: int, options: EvalOptions,
                            on_step: Callable[[Any, int, float, dict[str, Any]], None] | None = None,
                            reset_policy: Callable[[], None] | None = None) -> EvalEpisode:
    """Play one episode by the protocol: reset, the seeded no-ops, then `policy(obs) -> action` until it ends.

    `on_step(env, action, reward, info)` sees every step (no-ops included; the GIF recorder uses it). Any env with
    gymnasium's API and `x_pos` / `flag_get` in its info works, so peers (SB3) are measured by the same rules.
    """
    obs, info = env.reset(seed=seed)
    if reset_policy is not None:
        reset_policy()
    noops = noop_count(seed, options.noop_max)
    stall = StallCutoff(options.stall_steps, int(info.get("x_pos", 0)))
    total, steps, ended = 0.0, 0, "max-steps"
    while steps < options.max_steps:
        action = NOOP_ACTION if steps < noops else int(policy(obs))
        obs, reward, terminated, truncated, info = env.step(action)
        steps += 1
        total += float(reward)
        if on_step is not None:
            on_step(env, action, float(reward), info)
        stalled = steps > noops and stall.update(int(info.get("x_pos", 0)))
        if terminated or truncated or info.get("flag_get"):
            ended = _ended(info, terminated, truncated)
            stall.update(int(info.get("x_pos", 0)))
            break
        if stalled:
            ended = "stalled"
            break
    return EvalEpisode(stage, seed, noops, stall.max_x, ended == "flag", total, steps, ended)


def model_policy(model: Model, epsilon: float) -> Callable[[Any], int]:
    """`obs -> action` of a mario-tui model (epsilon-greedy with `epsilon`, greedy at 0). A model that samples its
    actions (Dreamer's actor) has a `greedy` switch: evaluation takes its most likely action."""
    if hasattr(model, "greedy"):
        model.greedy = True  # type: ignore[attr-defined]

    def act(obs: Any) -> int:
        return int(model.select_action(torch.from_numpy(np.asarray(obs))[None], epsilon)[0])

    return act


class EpisodePlayer:
    """Plays evaluation episodes of one weights file; keeps one env per stage (building one costs ~0.5 s)."""

    def __init__(self, path: str | Path, options: EvalOptions, env_factory: EnvFactory | None = None) -> None:
        self.path = Path(path)
        self.options = options
        self.env_factory = env_factory
        self._envs: dict[str, Any] = {}

    def env(self, config: RunConfig, stage: str, seed: int) -> Any:
        env = self._envs.get(stage)
        if env is None:
            stage_config = config.replace(level=stage)
            env = (self.env_factory(stage_config, seed) if self.env_factory is not None
                   else make_env(stage_config, seed=seed))
            self._envs[stage] = env
        return env

    def play(self, stage: str, seed: int,
             on_step: Callable[[Any, int, float, dict[str, Any]], None] | None = None) -> EvalEpisode:
        from mario_tui.engine.playback import load_policy

        # the model is rebuilt with the episode's seed, so its random choices (epsilon, Dreamer's sampling) are the
        # same whichever process plays the episode; a weights file loads in milliseconds
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            config, model = load_policy(self.path, seed=seed)
            env = self.env(config, stage, seed)
            return play_evaluation_episode(env, model_policy(model, self.options.epsilon), stage, seed, self.options,
                                           on_step=on_step, reset_policy=lambda: model.reset_state(1))

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()


_process_player: EpisodePlayer | None = None


def _init_process(path: str, options: EvalOptions, env_factory: EnvFactory | None) -> None:
    global _process_player
    torch.set_num_threads(1)
    _process_player = EpisodePlayer(path, options, env_factory)


def _play_in_process(task: tuple[str, int]) -> EvalEpisode:
    assert _process_player is not None
    return _process_player.play(*task)


def evaluate(checkpoint: str | Path, options: EvalOptions, env_factory: EnvFactory | None = None,
             on_episode: Callable[[EvalEpisode], None] | None = None) -> EvalReport:
    """Play the evaluation of `checkpoint` (a weights.pt / best.pt / checkpoint.pt or a run folder).

    Raises CheckpointError for a missing or damaged file and ConfigError for bad options, before playing anything.
    `on_episode` is called as each episode finishes (the report keeps the plan's order).
    """
    from mario_tui.engine.playback import checkpoint_file

    options.validate()
    path = checkpoint_file(checkpoint)
    if options.workers <= 1:
        return evaluate_with(EpisodePlayer(path, options, env_factory), path, options, on_episode=on_episode)
    from mario_tui.engine.processes import process_context

    def play_all(plan: list[tuple[str, int]]) -> list[EvalEpisode]:
        episodes: list[EvalEpisode] = []
        with ProcessPoolExecutor(min(options.workers, len(plan)), mp_context=process_context(),
                                 initializer=_init_process, initargs=(str(path), options, env_factory)) as pool:
            for episode in pool.map(_play_in_process, plan):
                episodes.append(episode)
                if on_episode is not None:
                    on_episode(episode)
        return episodes

    return _report(path, options, play_all)


def evaluate_with(player: EpisodePlayer, path: str | Path, options: EvalOptions,
                  on_step: Callable[..., None] | None = None,
                  on_episode: Callable[[EvalEpisode], None] | None = None) -> EvalReport:
    """`evaluate` in this process with `player` (closed at the end); `on_step` sees every step (pacing)."""

    def play_all(plan: list[tuple[str, int]]) -> list[EvalEpisode]:
        episodes: list[EvalEpisode] = []
        for stage, seed in plan:
            episodes.append(player.play(stage, seed, on_step=on_step))
            if on_episode is not None:
                on_episode(episodes[-1])
        return episodes

    try:
        return _report(Path(path), options, play_all)
    finally:
        player.close()


def _report(path: Path, options: EvalOptions,
            play_all: Callable[[list[tuple[str, int]]], list[EvalEpisode]]) -> EvalReport:
    from mario_tui.engine.playback import read_policy

    config, _model, counters = read_policy(path)
    plan = episode_plan(options.level or config.level, options.episodes, options.seed, options.per_stage)
    t0 = time.monotonic()
    episodes = play_all(plan)
    return EvalReport(str(path), run_folder_name(path), config.model, int(counters.get("updates", 0)),
                      int(counters.get("env_steps", 0)), options, episodes, time.monotonic() - t0,
                      float(counters.get("elapsed_s", 0.0)))


def run_folder_name(path: Path) -> str:
    """The run a weights file belongs to: its folder, or the folder above `eval/` for the periodic snapshot."""
    folder = path.resolve().parent
    return folder.parent.name if folder.name == "eval" else folder.name


def record_episode(checkpoint: str | Path, episode: EvalEpisode, options: EvalOptions) -> Any:
    """Play `episode` again (same stage, seed and rules: the same episode) and record every frame, for a GIF."""
    from mario_tui.engine.playback import START_ACTION_NAME, EpisodeFrame, EpisodeRecording, checkpoint_file

    path = checkpoint_file(checkpoint)
    player = EpisodePlayer(path, options)
    frames: list[EpisodeFrame] = []
    names: list[str] = []
    no_values = np.full(1, math.nan, dtype=np.float32)

    def on_step(env: Any, action: int, reward: float, info: dict[str, Any]) -> None:
        frames.append(EpisodeFrame.from_rgb(current_rgb_frame(env), action, names[action], no_values, reward,
                                            info.get("x_pos", 0), info.get("world", 0), info.get("stage", 0)))

    try:
        from mario_tui.engine.playback import load_policy

        config, _model = load_policy(path)
        names.extend(action_meanings(config.actions))
        env = player.env(config, episode.level, episode.seed)
        env.reset(seed=episode.seed)
        frames.append(EpisodeFrame.from_rgb(current_rgb_frame(env), -1, START_ACTION_NAME, no_values, 0.0,
                                            0, 0, 0))
        replayed = player.play(episode.level, episode.seed, on_step=on_step)
    finally:
        player.close()
    return EpisodeRecording(frames=frames, action_names=names, level=episode.level, run_name=run_folder_name(path),
                            checkpoint=str(path), total_return=replayed.total_return, max_x_pos=replayed.max_x,
                            flag=replayed.flag, steps=replayed.steps, epsilon=options.epsilon, seed=episode.seed)
