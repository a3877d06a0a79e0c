"""How a stage runs its independent pieces: in this process, one after the other, or as tasks elsewhere.

A stage that splits its work into independent pieces (one uplift model per strategy, one daily fact per
day range, one feature table per entity bucket) takes a `TaskMap` and calls it once with the function
and the pieces. `in_process` runs them here, in order (the single-process build); the shell's Dask
runner (`liftboard.cluster.DaskTasks`) submits them as tasks to a cluster and gathers the results in
the same order. The function and its pieces must then pickle (module-level functions, frames, configs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class TaskMap(Protocol):
    """``map_tasks(function, items)`` → ``[function(item) for item in items]``, computed anywhere."""

    def __call__(self, function: Callable[[Item], Result], items: Sequence[Item], /) -> list[Result]: ...


def in_process(function: Callable[[Item], Result], items: Sequence[Item], /) -> list[Result]:
    """Every piece in this process, in order: the single-process `TaskMap`."""
    return [function(item) for item in items]
