"""UI defaults shared by the CLI, the app and the widgets; import-light, so `--batch` loads no Textual."""

from __future__ import annotations

DEFAULT_PREVIEW_FPS = 5.0
"""Live game-frame preview rate in the dashboard (`mario-tui --preview-fps`, 1-30).

Measured with `benchmarks/bench_app_overhead.py --terminal` in a 160×50 tmux pane beside a 2-worker run on 2 cores:
the dashboard kept 0.97 of the training throughput at 5 frames/s and 0.92-0.94 at 10 (tmux and Textual's terminal
output are most of the difference). The live preview is for glancing at a worker; the replay viewer plays whole
episodes at full speed.
"""

EXIT_ALL_WORKERS_FAILED = 3
"""`mario-tui --batch`'s exit status when every worker failed (crashed too often) and the run stopped."""

EXIT_STATUS_HELP = (
    "exit status: 0 when --steps is reached or a signal (Ctrl+C, SIGTERM, SIGHUP) stopped the run; 1 when training "
    "failed or the final checkpoint could not be written; 2 for bad input (flags, run folder, checkpoint); "
    f"{EXIT_ALL_WORKERS_FAILED} when every worker failed (crashed too often) and the run stopped"
)
