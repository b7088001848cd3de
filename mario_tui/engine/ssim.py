"""Structural similarity (SSIM, Wang, Bovik, Sheikh & Simoncelli 2004) of grayscale images in [0, data_range].

The standard setting of the paper and of its reference implementation (`ssim_index.m`): an 11 x 11 Gaussian
window with sigma 1.5, constants C1 = (0.01 L)^2 and C2 = (0.03 L)^2 for the dynamic range L, local statistics
as Gaussian-weighted means (population variances, no N/(N-1) correction), and the SSIM map taken over the
"valid" region only (every window lies fully inside the image; no padding), then averaged per image.

The Gaussian filter is separable, so it runs as two 1-D passes (banded-matrix products); no gradient is needed
for a metric but the function is differentiable anyway.
"""

from __future__ import annotations

import torch

WINDOW = 11
SIGMA = 1.5
K1, K2 = 0.01, 0.03


def gaussian_window(size: int = WINDOW, sigma: float = SIGMA, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The normalised 1-D Gaussian weights (size,) that, as an outer product, form the 2-D window."""
    coords = torch.arange(size, dtype=dtype) - (size - 1) / 2
    weights = torch.exp(-(coords**2) / (2 * sigma**2))
    return weights / weights.sum()


def _valid_filter_matrix(length: int, window: torch.Tensor) -> torch.Tensor:
    """(length - size + 1, length) banded matrix whose rows are the window shifted by one pixel each."""
    size = window.numel()
    out = torch.zeros(length - size + 1, length, dtype=window.dtype, device=window.device)
    for i in range(out.shape[0]):
        out[i, i:i + size] = window
    return out


def _filter(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Valid 2-D Gaussian filtering of every (H, W) plane of x (..., H, W): rows then columns, as two matmuls
    with banded matrices (much faster than an 11-tap convolution on a CPU)."""
    rows = _valid_filter_matrix(x.shape[-2], window)
    cols = _valid_filter_matrix(x.shape[-1], window)
    return rows @ x @ cols.T


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, reduction: str = "mean") -> torch.Tensor:
    """SSIM of image pairs shaped (H, W), (N, H, W) or (N, 1, H, W); both sides at least 11 pixels.

    reduction: "mean" → one scalar over all images; "none" → one value per image (N,).
    """
    if x.shape != y.shape:
        raise ValueError(f"images must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.dim() == 2:
        x, y = x[None, None], y[None, None]
    elif x.dim() == 3:
        x, y = x[:, None], y[:, None]
    elif x.dim() != 4 or x.shape[1] != 1:
        raise ValueError(f"expected (H, W), (N, H, W) or (N, 1, H, W) grayscale images, got {tuple(x.shape)}")
    if min(x.shape[-2:]) < WINDOW:
        raise ValueError(f"images must be at least {WINDOW} x {WINDOW} pixels, got {tuple(x.shape[-2:])}")
    dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    x, y = x.to(dtype), y.to(dtype)
    window = gaussian_window(dtype=dtype).to(x.device)
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    mu_x, mu_y, xx, yy, xy = _filter(torch.cat([x, y, x * x, y * y, x * y], dim=1), window).unbind(1)
    var_x = xx - mu_x * mu_x
    var_y = yy - mu_y * mu_y
    cov = xy - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    per_image = ssim_map.flatten(1).mean(dim=1)
    if reduction == "none":
        return per_image
    if reduction == "mean":
        return per_image.mean()
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
