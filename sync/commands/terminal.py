"""What a person at a terminal sees while a run works: a spinner, then a bar per phase.

Drawn on stderr, and only when stderr is a terminal: stdout carries the plan and the
report, so `pluvo-sync run > out.txt` leaves the file clean, and cron (no terminal)
gets one log line per finished phase instead. Log lines are printed above the live
display through its console (sync.logs.above), so they never tear it.
"""

from __future__ import annotations

import logging
import sys
from contextlib import ExitStack
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sync.logs import above

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, Task, TaskID
    from rich.text import Text

log = logging.getLogger(__name__)


def _columns() -> list[Any]:
    """Phase, bar, done/total, rate, elapsed and time left; the counts, rate and time
    left stay blank on the spinner's line, which has no total."""
    from rich.progress import (
        BarColumn,
        ProgressColumn,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.text import Text

    class Counts(ProgressColumn):
        def render(self, task: Task) -> Text:
            if task.total is None:
                return Text("")
            width = len(f"{int(task.total):,}")
            done = f"{int(task.completed):,}".rjust(width)
            return Text(f"{done}/{int(task.total):,}", style="progress.download")

    class Rate(ProgressColumn):
        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            if task.total is None or not speed:
                return Text("")
            return Text(f"{speed:,.0f} op/s", style="progress.data.speed")

    class Left(ProgressColumn):
        max_refresh = 0.5

        def render(self, task: Task) -> Text:
            left = task.time_remaining
            if task.total is None or task.finished or left is None:
                return Text("")
            minutes, seconds = divmod(int(left), 60)
            return Text(f"eta {minutes}:{seconds:02d}", style="progress.remaining")

    return [
        SpinnerColumn(finished_text="[progress.spinner]✓"),
        TextColumn("{task.description}"),
        BarColumn(),
        Counts(),
        Rate(),
        TimeElapsedColumn(),
        Left(),
    ]


class RunDisplay:
    """A spinner until the first phase reports, then one bar per phase with done/total,
    rate and time left. Usable as the engine's `progress` hook."""

    def __init__(self, waiting: str, *, live: bool, console: Console | None = None) -> None:
        self.waiting = waiting
        self.live = live
        self.console = console
        self._progress: Progress | None = None
        self._spinner: TaskID | None = None
        self._tasks: dict[str, TaskID] = {}
        self._stack = ExitStack()

    @classmethod
    def for_terminal(cls, waiting: str, *, quiet: bool, json_logs: bool) -> RunDisplay:
        """Live on a terminal's stderr; never under --quiet or JSON logs (stderr must then
        hold JSON lines only), never when stderr is a file or a pipe."""
        return cls(waiting, live=sys.stderr.isatty() and not quiet and not json_logs)

    def __enter__(self) -> RunDisplay:
        if not self.live:
            return self
        from rich.console import Console
        from rich.progress import Progress

        console = self.console or Console(stderr=True)
        self._progress = Progress(*_columns(), console=console, redirect_stdout=False)
        self._stack.enter_context(above(console))
        self._progress.start()
        self._spinner = self._progress.add_task(self.waiting, total=None)
        return self

    def __call__(self, phase: str, done: int, total: int) -> None:
        progress = self._progress
        if progress is None:
            if done == total:
                log.info("%s: %d/%d done", phase, done, total)
            return
        self._stop_spinner()
        task = self._tasks.get(phase)
        if task is None:
            task = self._tasks[phase] = progress.add_task(phase, total=total)
        progress.update(task, completed=done, total=total)

    def refresh(self) -> None:
        """Draw now rather than at the next tick."""
        if self._progress is not None:
            self._progress.refresh()

    def _stop_spinner(self) -> None:
        if self._progress is not None and self._spinner is not None:
            self._progress.remove_task(self._spinner)
            self._spinner = None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._stop_spinner()
            self._progress.stop()
            self._progress = None
        self._stack.close()
