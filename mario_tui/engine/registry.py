"""`--model NAME` → a (model, learner) pair. New model types register here and nowhere else."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mario_tui.engine.config import ConfigError, RunConfig

if TYPE_CHECKING:  # the Launch screen reads this registry before torch is imported (first paint)
    from mario_tui.engine.learners.base import Learner
    from mario_tui.engine.models.base import Model


class ModelNotAvailable(ConfigError):
    """The model name is known but not built yet."""


@dataclass(frozen=True)
class ModelEntry:
    name: str
    description: str
    build: Callable[[RunConfig, int], tuple[Model, Learner]] | None
    metrics: tuple[str, ...] = ()
    """Learner metrics sent with each gradient packet (at most 16): CSV columns and dashboard figures."""
    headline: tuple[str, str] = ("", "")
    """The two metrics the dashboard plots and the progress line shows (a loss, then a value estimate)."""
    prioritized_replay: bool = True
    """Whether the learner uses replay priorities (False: the buffer skips its sum tree)."""
    lr_fields: Mapping[str, str] = field(default_factory=dict)
    """The RunConfig option that holds each parameter group's learning rate; groups not named here use `lr`."""
    optional_metrics: frozenset[str] = frozenset()
    """Metrics of an option that is off by default: the learner sends them only with it on, the dashboard lists
    them only once they arrive, and training.csv leaves their column empty until then."""


def _build_ddqn(config: RunConfig, num_actions: int) -> tuple[Model, Learner]:
    from mario_tui.engine.env import action_buttons
    from mario_tui.engine.learners.ddqn import DDQNLearner
    from mario_tui.engine.learners.qrdqn import QuantileDDQNLearner
    from mario_tui.engine.models.ddqn import DuelingDDQN

    codes = None
    if config.prev_action:  # the buttons each action holds; an env of another action space (tests) sees one-hot
        codes = action_buttons(config.actions)
        if len(codes) != num_actions:
            codes = [[float(i == j) for j in range(num_actions)] for i in range(num_actions)]
    model = DuelingDDQN(config.frame_stack, num_actions, config.frame_size, config.conv_width,
                        config.hidden_size, config.q_scale, seed=config.seed, prev_action_codes=codes,
                        bf16_trunk=config.bf16, num_quantiles=config.quantiles)
    if config.quantiles:
        return model, QuantileDDQNLearner(model, reward_scale=config.reward_scale, augment_shift=config.augment_shift)
    return model, DDQNLearner(model, reward_scale=config.reward_scale, augment_shift=config.augment_shift,
                              munchausen_alpha=config.munchausen_alpha,
                              munchausen_temperature=config.munchausen_temperature,
                              lower_bound=config.lower_bound)


def _build_dreamer(config: RunConfig, num_actions: int) -> tuple[Model, Learner]:
    from mario_tui.engine.learners.dreamer import DreamerLearner
    from mario_tui.engine.models.dreamer import DreamerModel

    model = DreamerModel(num_actions, config.frame_size, config.conv_width, config.hidden_size, config.deter_size,
                         config.stoch_size, config.stoch_classes, seed=config.seed)
    learner = DreamerLearner(model, seq_len=config.seq_len, imag_horizon=config.imag_horizon,
                             imag_starts=config.imag_starts, gamma=config.gamma, td_lambda=config.td_lambda,
                             reward_scale=config.reward_scale, kl_coef=config.kl_coef, kl_balance=config.kl_balance,
                             free_nats=config.free_nats, entropy_coef=config.entropy_coef,
                             actor_coef=config.actor_coef, critic_coef=config.critic_coef)
    return model, learner


REGISTRY: dict[str, ModelEntry] = {
    "ddqn": ModelEntry("ddqn", "Dueling Double DQN with n-step prioritized replay", _build_ddqn,
                       ("q_loss", "q_mean", "q_max", "td_error_mean", "bound_share", "batch_size"),
                       ("q_loss", "q_mean"), optional_metrics=frozenset({"bound_share"})),
    "dreamer": ModelEntry("dreamer", "Dreamer-style world model with an imagined actor-critic", _build_dreamer,
                          ("wm_loss", "wm_recon_mse", "wm_ssim", "wm_kl", "wm_reward_loss", "wm_cont_loss",
                           "wm_terminal_acc", "actor_loss", "actor_entropy", "imag_return", "imag_value",
                           "critic_loss", "batch_size"), ("wm_loss", "imag_return"), prioritized_replay=False,
                          lr_fields={"actor": "actor_lr", "critic": "critic_lr"}),
}


def check_available(name: str) -> ModelEntry:
    """The registry entry for `name`, or ConfigError saying what is valid / available."""
    entry = REGISTRY.get(name)
    if entry is None:
        raise ConfigError(f"--model: unknown model {name!r}; valid: {', '.join(REGISTRY)}")
    if entry.build is None:
        raise ModelNotAvailable(f"--model: {name!r} is not available yet (available: "
                                f"{', '.join(n for n, e in REGISTRY.items() if e.build)})")
    return entry


def build_model(config: RunConfig, num_actions: int) -> tuple[Model, Learner]:
    """Build the model and learner named by `config.model`."""
    entry = check_available(config.model)
    assert entry.build is not None
    return entry.build(config, num_actions)


def make_buffer(config: RunConfig, seed: int | None) -> Any:
    """The replay buffer a worker of this config fills: prioritized when `--per` is on and the model uses it."""
    from mario_tui.engine.replay import ReplayBuffer

    prioritized = config.per and REGISTRY[config.model].prioritized_replay
    return ReplayBuffer(config.buffer_size, (config.frame_size, config.frame_size), config.frame_stack,
                        n_step=config.n_step, gamma=config.gamma, prioritized=prioritized,
                        alpha=config.per_alpha, beta_start=config.per_beta, beta_steps=config.per_beta_steps,
                        seed=seed)
