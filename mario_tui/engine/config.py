"""One `RunConfig` describes a training run.

It is the single source for the CLI flags (`mario-tui --batch --lr ...`), the Launch form's labels and
help, the run's `config.json`, and validation. Every field has a docstring right under it (the style of
CleanRL's `dqn_atari.py`); `field_help()` reads those docstrings from the source so that help text is
written exactly once.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import re
import textwrap
import typing
from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path
from typing import Any, Literal

MODELS = ("ddqn", "dreamer")
ACTION_SETS = ("right_only", "simple", "complex")
DEVICES = ("auto", "cpu", "cuda")
WORLDS = range(1, 9)
STAGES = range(1, 5)


MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "dreamer": {"eps_start": 0.0, "eps_end": 0.0, "batch_size": 8, "entropy_coef": 3e-3, "gamma": 0.99},
}
"""Defaults that depend on the model (the CLI, the Launch form and `RunConfig.with_model_defaults` apply them).
Dreamer's actor samples its actions and explores through its entropy bonus: epsilon-greedy on top of it would only
add random actions the imagined returns never asked for. Its update over 8 sequences costs a third of one over 32
(the world model encodes and decodes every frame), so a 2-core run makes 2.3x the frames and updates; with 8 the
actor needs the larger entropy bonus, or it turns deterministic within minutes (benchmarks/README.md, Dreamer).
Dreamer keeps the usual long horizon (0.99): its actor learns from imagined returns, not from bootstrapped
Q-values at a pipe, and it was not measured with a shorter one."""


def model_default(model: str, field_name: str) -> Any:
    """The default of `field_name` for runs of `model`."""
    return MODEL_DEFAULTS.get(model, {}).get(field_name, getattr(RunConfig, field_name))


def model_defaults_text(field_name: str) -> str:
    """The models whose default for `field_name` differs, as `dreamer: 0.0` (empty when none does)."""
    return "; ".join(f"{model}: {values[field_name]!r}" for model, values in MODEL_DEFAULTS.items()
                     if field_name in values)


ADDED_LATER: dict[str, Any] = {"prev_action": False}
"""Options added after runs were already saved, with the value a config.json without them means (what those runs
were trained with), where that differs from today's default."""


class ConfigError(ValueError):
    """A run option has a value that cannot work; the message names the option and what is valid."""


