"""Progress reporting for long stages: rich bars for the feature stage, lines for the rest."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import TaskID

from radiopath.display import progress_bar

FeatureProgress = Callable[[str, int, int], None]


@contextlib.contextmanager
def feature_bars(console: Console) -> Iterator[FeatureProgress]:
    """A ``progress(label, done, total)`` callback drawing one bar per label while the block runs."""
    with progress_bar(console) as bar:
        tasks: dict[str, TaskID] = {}

        def update(label: str, done: int, total: int) -> None:
            if label not in tasks:
                tasks[label] = bar.add_task(label, total=max(total, 1))
            bar.update(tasks[label], completed=done, total=max(total, 1))

        yield update
