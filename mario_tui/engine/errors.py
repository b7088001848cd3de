"""Errors the front ends catch and show as one line; here, apart from the modules that raise them, so that
catching one costs no heavy import (checkpoint.py needs torch, the app's first paint must not)."""

from __future__ import annotations


class CheckpointError(Exception):
    """A checkpoint file is missing, damaged, truncated or not ours; the message names the file."""
