"""Progress callbacks: the silent ``Reporter`` (the Python API) and the CLI's rich one (a line per stage, bars,
warnings on stderr)."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn


class Reporter:
    """Progress callbacks; the base class is silent (the Python API), the CLI's draws rich progress lines."""

    def stage_started(self, name: str, title: str) -> None:
        """A stage begins."""

    def stage_finished(self, name: str, status: str, seconds: float, summary: str) -> None:
        """A stage ended with 'ok', 'skipped', 'failed' or 'partial' (its format failed, what it made is kept)."""

    def bar(self, title: str, total: int) -> Callable[[], None]:
        """A progress bar of ``total`` steps; returns the function that advances it by one."""
        return lambda: None

    def warn(self, message: str) -> None:
        """A loud warning."""

    def close(self) -> None:
        """Stop drawing."""


STATUS_MARK = {"ok": "[green]✓[/]", "skipped": "[dim]–[/]", "failed": "[red]✗[/]", "partial": "[yellow]◐[/]"}


class RichReporter(Reporter):
    """Draws progress on stderr so stdout stays clean for --json."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        self.progress.start()
        self.task: TaskID | None = None
        self.bar_task: TaskID | None = None

    def stage_started(self, name: str, title: str) -> None:
        self.task = self.progress.add_task(f"{name:<10} {title}", total=None)

    def stage_finished(self, name: str, status: str, seconds: float, summary: str) -> None:
        for task in (self.task, self.bar_task):
            if task is not None:
                self.progress.remove_task(task)
        self.task = self.bar_task = None
        timing = f"{seconds:6.1f} s" if status != "skipped" else "       "
        detail = f"  [dim]{summary}[/]" if summary and status == "ok" else ""
        detail = {"failed": "  [red]failed[/]", "partial": "  [yellow]partial[/]"}.get(status, detail)
        self.progress.console.print(f"{STATUS_MARK[status]} {name:<10} {timing}{detail}", highlight=False)

    def bar(self, title: str, total: int) -> Callable[[], None]:
        self.bar_task = self.progress.add_task(f"           {title}", total=total)
        task = self.bar_task
        return lambda: self.progress.advance(task)

    def warn(self, message: str) -> None:
        self.progress.console.print(f"[bold yellow]warning:[/] {message}", highlight=False)

    def close(self) -> None:
        self.progress.stop()
