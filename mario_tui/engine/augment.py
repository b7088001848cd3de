"""Random-shift image augmentation (DrQ, Kostrikov et al. 2020): the cheapest regulariser known to make a
pixel-based DQN learn more from each sampled transition.

Each observation of a batch is padded by `pad` pixels on every side (edge pixels repeated) and cropped back to its
size at a random offset, the same offset for all frames of its stack (the stack stays a consistent short clip).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def random_shift(frames: torch.Tensor, pad: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, C, H, W) frames (any dtype) shifted by up to `pad` pixels each way, independently per row."""
    if pad <= 0:
        return frames
    batch, _, height, width = frames.shape
    padded = F.pad(frames, (pad, pad, pad, pad), mode="replicate")
    offsets = torch.randint(0, 2 * pad + 1, (batch, 2), generator=generator, device="cpu").tolist()
    return torch.stack([padded[i, :, dy:dy + height, dx:dx + width] for i, (dy, dx) in enumerate(offsets)])
