"""The per-session queue: accepted messages (Delivery) handled strictly one at a time, in arrival order.

It knows nothing of processes: it hands each Delivery to a `deliver` function and makes sure every Delivery ends
with exactly one TurnResult, whatever that function does (raises, or is cancelled by a shutdown).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from claude_bridge.protocol.events import CANCELLED, Event, TurnResult
from claude_bridge.sessions.inbox import Content
from claude_bridge.sessions.place import Place

logger = logging.getLogger(__name__)

DELIVERY_FAILED = "delivery_failed"


@dataclass(frozen=True)
class Notice:
    """A sentence from the manager for the chat (a session was created, resumed, is waiting, …)."""

    text: str


def failure(text: str, subtype: str = DELIVERY_FAILED) -> TurnResult:
    """Our own end of a turn that Claude never finished."""
    return TurnResult(subtype=subtype, is_error=True, text=text)


SHUTDOWN_UNSENT = failure(
    "The bot is shutting down; this message will be delivered after it restarts.", subtype=CANCELLED
)


class Delivery:
    """One accepted message (or one turn Claude started, with its `header`): notices first, then its turn's
    events, ending with exactly one TurnResult."""

    def __init__(
        self,
        session: str,
        chat_id: int,
        content: Content,
        entry_id: str,
        position: int,
        *,
        header: str = "",
        thread_id: int | None = None,
    ) -> None:
        self.session = session
        self.chat_id = chat_id
        self.thread_id = thread_id  # the forum topic its answer goes to; None = the chat itself
        self.content = content
        self.entry_id = entry_id
        self.position = position
        self.header = header  # what started Claude's own turn (the process's Turn.header); "" for a user's message
        self.result: TurnResult | None = None
        self.done = asyncio.Event()
        self._queue: asyncio.Queue[Event | Notice] = asyncio.Queue()

    @property
    def place(self) -> Place:
        return Place(self.chat_id, self.thread_id)

    @property
    def by_claude(self) -> bool:
        """Claude started this turn by itself (no message of ours)."""
        return bool(self.header)

    def notice(self, text: str) -> None:
        if self.done.is_set():
            logger.warning("session %s: a notice after the delivery ended was dropped: %s", self.session, text)
            return
        self._queue.put_nowait(Notice(text))

    def put(self, event: Event) -> None:
        """Pass on one event of the turn (its TurnResult goes through finish)."""
        if self.done.is_set() or isinstance(event, TurnResult):
            logger.warning("session %s: %s after the delivery ended was dropped", self.session, type(event).__name__)
            return
        self._queue.put_nowait(event)

    def finish(self, result: TurnResult) -> bool:
        """End the delivery with `result`; False if it had already ended (the first result wins)."""
        if self.done.is_set():
            return False
        self.result = result
        self.done.set()
        self._queue.put_nowait(result)
        return True

    async def events(self) -> AsyncIterator[Event | Notice]:
        """Yield notices and the turn's events, up to and including its TurnResult."""
        while True:
            item = await self._queue.get()
            yield item
            if isinstance(item, TurnResult):
                return


class SessionWorker:
    """One task per session takes deliveries off the queue; it survives any failure of a single delivery."""

    def __init__(
        self,
        name: str,
        deliver: Callable[[Delivery], Awaitable[None]],
        after_each: Callable[[], Awaitable[None]],
    ) -> None:
        self.name = name
        self._deliver = deliver
        self._after_each = after_each
        self._waiting: asyncio.Queue[Delivery] = asyncio.Queue()
        self.current: Delivery | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def queued(self) -> int:
        return self._waiting.qsize()

    @property
    def busy(self) -> bool:
        return self.current is not None or not self._waiting.empty()

    def ahead(self) -> int:
        """How many messages a new one would wait behind."""
        return self.queued + (1 if self.current is not None else 0)

    def accept(self, delivery: Delivery) -> None:
        self._waiting.put_nowait(delivery)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"session-{self.name}")

    async def close(self) -> None:
        """Stop working: the current delivery and every queued one end with a result saying why."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        while not self._waiting.empty():
            self._waiting.get_nowait().finish(SHUTDOWN_UNSENT)

    async def _run(self) -> None:
        while True:
            delivery = await self._waiting.get()
            self.current = delivery
            try:
                await self._deliver(delivery)
            except asyncio.CancelledError:
                delivery.finish(SHUTDOWN_UNSENT)
                raise
            except Exception as exc:
                logger.exception("session %s: delivering a message failed", self.name)
                delivery.finish(failure(f"Delivering this message failed: {exc}"))
            finally:
                self.current = None
                if delivery.finish(failure("This message ended without an answer.")):
                    logger.error("session %s: a delivery ended without a result", self.name)
            await self._after_each()
