"""End to end: the single-process trainer (collect → store → sample → loss → step) learns a task."""

from __future__ import annotations

import numpy as np
import torch

from mario_tui.engine.config import RunConfig
from mario_tui.engine.trainer import Trainer
from tests.engine.corridor import Corridor, episode_return


def test_trained_agent_beats_random_on_the_corridor():
    config = RunConfig(frame_size=36, conv_width=8, hidden_size=32, batch_size=32, buffer_size=5_000,
                       learning_starts=200, collect_steps=4, n_step=3, gamma=0.9, lr=1e-3, lr_min=1e-4,
                       lr_decay_updates=600, target_update=50, eps_start=1.0, eps_end=0.05,
                       eps_decay_steps=1_500, reward_scale=1.0, q_scale=10.0, seed=3, workers=1)
    torch.manual_seed(3)
    trainer = Trainer(config, env=Corridor())
    report = trainer.run(600)
    assert report.updates == 600
    assert report.env_steps >= 600 * 4
    assert np.isfinite(report.last_metrics["q_loss"])

    model = trainer.model
    rng = np.random.default_rng(0)
    greedy = [episode_return(Corridor(), lambda o: int(model.select_action(torch.from_numpy(o)[None], 0.0)[0]), s)
              for s in range(5)]
    random_returns = [episode_return(Corridor(), lambda o: int(rng.integers(3)), s) for s in range(50)]
    # The greedy agent walks straight to the goal: 7 steps, return 1 - 6 * 0.01 = 0.94.
    assert np.mean(greedy) > 0.9
    assert np.mean(greedy) > np.mean(random_returns) + 0.5