@dataclass
class RunConfig:
    """Every option of a training run, with defaults that work on a 2-core laptop."""

    # --- what to train -------------------------------------------------------------------------
    model: Literal["ddqn", "dreamer"] = "ddqn"
    """Model to train: `ddqn` (Dueling Double DQN) or `dreamer` (world model + imagined actor-critic)."""
    level: str = "1-1"
    """Level: a stage like `1-1`, `random` (a random stage each episode) or a list like `1-1,1-2,4-1`."""
    actions: Literal["right_only", "simple", "complex"] = "simple"
    """Action set: `right_only` (5), `simple` (7) or `complex` (12 button combinations)."""

    # --- distributed runtime -------------------------------------------------------------------
    workers: int = 2
    """Worker processes; each plays its own emulator and sends gradients to the coordinator."""
    collect_steps: int = 8
    """Environment steps a worker plays between two gradient computations (with batch 32: each transition is
    sampled ~4 times, SB3 DQN's replay ratio; benchmarks/README.md has what 32 and 8 did)."""
    accumulate_grads: int = 1
    """Batches whose gradients a worker sums into one packet before sending it."""
    max_staleness: int = 16
    """Gradients computed against weights older than this many versions are dropped."""
    heartbeat_timeout: float = 60.0
    """Seconds without a heartbeat after which a worker counts as stuck and is restarted."""

    # --- optimisation --------------------------------------------------------------------------
    lr: float = 2.5e-4
    """Adam learning rate at the start of the cosine schedule (Dreamer: of the world model)."""
    lr_min: float = 1e-5
    """Learning rate at the end of the cosine schedule."""
    lr_decay_updates: int = 200_000
    """Coordinator updates over which the learning rate decays from `lr` to `lr_min`."""
    grad_clip: float = 10.0
    """Clip the averaged gradient to this L2 norm, per parameter group (Dreamer: world model, actor and critic
    each on its own, so the world model's large gradients do not scale the actor's down; 0 disables clipping)."""
    gamma: float = 0.9
    """Discount factor per agent step.  0.9, as most Mario agents use: Mario is paid at every step he moves right,
    so a 10-step horizon sees what matters, and standing at a pipe is worth clearly less than jumping it (the gap
    between them scales with 1 - gamma); DDQN learned faster with it than with 0.99 in
    `benchmarks/bench_learning.py` (benchmarks/README.md, row `g90`)."""
    n_step: int = 5
    """Steps of reward summed before bootstrapping (n-step returns).  5 with gamma 0.9: the target then holds most
    of the 10-step horizon as real rewards (the bootstrap weighs 0.9^5 = 0.59) and leans less on an early, poor
    target network; DDQN learned faster with it than with 3 in `benchmarks/bench_learning.py` (benchmarks/README.md,
    row `n5`)."""
    batch_size: int = 32
    """Transitions per gradient batch."""
    target_update: int = 1000
    """Copy online weights to the target network every this many updates (hard update)."""
    tau: float = 0.0
    """If above 0, soft-update the target network by this fraction every update instead of hard updates."""
    reset_every: int = 0
    """Every this many updates, shrink the online weights toward a fresh initialisation of the same network:
    w <- reset_shrink * w + (1 - reset_shrink) * w_fresh (shrink-and-perturb, Ash & Adams 2020; the periodic
    resets SR-SPR and BBF use to keep a network that learns from each sample many times plastic). The target
    network keeps what was learned until its next copy. 0 = off."""
    reset_shrink: float = 0.8
    """With `reset_every`: the share of the trained weights each reset keeps (0 = a full reset)."""
    reward_scale: float = 1 / 15
    """Multiply environment rewards by this before learning (Mario's per-frame reward is within ±15)."""
    q_scale: float = 100.0
    """Q-values are softsign-bounded to [-q_scale, q_scale]."""
    augment_shift: int = 0
    """DDQN: shift each sampled observation by up to this many pixels at random before the loss (DrQ's
    augmentation, edges repeated; 0 = off)."""
    munchausen_alpha: float = 0.0
    """DDQN: Munchausen-DQN's weight of the scaled log-policy bonus (its paper: 0.9); the target then bootstraps
    on the target network's entropy-regularised soft value instead of Double DQN's. 0 = off (Double DQN)."""
    munchausen_temperature: float = 0.03
    """DDQN with Munchausen: the softmax temperature of its policy, in the units of the scaled Q-values."""
    lower_bound: bool = False
    """DDQN: raise each TD target to the discounted return its episode actually earned from that step, where the
    episode terminated (lower-bound Q-learning: the emulator is deterministic, so the return is a floor on Q). Off:
    four stacked frames do not fix the emulator's state, so the floor is optimistic and the greedy agent got worse
    in `benchmarks/bench_learning.py`."""
    quantiles: int = 0
    """DDQN: learn N quantiles of each action's return (QR-DQN: the distribution, not only its mean) and act on
    their mean; 0 = off (expected values). QR-DQN's paper used 200. Not with --munchausen-alpha or --lower-bound."""

    # --- replay --------------------------------------------------------------------------------
    buffer_size: int = 50_000
    """Replay capacity per worker, in transitions (about 7 KB each at 84x84)."""
    learning_starts: int = 1_000
    """Transitions a worker collects before it computes its first gradient."""
    per: bool = True
    """Prioritized experience replay (proportional, sum tree); off means uniform sampling."""
    per_alpha: float = 0.6
    """How strongly priorities shape sampling (0 = uniform, 1 = fully proportional)."""
    per_beta: float = 0.4
    """Initial importance-sampling exponent; annealed to 1 over `per_beta_steps` samples."""
    per_beta_steps: int = 100_000
    """Sampled batches over which beta is annealed to 1."""
    save_replay: bool = False
    """Save each worker's replay buffer beside the checkpoint (compressed) and restore it on resume."""

    # --- exploration ---------------------------------------------------------------------------
    eps_start: float = 1.0
    """Epsilon at the start of each worker's schedule."""
    eps_end: float = 0.05
    """Base final epsilon; worker i ends at eps_end ** (1 + i / (workers - 1)) (Ape-X spread)."""
    eps_decay_steps: int = 25_000
    """Agent steps per worker over which epsilon decays linearly."""

    # --- environment and network size -----------------------------------------------------------
    frame_skip: int = 4
    """NES frames per agent step (the action repeats; the observation is the max of the last two)."""
    frame_size: int = 84
    """Observations are frame_size x frame_size grayscale."""
    frame_stack: int = 4
    """Frames stacked into one observation."""
    repress_jump: bool = False
    """An easier game: holding a jump action jumps again on landing (A is released for a frame once Mario has stood
    on the ground with it held; the game itself jumps only on a fresh press). Holding `right + A` then hops to
    x ~1,140 on 1-1, where it walks into the first Goomba at x ~300 without it."""
    reached_starts: float = 0.0
    """Share of training episodes that start from a state an earlier episode of the same worker reached (a snapshot
    of the emulator taken with Mario on the ground, one stretch of the level drawn uniformly): the agent practises
    every part of the level it has seen, not mostly its start. Evaluation always starts at the level's start.
    0 = off."""
    conv_width: int = 32
    """Channels of the first conv layer (the next two have twice as many)."""
    hidden_size: int = 256
    """Units of the fully connected layer of each dueling stream."""
    bf16: bool = False
    """DDQN: run the conv trunk in bfloat16 (autocast; heads and Q-values stay float32). Faster where the CPU has
    bfloat16 matrix units (Intel AMX) or on a recent GPU; on other CPUs it can be slower. Off by default
    (benchmarks/README.md, row `bf16`)."""
    prev_action: bool = False
    """DDQN: the Q-network also sees the buttons the previous action held (beside the conv features). NES Mario
    jumps only on a fresh press of A and the frames cannot show whether A is still held, which is why greedy
    agents stall at pipes holding `right + A`; off by default because it did not learn faster in the benchmark
    (benchmarks/README.md, rows `prev1hot` and `btn`)."""

    # --- Dreamer (world model + imagined actor-critic; `batch_size` counts sequences) -------------
    seq_len: int = 16
    """Dreamer: consecutive replayed observations per training sequence (batch_size sequences per batch)."""
    imag_horizon: int = 15
    """Dreamer: steps the actor-critic imagines ahead with the learned dynamics."""
    imag_starts: int = 64
    """Dreamer: posterior states (of the batch_size x seq_len) imagination starts from; 0 = all of them."""
    td_lambda: float = 0.95
    """Dreamer: lambda of the TD(lambda) returns that train the critic and the actor."""
    deter_size: int = 200
    """Dreamer: units of the deterministic (GRU) state of the world model."""
    stoch_size: int = 32
    """Dreamer: categorical latent variables in the stochastic state."""
    stoch_classes: int = 16
    """Dreamer: classes of each categorical latent variable (one-hot, straight-through gradients)."""
    kl_coef: float = 1.0
    """Dreamer: weight of the KL(posterior || prior) term of the world-model loss."""
    kl_balance: float = 0.8
    """Dreamer: share of the KL gradient that trains the prior (the rest regularises the posterior)."""
    free_nats: float = 1.0
    """Dreamer: KL below this many nats (per step) is not penalised (free bits)."""
    actor_lr: float = 4e-5
    """Dreamer: Adam learning rate of the actor (scaled by the same cosine schedule as `lr`)."""
    critic_lr: float = 1e-4
    """Dreamer: Adam learning rate of the critic (scaled by the same cosine schedule as `lr`)."""
    entropy_coef: float = 3e-4
    """Dreamer: weight of the actor's entropy bonus."""
    actor_coef: float = 1.0
    """Dreamer: weight of the actor (REINFORCE) loss in the total loss."""
    critic_coef: float = 1.0
    """Dreamer: weight of the critic (lambda-return regression) loss in the total loss."""

    # --- greedy evaluation (periodic during training, and `mario-tui --eval`) ---------------------
    eval_every: int = 500
    """Evaluate the newest weights greedily every this many updates, in a low-priority process that uses at most
    ~5 percent of the machine's CPU; the best result so far is kept as best.pt (0 = off)."""
    eval_episodes: int = 5
    """Greedy episodes per periodic evaluation (spread over the run's stages)."""
    eval_confirm_episodes: int = 10
    """An evaluation that beats best.pt's score plays this many more episodes (other no-op starts) before its weights
    replace best.pt, which is then judged on all of them: the best of many evaluations on a few fixed games favours
    weights that suit those games (0 = replace best.pt on the periodic evaluation alone)."""
    eval_max_steps: int = 2000
    """An evaluation episode ends after this many agent steps."""
    eval_stall_steps: int = 150
    """An evaluation episode also ends when max x has not advanced for this many agent steps (0 = never)."""
    eval_noops: int = 30
    """Evaluation episodes start with a random 0..N no-op steps (seeded): the emulator is deterministic, so this is
    what makes greedy episodes differ (the Atari no-op starts protocol)."""
    eval_ema: float = 0.0
    """If above 0, the periodic evaluation (and so best.pt) plays an exponential moving average of the online
    weights, updated by this rate each update (0.001: an average over the last ~1,000 updates), instead of the
    online weights themselves, whose greedy policy changes within a few updates; workers still act online."""

    # --- run bookkeeping -----------------------------------------------------------------------
    steps: int = 0
    """Stop after this many coordinator updates (0 = run until stopped)."""
    checkpoint_every: int = 1000
    """Write checkpoint.pt and weights.pt every this many updates."""
    csv_every: int = 100
    """Append a metrics row to training.csv every this many updates."""
    tensorboard: bool = False
    """Also write training.csv's scalars as TensorBoard event files in the run folder (`tensorboard --logdir
    checkpoints` shows every run); needs the optional `tensorboard` package."""
    seed: int = 0
    """Random seed for the coordinator, the workers (seed + id) and the environments."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Device of the coordinator's optimizer step: `auto` takes CUDA when present."""
    worker_device: Literal["auto", "cpu", "cuda"] = "auto"
    """Device a worker computes its gradients on (`auto`: as --device; the workers on a machine share its GPU);
    workers act on the CPU either way (one observation at a time)."""
    backend: Literal["local", "ray"] = "local"
    """Where the workers run: `local` (processes on this machine, shared memory) or `ray` (Ray actors anywhere on
    a Ray cluster; needs the optional `ray` package)."""
    ray_address: str = ""
    """With --backend ray: the cluster to join (`auto`: the one `ray start` made on this machine; or HOST:PORT);
    empty starts a Ray instance for this run on this machine."""
    ray_cpus_per_worker: float = 1.0
    """With --backend ray: CPUs Ray reserves for each worker actor."""
    ray_gpus_per_worker: float = 0.0
    """With --backend ray: GPUs Ray reserves for each worker actor (a fraction lets several share one GPU)."""
    run_dir: str = "checkpoints"
    """Folder that holds one sub-folder per run."""
    name: str = ""
    """Run name (folder under run_dir); empty means a timestamp plus the model name."""

    # ------------------------------------------------------------------------------------------
    @classmethod
    def with_model_defaults(cls, **given: Any) -> RunConfig:
        """A config from explicit values over the defaults of the model they name (see `MODEL_DEFAULTS`)."""
        return cls(**{**MODEL_DEFAULTS.get(given.get("model", cls.model), {}), **given})

    def validate(self) -> RunConfig:
        """Raise `ConfigError` naming the first bad option; returns self so calls can chain."""
        problems = self.problems()
        if problems:
            raise ConfigError(next(iter(problems.values())))
        return self

    def problems(self) -> dict[str, str]:
        """All invalid options as {field name: message}; the Launch form marks each one inline."""
        out: dict[str, str] = {}

        def need(name: str, ok: bool, message: str) -> None:
            if not ok and name not in out:
                out[name] = f"{flag_name(name)}: {message}"

        for f in fields(self):
            choices = field_choices(f.name)
            value = getattr(self, f.name)
            if choices and value not in choices:
                need(f.name, False, f"{value!r} is not one of {', '.join(choices)}")
        try:
            parse_level_spec(self.level)
        except ConfigError as exc:
            out["level"] = f"--level: {exc}"
        need("workers", 1 <= self.workers <= 64, "must be between 1 and 64")
        need("collect_steps", self.collect_steps >= 1, "must be at least 1")
        need("accumulate_grads", self.accumulate_grads >= 1, "must be at least 1")
        need("max_staleness", self.max_staleness >= 0, "must be 0 or more")
        need("heartbeat_timeout", self.heartbeat_timeout > 0, "must be above 0 seconds")
        need("lr", 0 < self.lr <= 1, "must be in (0, 1]")
        need("lr_min", 0 <= self.lr_min <= self.lr, "must be between 0 and --lr")
        need("lr_decay_updates", self.lr_decay_updates >= 1, "must be at least 1")
        need("actor_lr", 0 < self.actor_lr <= 1, "must be in (0, 1]")
        need("critic_lr", 0 < self.critic_lr <= 1, "must be in (0, 1]")
        need("grad_clip", self.grad_clip >= 0, "must be 0 (off) or more")
        need("gamma", 0 < self.gamma <= 1, "must be in (0, 1]")
        need("n_step", 1 <= self.n_step <= 20, "must be between 1 and 20")
        need("batch_size", 1 <= self.batch_size <= 4096, "must be between 1 and 4096")
        need("target_update", self.target_update >= 1, "must be at least 1")
        need("tau", 0 <= self.tau <= 1, "must be in [0, 1]")
        need("reset_every", self.reset_every >= 0, "must be 0 (off) or more")
        need("reset_shrink", 0 <= self.reset_shrink < 1, "must be in [0, 1): the share of the weights a reset keeps")
        need("reward_scale", self.reward_scale > 0, "must be above 0")
        need("q_scale", self.q_scale > 0, "must be above 0")
        need("reached_starts", 0 <= self.reached_starts <= 1, "must be in [0, 1] (0 = off)")
        need("augment_shift", 0 <= self.augment_shift <= 16, "must be between 0 (off) and 16 pixels")
        need("munchausen_alpha", 0 <= self.munchausen_alpha <= 1, "must be in [0, 1] (0 = off)")
        need("munchausen_temperature", 0 < self.munchausen_temperature <= 10, "must be in (0, 10]")
        need("quantiles", 0 <= self.quantiles <= 1000, "must be between 0 (off) and 1000")
        need("quantiles", not self.quantiles or (not self.munchausen_alpha and not self.lower_bound),
             "cannot be combined with --munchausen-alpha or --lower-bound (they change a scalar target)")
        need("buffer_size", self.buffer_size >= max(self.batch_size, 2 * self.n_step + self.frame_stack),
             f"must hold at least one batch ({self.batch_size})")
        need("learning_starts", self.learning_starts >= 0, "must be 0 or more")
        need("per_alpha", 0 <= self.per_alpha <= 1, "must be in [0, 1]")
        need("per_beta", 0 <= self.per_beta <= 1, "must be in [0, 1]")
        need("per_beta_steps", self.per_beta_steps >= 1, "must be at least 1")
        need("eps_start", 0 <= self.eps_start <= 1, "must be in [0, 1]")
        need("eps_end", 0 <= self.eps_end <= self.eps_start, "must be between 0 and --eps-start")
        need("eps_decay_steps", self.eps_decay_steps >= 1, "must be at least 1")
        need("frame_skip", 1 <= self.frame_skip <= 16, "must be between 1 and 16")
        need("frame_size", 36 <= self.frame_size <= 240, "must be between 36 and 240 pixels")
        need("frame_stack", 1 <= self.frame_stack <= 16, "must be between 1 and 16")
        need("conv_width", 1 <= self.conv_width <= 512, "must be between 1 and 512")
        need("hidden_size", 1 <= self.hidden_size <= 8192, "must be between 1 and 8192")
        need("seq_len", 2 <= self.seq_len <= 1000, "must be between 2 and 1000")
        need("imag_horizon", 1 <= self.imag_horizon <= 1000, "must be between 1 and 1000")
        need("imag_starts", self.imag_starts >= 0, "must be 0 (all) or more")
        need("td_lambda", 0 <= self.td_lambda <= 1, "must be in [0, 1]")
        need("deter_size", 1 <= self.deter_size <= 8192, "must be between 1 and 8192")
        need("stoch_size", 1 <= self.stoch_size <= 1024, "must be between 1 and 1024")
        need("stoch_classes", 2 <= self.stoch_classes <= 1024, "must be between 2 and 1024")
        need("kl_coef", self.kl_coef >= 0, "must be 0 or more")
        need("kl_balance", 0 <= self.kl_balance <= 1, "must be in [0, 1]")
        need("free_nats", self.free_nats >= 0, "must be 0 or more")
        need("entropy_coef", self.entropy_coef >= 0, "must be 0 or more")
        need("actor_coef", self.actor_coef >= 0, "must be 0 or more")
        need("critic_coef", self.critic_coef >= 0, "must be 0 or more")
        if self.model == "dreamer":
            need("buffer_size", self.buffer_size > self.seq_len, f"must exceed --seq-len ({self.seq_len}) for dreamer")
            need("learning_starts", max(self.learning_starts, self.batch_size) >= self.seq_len,
                 f"must be at least --seq-len ({self.seq_len}) for dreamer")
        need("eval_every", self.eval_every >= 0, "must be 0 (off) or more")
        need("eval_episodes", 1 <= self.eval_episodes <= 1000, "must be between 1 and 1000")
        need("eval_confirm_episodes", 0 <= self.eval_confirm_episodes <= 1000, "must be between 0 (off) and 1000")
        need("eval_max_steps", 1 <= self.eval_max_steps <= 100_000, "must be between 1 and 100000")
        need("eval_stall_steps", self.eval_stall_steps >= 0, "must be 0 (never) or more")
        need("eval_noops", 0 <= self.eval_noops <= 1000, "must be between 0 and 1000")
        need("eval_ema", 0 <= self.eval_ema < 1, "must be in [0, 1): 0 plays the online weights")
        need("steps", self.steps >= 0, "must be 0 (until stopped) or more")
        need("checkpoint_every", self.checkpoint_every >= 1, "must be at least 1")
        need("csv_every", self.csv_every >= 1, "must be at least 1")
        if self.tensorboard:
            from mario_tui.engine.tensorboard import tensorboard_missing

            missing = tensorboard_missing()
            need("tensorboard", missing is None, missing or "")
        if self.backend == "ray":
            from mario_tui.engine.runtime import ray_missing

            missing = ray_missing()
            need("backend", missing is None, missing or "")
        need("ray_cpus_per_worker", 0 < self.ray_cpus_per_worker <= 1024, "must be above 0")
        need("ray_gpus_per_worker", 0 <= self.ray_gpus_per_worker <= 64, "must be 0 or more")
        need("ray_address", self.backend == "ray" or not self.ray_address, "needs --backend ray")
        need("seed", 0 <= self.seed < 2**31, "must be between 0 and 2**31-1")
        need("run_dir", bool(self.run_dir.strip()), "must not be empty")
        need("name", re.fullmatch(r"[A-Za-z0-9._-]*", self.name) is not None and self.name not in (".", ".."),
             "may only use letters, digits, '.', '_' and '-'")
        return out

    # --- serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Build from a dict (e.g. config.json), coercing types; unknown keys are an error, missing ones take their
        default (or, for options added later, what runs saved before them used: `ADDED_LATER`)."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(f"unknown option(s): {', '.join(unknown)}")
        values = {key: value for key, value in ADDED_LATER.items() if key not in data}
        for key, raw in data.items():
            values[key] = coerce(key, raw)
        return cls(**values)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    def save(self, path: Path) -> None:
        from mario_tui.engine.fileio import atomic_write_text

        atomic_write_text(path, self.to_json() + "\n")

    @classmethod
    def load(cls, path: Path) -> RunConfig:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{path} does not hold a run configuration")
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **changes)


