"""A sum tree over non-negative leaf weights, in one flat numpy array, for proportional prioritized replay.

Node 1 is the root, node i has children 2i and 2i+1, and the `capacity` leaves sit at `base .. base+capacity-1`
(`base` is the next power of two, so every leaf is at the same depth and a whole batch of queries can walk down
the tree together, one level per numpy step).  Parents are always recomputed from their children rather than
adjusted by deltas, so rounding errors never accumulate.
"""

from __future__ import annotations

import numpy as np


class SumTree:
    """Leaf weights with O(log n) updates and vectorised prefix-sum search."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self.depth = max(1, (capacity - 1).bit_length())
        self.base = 1 << self.depth
        self.nodes = np.zeros(2 * self.base, dtype=np.float64)

    @property
    def total(self) -> float:
        return float(self.nodes[1])

    @property
    def leaves(self) -> np.ndarray:
        """Read-only view of the leaf weights (index = slot)."""
        view = self.nodes[self.base : self.base + self.capacity]
        view.flags.writeable = False
        return view

    def get(self, slots: np.ndarray) -> np.ndarray:
        return self.nodes[self.base + np.asarray(slots, dtype=np.int64)]

    def set_one(self, slot: int, value: float) -> None:
        """Scalar update in plain Python: much cheaper than numpy calls for the one-leaf-per-env-step case."""
        nodes = self.nodes
        i = self.base + slot
        nodes[i] = value
        i >>= 1
        while i:
            nodes[i] = nodes[2 * i] + nodes[2 * i + 1]
            i >>= 1

    def set(self, slots: np.ndarray, values: np.ndarray) -> None:
        """Vectorised update; duplicate slots are fine (the last value wins, parents agree either way)."""
        nodes = self.nodes
        pos = self.base + np.asarray(slots, dtype=np.int64)
        nodes[pos] = values
        for _ in range(self.depth):
            pos >>= 1
            left = pos << 1
            nodes[pos] = nodes.take(left) + nodes.take(left + 1)

    def load_leaves(self, values: np.ndarray) -> None:
        """Replace every leaf and rebuild all parents bottom-up (used when restoring a saved buffer)."""
        self.nodes[:] = 0.0
        self.nodes[self.base : self.base + self.capacity] = values
        width = self.base // 2
        while width >= 1:
            children = self.nodes[2 * width : 4 * width].reshape(-1, 2)
            self.nodes[width : 2 * width] = children.sum(axis=1)
            width //= 2

    def find(self, targets: np.ndarray) -> np.ndarray:
        """Slots whose cumulative-weight interval contains each target in [0, total); all queries descend together.

        The fast descent can, through rounding at an interval's right edge, walk into a zero-weight leaf; those rare
        queries are redone with a guarded descent that only ever enters children of positive weight.
        """
        targets = np.asarray(targets, dtype=np.float64)
        nodes = self._descend(targets, guarded=False)
        bad = self.nodes[nodes] <= 0.0
        if bad.any():
            nodes[bad] = self._descend(targets[bad], guarded=True)
        return nodes - self.base

    def _descend(self, targets: np.ndarray, guarded: bool) -> np.ndarray:
        nodes = self.nodes
        u = targets.copy()
        node = np.ones(len(u), dtype=np.int64)
        for _ in range(self.depth):
            node <<= 1  # left child
            left = nodes.take(node)
            right = u >= left
            if guarded:
                right = (right & (nodes.take(node + 1) > 0.0)) | (left <= 0.0)
            np.subtract(u, left, out=u, where=right)
            node += right
        return node
