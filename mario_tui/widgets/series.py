"""Vectorised series helpers for plots: EMA smoothing and min/max decimation.

Plot cost grows with the number of points (plotext: 4×20,000 points ≈ 650 ms a redraw), while a terminal plot
can show only ~2 points per cell column; decimating to ~2× the width keeps the look (spikes included) at a
fraction of the cost.
"""

from __future__ import annotations

import math

import numpy as np

_MAX_GROWTH = 1e150  # bound on (1-alpha)^-k inside one EMA chunk: far from float64 overflow (1e308)


def ema(values: np.ndarray, alpha: float) -> np.ndarray:
    """Exponential moving average: y[0] = x[0], y[t] = alpha·x[t] + (1 − alpha)·y[t−1]; NaNs propagate.

    Vectorised with the closed form y[t] = d^t·(y[s] + alpha·Σ x[j]·d^−j) (d = 1 − alpha) over chunks short enough
    that d^−j cannot overflow, each chunk starting from the previous chunk's last value.
    """
    x = np.asarray(values, dtype=np.float64)
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    if x.ndim != 1:
        raise ValueError(f"expected a 1-D series, got shape {x.shape}")
    if x.size == 0 or alpha == 1.0:
        return x.copy()
    decay = 1.0 - alpha
    chunk = max(1, int(math.log(_MAX_GROWTH) / -math.log(decay)))
    powers = decay ** np.arange(1, min(chunk, x.size) + 1)  # d^k, k = 1..chunk
    out = np.empty_like(x)
    previous = x[0]  # y[-1] := x[0] makes y[0] = x[0]
    for start in range(0, x.size, chunk):
        segment = x[start:start + chunk]
        d = powers[: segment.size]
        out[start:start + segment.size] = d * (previous + alpha * np.cumsum(segment / d))
        previous = out[start + segment.size - 1]
    return out


def downsample(xs: np.ndarray, ys: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """At most `n` points of (xs, ys) that keep each bucket's minimum and maximum (so spikes survive), in order.

    Series of `n` points or fewer come back unchanged. `ys` must be finite (filter NaNs first).
    """
    xs = np.asarray(xs)
    ys = np.asarray(ys)
    if xs.shape != ys.shape or xs.ndim != 1:
        raise ValueError(f"xs and ys must be 1-D and of equal length, got {xs.shape} and {ys.shape}")
    length = ys.size
    if length <= n:
        return xs, ys
    if n < 2:
        return xs[:n], ys[:n]
    buckets = n // 2
    size = -(-length // buckets)  # ceil: buckets × size ≥ length
    padded = np.pad(ys, (0, buckets * size - length), mode="edge").reshape(buckets, size)
    base = np.arange(buckets) * size
    picks = np.concatenate([base + padded.argmin(axis=1), base + padded.argmax(axis=1)])
    index = np.unique(np.minimum(picks, length - 1))  # sorted; a padded pick equals the last point
    return xs[index], ys[index]