# --- field metadata derived from the class itself ----------------------------------------------

def flag_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


@cache
def _type_hints() -> dict[str, Any]:
    """Resolved annotations of RunConfig (resolving them is slow: the Launch form asks on every key press)."""
    return typing.get_type_hints(RunConfig)


def field_type(field_name: str) -> type:
    """The plain Python type of a field: bool, int, float or str (Literal fields are str)."""
    hint = _type_hints()[field_name]
    if typing.get_origin(hint) is Literal:
        return type(typing.get_args(hint)[0])
    return hint


def field_choices(field_name: str) -> tuple[str, ...]:
    hint = _type_hints()[field_name]
    if typing.get_origin(hint) is Literal:
        return tuple(typing.get_args(hint))
    return ()


@cache
def _docstrings() -> dict[str, str]:
    source = textwrap.dedent(inspect.getsource(RunConfig))
    body = ast.parse(source).body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, nxt in zip(body, body[1:], strict=False):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def field_help(field_name: str) -> str:
    """The docstring under the field: CLI help and Launch form help."""
    return _docstrings().get(field_name, "")


def field_label(field_name: str) -> str:
    """A short human label for forms: `lr_min` → `LR min`."""
    words = field_name.split("_")
    special = {"lr": "LR", "per": "PER", "eps": "Epsilon", "csv": "CSV", "grads": "grads", "q": "Q"}
    out = [special.get(w, w) for w in words]
    out[0] = out[0][0].upper() + out[0][1:]
    return " ".join(out)


