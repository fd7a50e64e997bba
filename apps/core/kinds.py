"""A registry of what each kind of task plugs in, keyed by ``Task.type``.

apps/training keeps one for trainers, apps/inference one for predictors; each kind of task
(image classification today) registers its types when its app is ready.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

K = TypeVar("K")


class KindRegistry(Generic[K]):
    def __init__(self, what: str):
        self.what = what
        self._kinds: dict[str, K] = {}

    def register(self, task_types: Iterable[str], kind: K) -> None:
        for task_type in task_types:
            self._kinds[str(task_type)] = kind

    def get(self, task_type: str) -> K:
        try:
            return self._kinds[task_type]
        except KeyError:
            raise ValueError(f"No {self.what} is registered for tasks of type {task_type!r}.") from None
