"""One flat float32 buffer behind all parameters (or all gradients) of a model.

Making each `param.data` / `param.grad` a view into one contiguous buffer means publishing weights or
sending gradients is a single memcpy, with no per-tensor flatten copy (measured: ~180 µs saved per
6.75 MB packet) — backward accumulates straight into the flat gradient.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch


class FlatParameters:
    """Rebinds `params` so their data and grads live in two flat tensors (`weights`, `grads`); with
    `grads=False` (a target network, which is copied, never trained) only their data."""

    def __init__(self, params: Iterable[torch.nn.Parameter], grads: bool = True) -> None:
        self.params = list(params)
        self.numel = sum(p.numel() for p in self.params)
        device = self.params[0].device if self.params else torch.device("cpu")
        self.weights = torch.empty(self.numel, dtype=torch.float32, device=device)
        self.grads = torch.zeros(self.numel if grads else 0, dtype=torch.float32, device=device)
        offset = 0
        with torch.no_grad():
            for p in self.params:
                n = p.numel()
                self.weights[offset:offset + n].copy_(p.data.reshape(-1))
                p.data = self.weights[offset:offset + n].view_as(p)
                if grads:
                    p.grad = self.grads[offset:offset + n].view_as(p)
                offset += n

    def bind_grads(self, flat: torch.Tensor) -> None:
        """Make every `.grad` a view of `flat` (e.g. a shared-memory slot) and zero it: backward then
        accumulates straight into `flat`."""
        flat.zero_()
        offset = 0
        for p in self.params:
            n = p.numel()
            p.grad = flat[offset:offset + n].view_as(p)
            offset += n
        self.grads = flat

    def zero_grads(self) -> None:
        """Zero in place: `optimizer.zero_grad(set_to_none=True)` would break the views."""
        self.grads.zero_()

    def weights_numpy(self) -> np.ndarray:
        """Writable numpy view of the flat weights (CPU only)."""
        return self.weights.numpy()

    def grads_numpy(self) -> np.ndarray:
        return self.grads.numpy()

    def load_weights(self, flat: np.ndarray | torch.Tensor) -> None:
        with torch.no_grad():
            self.weights.copy_(torch.as_tensor(flat))


def parameter_count(params: Iterable[torch.nn.Parameter]) -> int:
    return sum(p.numel() for p in params)
