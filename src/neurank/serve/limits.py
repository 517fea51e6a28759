"""Bounded work: a fixed number of searches in flight, each under a deadline.

A slot is held until the search's thread is done, not until its answer is given up on: a search past its
deadline still occupies a core, so counting it keeps the number of running searches bounded, and the excess
is refused at once instead of piling up behind it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class Overloaded(Exception):
    """Every slot is taken: answer 429 now."""


class DeadlineExceeded(Exception):
    """The search did not finish in time: answer 504; its thread finishes on its own and then frees its slot."""

    def __init__(self, deadline_s: float) -> None:
        super().__init__(f"the search did not finish within the deadline of {deadline_s * 1000:.0f} ms; try a "
                         "cheaper mode (no rerank), a smaller k or depth, or again when the service is less busy")


class InFlightLimit:
    """At most `capacity` calls run at once on a pool of as many threads, each awaited for `deadline_s`."""

    def __init__(self, capacity: int, deadline_s: float) -> None:
        self.capacity = capacity
        self.deadline_s = deadline_s
        self._running = 0
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=capacity, thread_name_prefix="neurank-search")

    @property
    def in_flight(self) -> int:
        return self._running

    async def run(self, call: Callable[[], T]) -> T:
        """`call()` on a worker thread; `Overloaded` when no slot is free, `DeadlineExceeded` when it is late."""
        with self._lock:
            if self._running >= self.capacity:
                raise Overloaded
            self._running += 1
        future = asyncio.get_running_loop().run_in_executor(self._pool, call)
        future.add_done_callback(self._release)
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.deadline_s)
        except TimeoutError:
            raise DeadlineExceeded(self.deadline_s) from None

    def _release(self, future: asyncio.Future[T]) -> None:
        if not future.cancelled():
            future.exception()  # retrieved: a late search's error was already answered as a 504
        with self._lock:
            self._running -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
