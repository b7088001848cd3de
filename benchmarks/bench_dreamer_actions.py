"""How much the action matters in a trained Dreamer's imagination: the signal its actor learns from.

Dreamer's actor is trained by REINFORCE on imagined rollouts, with an entropy bonus.  If the world model predicts
nearly the same return whatever Mario does, the actor's advantages are small beside that bonus and the policy
stays near uniform, however well the model draws the frames.  For each `--checkpoint` (a run folder, checkpoint
or weights file of a Dreamer run) this script takes posterior states of right-leaning random play the model did
not train on, and from each one imagines `--rollouts` rollouts per first action (the actor's sampled policy after
it, the run's horizon, lambda-returns bootstrapped on the slow critic as in training).  It prints, per checkpoint:

* action effect: the spread of the mean return over the 7 first actions (max - min), per start state;
* rollout noise: the standard deviation of one rollout's return for a fixed start and first action;
* state spread: P95 - P5 of the returns over start states, the scale training divides advantages by;
* per first action, over all start states: the mean return and the predicted reward of that first step;
* the actor at the start states: entropy, and how often its most likely action is the imagined best one.

    uv run python benchmarks/bench_dreamer_actions.py --checkpoint RUN_OR_WEIGHTS [--checkpoint ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_world_model import record, trained_learner  # noqa: E402

from mario_tui.engine.checkpoint import CheckpointError  # noqa: E402
from mario_tui.engine.env import action_meanings  # noqa: E402
from mario_tui.engine.learners.dreamer import DreamerLearner, lambda_returns  # noqa: E402
from mario_tui.engine.models.dreamer import RSSMState  # noqa: E402


@torch.no_grad()
def start_states(learner: DreamerLearner, buffer, batches: int, seed: int) -> RSSMState:
    """The posterior state at the last row of each replayed sequence (the GRU has seen the rows before it)."""
    torch.manual_seed(seed)
    hs, zs = [], []
    for _ in range(batches):
        batch = learner.sample_batch(buffer, 8)
        states, _, _ = learner.observe(torch.as_tensor(batch.obs), torch.as_tensor(batch.actions),
                                       torch.as_tensor(batch.is_first))
        hs.append(states.h[:, -1])
        zs.append(states.z[:, -1])
    return RSSMState(torch.cat(hs), torch.cat(zs))


@torch.no_grad()
def first_action_returns(learner: DreamerLearner, start: RSSMState, gamma: float, lam: float, horizon: int,
                         rollouts: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(starts, actions, rollouts) lambda-returns of rollouts that take each first action, then follow the actor,
    and the predicted reward of that first step."""
    model, rssm = learner.model, learner.model.rssm
    starts, actions = start.h.shape[0], model.num_actions
    copies = actions * rollouts
    state = RSSMState(start.h.repeat_interleave(copies, 0), start.z.repeat_interleave(copies, 0))
    first = torch.arange(actions).repeat_interleave(rollouts).repeat(starts)
    features = [state.features()]
    action = first
    for step in range(horizon):
        if step > 0:
            logits = model.actor(features[-1])
            action = (logits - torch.empty_like(logits).exponential_().log()).argmax(-1)
        state = rssm.imagine_step(state, F.one_hot(action, actions).float())
        features.append(state.features())
    stacked = torch.stack(features)
    rewards = model.reward_head(stacked[1:]).squeeze(-1)
    continues = torch.sigmoid(model.continue_head(stacked[1:])).squeeze(-1)
    values = model.slow_critic(stacked).squeeze(-1)
    returns = lambda_returns(rewards, values[:-1], continues, values[-1], lam, gamma)
    return returns[0].view(starts, actions, rollouts), rewards[0].view(starts, actions, rollouts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, action="append", required=True)
    parser.add_argument("--steps", type=int, default=3000, help="env steps of right-leaning random play recorded")
    parser.add_argument("--batches", type=int, default=16, help="batches of 8 sequences: 8 start states each")
    parser.add_argument("--rollouts", type=int, default=16, help="imagined rollouts per start state and action")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    try:
        trained = {path: trained_learner(path) for path in args.checkpoint}
    except (CheckpointError, OSError) as error:
        parser.error(str(error))
    config = next(iter(trained.values()))[0]
    buffer, _ = record(config, args.steps, args.seed)
    for path, (config, learner, counters) in trained.items():
        start = start_states(learner, buffer, args.batches, args.seed)
        returns, first_rewards = first_action_returns(learner, start, config.gamma, config.td_lambda,
                                                      config.imag_horizon, args.rollouts)
        q = returns.mean(-1)  # (starts, actions)
        effect = (q.max(-1).values - q.min(-1).values)
        noise = returns.std(-1).mean()
        flat = returns.flatten()
        spread = float(torch.quantile(flat, 0.95) - torch.quantile(flat, 0.05))
        with torch.no_grad():
            log_probs = learner.model.actor(start.features()).log_softmax(-1)
        names = ", ".join(action_meanings(config.actions))
        entropy = float(-(log_probs.exp() * log_probs).sum(-1).mean())
        agree = float((log_probs.argmax(-1) == q.argmax(-1)).float().mean())
        best = np.bincount(q.argmax(-1).numpy(), minlength=q.shape[1])
        print(f"{path}  (update {counters.get('updates', '?')}, gamma {config.gamma}, entropy_coef "
              f"{config.entropy_coef})")
        print(f"  mean return {float(q.mean()):.3f}   state spread (P95-P5) {spread:.3f}   "
              f"advantage scale max(1, spread) {max(1.0, spread):.3f}")
        print(f"  action effect (max-min over first actions): mean {float(effect.mean()):.3f}, "
              f"median {float(effect.median()):.3f};  rollout noise (std) {float(noise):.3f}")
        print(f"  normalised action effect {float(effect.mean()) / max(1.0, spread):.4f} against entropy_coef "
              f"{config.entropy_coef}")
        print(f"  per first action ({names}): mean return "
              + ", ".join(f"{float(v):.2f}" for v in q.mean(0)) + ";  first-step reward "
              + ", ".join(f"{float(v):.2f}" for v in first_rewards.mean((0, 2))))
        print(f"  actor at the starts: entropy {entropy:.3f} (ln {q.shape[1]} = {np.log(q.shape[1]):.3f}), "
              f"most likely action = imagined best in {agree:.0%};  imagined best action counts {best.tolist()}")


if __name__ == "__main__":
    main()
