"""The per-session queue: the one in-memory line of a session's messages (Delivery), each handled strictly one at a
time in arrival order.

A message takes its place in line when it arrives, even while its content is still being prepared (a download, a
transcription): a text sent right after a voice note reaches Claude after the note. A Delivery is the chat's view of
its turn: its notices, then the turn's own events (read from the Turn, not copied), then one TurnResult.
It knows nothing of processes: it hands each Delivery to a `deliver` function and makes sure every Delivery ends
with exactly one TurnResult, whatever that function does (raises, or is cancelled by a shutdown).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from claude_bridge.process.turns import Turn
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
    """One message (or one turn Claude started, with its `header`) as its chat sees it: notices first, then its
    turn's events, ending with exactly one TurnResult. `content` is None while the message is still being prepared."""

    def __init__(
        self,
        session: str,
        chat_id: int,
        content: Content | None,
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
        self._turns: list[Turn] = []  # more than one when the usage limit refused a turn and it was sent again
        self._shown: list[int] = []  # how many of each turn's events the view shows, fixed when the delivery ends
        self._notices: list[Notice] = []
        self._changed = asyncio.Event()  # replaced on every change, so each reader waits on its own generation

    @classmethod
    def of_claude_turn(cls, session: str, place: Place | None, turn: Turn, entry_id: str = "") -> Delivery:
        """The view of a turn Claude started by itself, headed by what started it (in `place`; None: unseen), under
        `entry_id` (a reload keeps the one the previous image showed it under)."""
        chat_id, thread_id = (place.chat_id, place.thread_id) if place else (0, None)
        entry_id = entry_id or f"claude-{id(turn):x}"
        delivery = cls(session, chat_id, "", entry_id, 0, header=turn.header, thread_id=thread_id)
        delivery.follow(turn)
        return delivery

    @property
    def turn(self) -> Turn | None:
        """The turn this delivery shows now (its latest)."""
        return self._turns[-1] if self._turns else None

    @property
    def running(self) -> bool:
        """Claude works on it now: its turn started and has not ended (not before it reached Claude, not while a
        refused turn waits to be sent again)."""
        turn = self.turn
        return turn is not None and not turn.done.is_set() and self.result is None

    @property
    def place(self) -> Place:
        return Place(self.chat_id, self.thread_id)

    @property
    def prepared(self) -> bool:
        """Its content is known (and durably queued): the worker may hand it over."""
        return self.content is not None

    @property
    def by_claude(self) -> bool:
        """Claude started this turn by itself (no message of ours)."""
        return bool(self.header)

    def notice(self, text: str) -> None:
        if self.done.is_set():
            logger.warning("session %s: a notice after the delivery ended was dropped: %s", self.session, text)
            return
        self._notices.append(Notice(text))
        self._wake()

    def follow(self, turn: Turn) -> None:
        """Show this turn's events, after those of any turn it followed before (a TurnResult comes only through
        finish, after the session kept its books)."""
        self._turns.append(turn)
        turn.watch(self._wake)
        self._wake()

    def finish(self, result: TurnResult) -> bool:
        """End the delivery with `result`; False if it had already ended (the first result wins)."""
        if self.done.is_set():
            return False
        self.result = result
        self._shown = [len(turn.history) for turn in self._turns]
        self.done.set()
        self._wake()
        return True

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _length(self, index: int) -> int:
        """How many events of its `index`-th turn the view shows: all so far, or those up to the delivery's end."""
        if self.result is not None:
            return self._shown[index] if index < len(self._shown) else 0
        return len(self._turns[index].history)

    async def events(self) -> AsyncIterator[Event | Notice]:
        """Yield notices and the turns' events, up to and including the delivery's one TurnResult."""
        notices = turn = seen = 0  # how far the view got: notices, which turn, and how far into it
        while True:
            changed = self._changed
            while notices < len(self._notices):
                notices += 1
                yield self._notices[notices - 1]
            while turn < len(self._turns):
                while seen < self._length(turn):
                    event = self._turns[turn].history[seen]
                    seen += 1
                    if not isinstance(event, TurnResult):
                        yield event
                if turn + 1 == len(self._turns):
                    break
                turn, seen = turn + 1, 0  # a later turn exists: this one is over
            caught_up = notices == len(self._notices) and (not self._turns or seen == self._length(turn))
            if self.result is not None and caught_up:
                yield self.result
                return
            await changed.wait()


class SessionWorker:
    """One task per session takes deliveries from the line; it survives any failure of a single delivery."""

    def __init__(
        self,
        name: str,
        deliver: Callable[[Delivery], Awaitable[None]],
        after_each: Callable[[], Awaitable[None]],
    ) -> None:
        self.name = name
        self._deliver = deliver
        self._after_each = after_each
        self._line: deque[Delivery] = deque()
        self._changed = asyncio.Event()  # replaced on every change of the line (several may wait on it)
        self.current: Delivery | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def queued(self) -> int:
        return len(self._line)

    @property
    def busy(self) -> bool:
        return self.current is not None or bool(self._line)

    def ahead(self) -> int:
        """How many messages a new one would wait behind."""
        return self.queued + (1 if self.current is not None else 0)

    def accept(self, delivery: Delivery) -> None:
        """Put the delivery in line (prepared or not yet: `ready` hands it over once its content is known)."""
        self._line.append(delivery)
        self._wake()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"session-{self.name}")

    def ready(self, delivery: Delivery, content: Content, entry_id: str) -> None:
        """The delivery's content is known and durably queued: it may go when its turn comes."""
        delivery.content, delivery.entry_id = content, entry_id
        self._wake()

    def withdraw(self, delivery: Delivery) -> None:
        """Take a delivery out of line (its message never came, or it answered a prompt instead)."""
        with contextlib.suppress(ValueError):
            self._line.remove(delivery)
        self._wake()

    async def prepared_before(self, delivery: Delivery) -> None:
        """Wait until every delivery ahead of this one from the same place is prepared (or gone): a chat's
        messages reach Claude, and the inbox, in the order they were sent."""
        while True:
            changed = self._changed
            ahead = list(self._line)[: self._index(delivery)]
            if all(other.prepared or other.place != delivery.place for other in ahead):
                return
            await changed.wait()

    def _index(self, delivery: Delivery) -> int:
        try:
            return self._line.index(delivery)
        except ValueError:
            return 0

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def close(self) -> None:
        """Stop working: the current delivery and every queued one end with a result saying why."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        while self._line:
            self._line.popleft().finish(SHUTDOWN_UNSENT)
        self._wake()

    async def _next(self) -> Delivery:
        """The first delivery in line, once it is prepared (a later one never overtakes it)."""
        while not (self._line and self._line[0].prepared):
            await self._changed.wait()
        return self._line.popleft()

    async def _run(self) -> None:
        while True:
            delivery = await self._next()
            self.current = delivery
            self._wake()
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
