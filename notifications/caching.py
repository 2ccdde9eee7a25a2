"""A value loaded from the database at most once per `seconds` in each process, for
configuration that is read on every order but edited rarely (message templates, which
clients have a webhook URL). An edit shows in every process within `seconds`."""

from __future__ import annotations

from collections.abc import Callable
from time import monotonic
from typing import ClassVar, Generic, TypeVar

T = TypeVar("T")


class TimedValue(Generic[T]):
    instances: ClassVar[list[TimedValue]] = []

    def __init__(self, load: Callable[[], T], *, seconds: float) -> None:
        self.load, self.seconds = load, seconds
        self._entry: tuple[float, T] | None = None
        TimedValue.instances.append(self)

    def get(self) -> T:
        entry, now = self._entry, monotonic()
        if entry is not None and now < entry[0]:
            return entry[1]
        # Two threads may both load: harmless, the later one wins.
        value = self.load()
        self._entry = (now + self.seconds, value)
        return value

    def clear(self) -> None:
        self._entry = None


def caches_clear() -> None:
    """Forget every cached value (tests: each starts from the database)."""
    for value in TimedValue.instances:
        value.clear()
