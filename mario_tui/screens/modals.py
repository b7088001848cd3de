"""Small modal screens: confirmation and help."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

HELP = """\
# mario-tui keys

| key | what it does |
|---|---|
| `p` | pause / resume the run (workers hold, the coordinator applies nothing) |
| `r` | restart the selected worker (pick it in the worker table) |
| `R` | restart every stale, dead or failed worker |
| `s` | write a checkpoint now |
| `v` | replay viewer: watch a checkpoint play an episode, export a GIF |
| `n` | new run (stops the current one after a checkpoint) |
| `?` | this help |
| `q` | quit: asks first while a run is live, then checkpoints, stops workers, frees shared memory |
| `ctrl+p` | command palette: every action by name |

Launch screen: `ctrl+l` launches, `ctrl+r` (or Enter on a row) resumes the selected previous run; in the runs
list (`ctrl+t` goes there) `space` marks runs and `c` compares the marked ones (their curves overlaid: `x`
switches between updates, agent steps and minutes, `s` the smoothing, `escape` goes back).
Headless servers: `mario-tui --batch --help`.
"""


class ConfirmScreen(ModalScreen[bool]):
    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Vertical { width: 64; height: auto; border: thick $warning; background: $surface; padding: 1 2; }
    ConfirmScreen Horizontal { height: auto; align: center middle; margin-top: 1; }
    ConfirmScreen Button { margin: 0 2; }
    """
    BINDINGS = [Binding("y", "answer(True)", "Yes"), Binding("n,escape", "answer(False)", "No")]

    def __init__(self, question: str, yes: str = "Yes", no: str = "Cancel") -> None:
        super().__init__()
        self.question, self.yes, self.no = question, yes, no

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.question, markup=False)
            with Horizontal():
                yield Button(f"{self.yes} (y)", id="yes", variant="warning")
                yield Button(f"{self.no} (n)", id="no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Vertical { width: 90; height: auto; max-height: 90%; border: thick $primary; background: $surface; }
    """
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close")]

    def compose(self) -> ComposeResult:
        with Vertical():
            from textual.widgets import Markdown  # markdown-it costs the first paint ~0.1 s: only when asked

            yield Markdown(HELP)

    def action_close(self) -> None:
        self.dismiss(None)