def coerce(field_name: str, raw: Any) -> Any:
    """Turn a string or JSON value into the field's type, raising ConfigError with the flag name."""
    kind = field_type(field_name)
    try:
        if kind is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if kind is int:
            if isinstance(raw, float) and not raw.is_integer():
                raise ValueError(raw)
            if isinstance(raw, str):
                raw = raw.strip().replace("_", "")
                return int(float(raw)) if re.fullmatch(r"\d+(\.0*)?e\d+", raw) else int(raw)
            return int(raw)
        if kind is float:
            value = float(raw)
            if value != value or value in (float("inf"), float("-inf")):
                raise ValueError(raw)
            return value
        return str(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{flag_name(field_name)}: {raw!r} is not a valid {kind.__name__}") from None


# --- level specs --------------------------------------------------------------------------------

def all_stages() -> list[str]:
    return [f"{w}-{s}" for w in WORLDS for s in STAGES]


def parse_level_spec(spec: str) -> list[str] | Literal["random"]:
    """`1-1` → ['1-1']; `random` → 'random'; `1-1,4-2` → ['1-1', '4-2']. Raises ConfigError."""
    text = spec.strip().lower()
    if text == "random":
        return "random"
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise ConfigError("empty level; use a stage like 1-1, 'random' or a list like 1-1,1-2")
    valid = set(all_stages())
    for part in parts:
        if part not in valid:
            raise ConfigError(f"unknown level {part!r}; valid: 1-1 … 8-4 (world 1-8, stage 1-4), "
                              "'random', or a comma-separated list like 1-1,1-2,4-1")
    return parts
