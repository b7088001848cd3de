"""Optimizer, cosine LR schedule and gradient clipping shared by the single-process trainer and the coordinator."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from mario_tui.engine.config import RunConfig


def make_optimizer(params: Iterable[torch.nn.Parameter], lr: float, device: torch.device) -> torch.optim.Adam:
    """Adam, fused where torch supports it (measured here: 0.9 ms vs 4.9 ms default per step on CPU)."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, eps=1.5e-4, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr, eps=1.5e-4)


def cosine_lr(update: int, config: RunConfig) -> float:
    """LR after `update` updates: cosine from lr to lr_min over lr_decay_updates, then lr_min."""
    progress = min(update, config.lr_decay_updates) / config.lr_decay_updates
    return config.lr_min + 0.5 * (config.lr - config.lr_min) * (1 + math.cos(math.pi * progress))


def make_scheduler(optimizer: torch.optim.Optimizer, config: RunConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """torch's LambdaLR over `cosine_lr`, so its state (last_epoch) resumes with the checkpoint."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: cosine_lr(step, config) / config.lr)


def clip_gradients(params: Iterable[torch.nn.Parameter], max_norm: float) -> float:
    """Clip to a global L2 norm (0 = off); returns the norm before clipping."""
    limit = max_norm if max_norm > 0 else float("inf")
    return float(torch.nn.utils.clip_grad_norm_(list(params), limit))


def epsilon_at(step: int, start: float, end: float, decay_steps: int) -> float:
    """Linear decay from start to end over decay_steps agent steps."""
    frac = min(max(step, 0), decay_steps) / decay_steps
    return start + (end - start) * frac


def worker_final_epsilon(worker_id: int, workers: int, eps_end: float) -> float:
    """Ape-X style spread: worker i ends at eps_end ** (1 + i / (workers - 1)), so workers explore differently."""
    if workers <= 1:
        return eps_end
    return eps_end ** (1 + worker_id / (workers - 1))
