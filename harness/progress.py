"""The progress display of ``harness run``: two bars on stderr, "train" (training steps) and
"evaluate" (evaluation cells), drawn from the :class:`harness.runner.RunProgress` reports that
:func:`harness.runner.run` sends. The runner only counts; drawing lives here, beside the command
line's other output, and only on a terminal."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.runner import RunProgress


class ProgressBars:
    """A ``progress`` callback for :func:`harness.runner.run` that draws rich progress bars on
    ``console`` (default: stderr). Nothing is drawn off a terminal, and nothing before the first
    report, which comes once the run has planned its work (a run refused before that, or with
    nothing to do, draws nothing). Use as a context manager: leaving it stops the display."""

    def __init__(self, console: Any = None) -> None:
        from rich.console import Console

        self._console = console or Console(stderr=True)
        self._bars: Any = None  # a rich Progress, from the first report on
        self._ids: tuple[Any, Any] = (None, None)  # the "train" and "evaluate" task ids

    def __enter__(self) -> ProgressBars:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __call__(self, progress: RunProgress) -> None:
        if not self._console.is_terminal:
            return
        if self._bars is None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            # the descriptions are the harness's own words, yet never read as markup
            self._bars = Progress(TextColumn("{task.description:>9}", markup=False), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), console=self._console, transient=False)
            self._bars.start()
            self._ids = (self._bars.add_task("train", total=progress.train_total),
                         self._bars.add_task("evaluate", total=progress.eval_total))
        train, evaluate = self._ids
        self._bars.update(train, completed=progress.train_done, total=progress.train_total)
        self._bars.update(evaluate, completed=progress.eval_done, total=progress.eval_total)

    def close(self) -> None:
        """Stop the display (it stays on the terminal as it last was)."""
        if self._bars is not None:
            self._bars.stop()
            self._bars = None
