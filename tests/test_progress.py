"""Tests for harness.progress: the bars draw the runner's progress reports on a terminal, from the
first report on, end as the last report says, and draw nothing off a terminal."""

from __future__ import annotations

import io
import re

from rich.console import Console

from harness.progress import ProgressBars
from harness.runner import RunProgress

REPORTS = [RunProgress(0, 72, 0, 56), RunProgress(17, 72, 0, 56), RunProgress(72, 72, 0, 40),
           RunProgress(72, 72, 39, 40), RunProgress(72, 72, 40, 40)]


def test_the_bars_draw_each_report_on_a_terminal_and_end_at_the_last() -> None:
    out = io.StringIO()
    with ProgressBars(Console(file=out, force_terminal=True, width=100)) as show:
        assert out.getvalue() == ""  # nothing before the first report (a refused run draws nothing)
        for report in REPORTS:
            show(report)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())  # colours and cursor moves out
    *_, train, evaluate = [line for line in re.split(r"[\r\n]", text) if line.strip()]  # as it was left
    assert train.split()[0] == "train" and " 72/72 " in train
    assert evaluate.split()[0] == "evaluate" and " 40/40 " in evaluate and "56" not in evaluate


def test_off_a_terminal_nothing_is_drawn() -> None:
    out = io.StringIO()
    with ProgressBars(Console(file=out, force_terminal=False)) as show:
        for report in REPORTS:
            show(report)
    assert out.getvalue() == ""
