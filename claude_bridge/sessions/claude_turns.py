"""Turns Claude starts by itself in one session (a background task ended, /loop, a cron): each is shown through the
front end in the place the session's work came from, read for the session's books, and followed by a task that this
object owns and ends in `close()`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from claude_bridge.process.turns import Turn
from claude_bridge.protocol.events import CANCELLED, TurnResult
from claude_bridge.sessions.frontend import FrontEnd
from claude_bridge.sessions.place import Place
from claude_bridge.sessions.worker import Delivery, failure

logger = logging.getLogger(__name__)


class ClaudeTurns:
    """The running turns of Claude's own, one task each."""

    def __init__(
        self,
        name: str,
        front_end: FrontEnd,
        follow: Callable[[Turn, Place], Awaitable[TurnResult]],
        after_each: Callable[[], Awaitable[None]],
    ) -> None:
        self.name = name
        self._front_end = front_end
        self._follow_turn = follow  # the session reads the turn for its books (prompts, the menu)
        self._after_each = after_each
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def running(self) -> int:
        return sum(1 for task in self._tasks if not task.done())

    def begin(self, turn: Turn, place: Place | None, book: Callable[[TurnResult], None]) -> None:
        """Show the turn in `place` and follow it to its end; `book` keeps the session's books of its result."""
        delivery = Delivery.of_claude_turn(self.name, place, turn)
        if place is None:
            logger.warning("session %s: Claude's own turn (%s) has no chat to go to", self.name, turn.header)
        else:
            self._front_end.show_claude_turn(delivery)
        task = asyncio.get_running_loop().create_task(self._follow(turn, delivery, book), name=f"claude-{self.name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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
