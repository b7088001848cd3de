"""Preview frames for the dashboard: the real game frame, or for world models a 2x2 mosaic of the real frame,
the model's reconstruction of it and frames it imagines ahead (all in the 240x256 RGB preview slot)."""

from __future__ import annotations

import numpy as np

FRAME_H, FRAME_W = 240, 256
TILE_H, TILE_W = FRAME_H // 2, FRAME_W // 2


def _tile_gray(frame: np.ndarray) -> np.ndarray:
    """Nearest-neighbour resize of a grayscale frame to one tile, as RGB."""
    rows = np.arange(TILE_H) * frame.shape[0] // TILE_H
    cols = np.arange(TILE_W) * frame.shape[1] // TILE_W
    return np.repeat(frame[rows][:, cols][:, :, None], 3, axis=2)


def world_model_mosaic(rgb: np.ndarray, model_frames: list[np.ndarray]) -> np.ndarray:
    """[real | reconstruction] over [imagined +k | imagined +2k]; missing tiles stay black."""
    out = np.zeros((FRAME_H, FRAME_W, 3), np.uint8)
    out[:TILE_H, :TILE_W] = rgb[::2, ::2]
    slots = [(0, TILE_W), (TILE_H, 0), (TILE_H, TILE_W)]
    for (top, left), frame in zip(slots, model_frames, strict=False):
        out[top:top + TILE_H, left:left + TILE_W] = _tile_gray(frame)
    return out
