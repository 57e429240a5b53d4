"""Turns Claude starts by itself in one session (a background task ended, /loop, a cron): each is followed to its end
(read for the session's books, its delivery ended with one result) by a task that this object owns and ends in
`close()`. Where a turn shows is the session's business.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from claude_bridge.process.turns import Turn
from claude_bridge.protocol.events import CANCELLED, TurnResult
from claude_bridge.sessions.place import Place
from claude_bridge.sessions.worker import Delivery, failure

logger = logging.getLogger(__name__)


class ClaudeTurns:
    """The running turns of Claude's own, one task each."""

    def __init__(
        self,
        name: str,
        follow: Callable[[Turn, Place], Awaitable[TurnResult]],
        after_each: Callable[[], Awaitable[None]],
    ) -> None:
        self.name = name
        self._follow_turn = follow  # the session reads the turn for its books (prompts, the menu)
        self._after_each = after_each
        self._tasks: dict[asyncio.Task[None], Delivery] = {}  # each with the delivery that shows its turn

    @property
    def running(self) -> int:
        return sum(1 for task in self._tasks if not task.done())

    @property
    def in_flight(self) -> list[Delivery]:
        """The deliveries of the turns still running (a reload hands the running one over)."""
        return [delivery for delivery in self._tasks.values() if not delivery.done.is_set()]

    def follow(self, turn: Turn, delivery: Delivery, book: Callable[[TurnResult], None]) -> None:
        """Follow the turn to its end in a task owned here; `book` keeps the session's books of its result."""
        task = asyncio.get_running_loop().create_task(self._follow(turn, delivery, book), name=f"claude-{self.name}")
        self._tasks[task] = delivery
        task.add_done_callback(lambda done: self._tasks.pop(done, None))

    async def wait(self) -> None:
        """Until no turn of Claude's own runs (a restart must not cut one off)."""
        while running := [task for task in self._tasks if not task.done()]:
            await asyncio.wait(running)

    async def close(self, timeout: float) -> None:
        """Let the running turns end (their process stopped, so they end soon), then cancel what is left."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)
        leftovers = list(self._tasks)
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)

    async def _follow(self, turn: Turn, delivery: Delivery, book: Callable[[TurnResult], None]) -> None:
        """Book Claude's own turn like any other (turns, cost, timings); its view ends with one result."""
        result = failure("Claude's own turn ended without a result.")
        try:
            result = await self._follow_turn(turn, delivery.place)
            book(result)
        except asyncio.CancelledError:
            result = failure("The bot is shutting down; Claude's own turn was cut off.", CANCELLED)
            raise
        except Exception as exc:
            logger.exception("session %s: could not pass on Claude's own turn", self.name)
            result = failure(f"Could not pass on Claude's own turn: {exc}")
        finally:
            delivery.finish(result)
            await self._after_each()
