"""Progress of long work (backfill, push, import, catch-up): one way to show it.

On a terminal: a bar per task on stderr, with the total and an ETA where the total is known. Off a terminal
(a pipe, systemd, CI): a log line per task at most every ``log_every`` seconds and one when it ends, so the
command's own output on stdout stays clean and machine-readable.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import IO, TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

log = structlog.get_logger("hub.progress")


@dataclass
class _Task:
    name: str
    total: int | None
    done: int = 0
    started: float = field(default_factory=time.monotonic)
    logged: float = 0.0

    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def eta_s(self) -> float | None:
        rate = self.rate()
        if self.total is None or rate <= 0:
            return None
        return max(self.total - self.done, 0) / rate


class ProgressReporter:
    """``with ProgressReporter() as progress: progress.advance("contacts", 50, total=10_000)``.

    ``advance`` may be called with a total at any time (an API that tells its total only on the first page).
    ``stream`` decides terminal or log: the bar is drawn only when it is a TTY, unless ``bar`` says otherwise.
    """

    def __init__(self, *, stream: IO[str] | None = None, bar: bool | None = None, log_every: float = 5.0) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._bar_on = bar if bar is not None else bool(getattr(self._stream, "isatty", lambda: False)())
        self._log_every = log_every
        self._tasks: dict[str, _Task] = {}
        self._bar: Progress | None = None
        self._bar_ids: dict[str, TaskID] = {}

    def __enter__(self) -> ProgressReporter:
        if self._bar_on:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(file=self._stream),
            )
            self._bar.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._bar is not None:
            self._bar.__exit__(exc_type, exc, tb)
            self._bar = None
        else:
            for task in self._tasks.values():
                self._log(task, final=True)

    def advance(self, name: str, n: int = 1, *, total: int | None = None) -> None:
        task = self._tasks.get(name)
        if task is None:
            task = self._tasks[name] = _Task(name, total)
        elif total is not None:
            task.total = total
        task.done += n
        if self._bar is not None:
            if name not in self._bar_ids:
                self._bar_ids[name] = self._bar.add_task(name, total=task.total)
            self._bar.update(self._bar_ids[name], total=task.total, completed=task.done)
        elif time.monotonic() - task.logged >= self._log_every:
            self._log(task)

    def done(self, name: str) -> int:
        """How many items the task has seen so far (0 for a task never advanced)."""
        task = self._tasks.get(name)
        return task.done if task else 0

    def _log(self, task: _Task, *, final: bool = False) -> None:
        task.logged = time.monotonic()
        eta = task.eta_s()
        log.info(
            "progress finished" if final else "progress",
            task=task.name,
            done=task.done,
            total=task.total,
            per_s=round(task.rate(), 1),
            eta_s=None if final or eta is None else round(eta),
        )
