"""UI defaults shared by the CLI, the app and the widgets; import-light, so `--batch` loads no Textual."""

from __future__ import annotations

DEFAULT_PREVIEW_FPS = 10.0
"""Live game-frame preview rate in the dashboard (`mario-tui --preview-fps`)."""
