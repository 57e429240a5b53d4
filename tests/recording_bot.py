"""In-process fakes for the fast tier of outbox and turn-view tests: a clock that only moves when told (with a
`sleep` the outbox can wait on) and a bot object with the PTB methods we call, recording each call and when."""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict, deque
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any


class SteppedClock:
    """Fake time for the Outbox: `sleep` waits until `advance` (or `run_until`) moves the clock past its end."""

    def __init__(self) -> None:
        self.time = 0.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []
        self._slept = asyncio.Event()

    def now(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (self.time + seconds, wake)
        self._sleepers.append(entry)
        self._slept.set()
        try:
            await wake
        finally:
            self._sleepers.remove(entry)

    def advance(self, seconds: float) -> None:
        self.time += seconds
        for deadline, wake in self._sleepers:
            if deadline <= self.time + 1e-9 and not wake.done():
                wake.set_result(None)

    async def run_until(self, *awaitables: Awaitable[Any], limit: float = 600.0) -> float:
        """Let fake time pass, one sleeper's deadline at a time, until all `awaitables` are done; the time taken."""
        started = self.time
        target = asyncio.gather(*awaitables, return_exceptions=True)
        while not target.done():
            pending = [deadline for deadline, wake in self._sleepers if not wake.done()]
            if pending:
                self.advance(max(0.0, min(pending) - self.time))
            if self.time - started > limit:
                raise AssertionError(f"still waiting after {limit} s of fake time")
            self._slept.clear()
            slept = asyncio.ensure_future(self._slept.wait())
            done, _ = await asyncio.wait({target, slept}, timeout=5.0, return_when=asyncio.FIRST_COMPLETED)
            slept.cancel()
            if not done:
                raise AssertionError("nothing is sleeping and the awaited calls did not finish")
        return self.time - started


@dataclass(frozen=True)
class SentMessage:
    """What PTB returns for a sent message; we only read its id."""

    message_id: int


@dataclass
class BotCall:
    at: float
    method: str
    chat_id: int
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return str(self.params.get("text", ""))


class RecordingBot:
    """The PTB `Bot` methods the outbox and TurnView call; each answers at once unless `fail_next` scripted it."""

    def __init__(self, clock: SteppedClock) -> None:
        self.clock = clock
        self.calls: list[BotCall] = []
        self.called = asyncio.Event()  # set on every call; a waiter clears it
        self._failures: defaultdict[str, deque[BaseException]] = defaultdict(deque)
        self._ids = itertools.count(1)

    def fail_next(self, method: str, *errors: BaseException) -> None:
        self._failures[method].extend(errors)

    def to(self, method: str) -> list[BotCall]:
        return [c for c in self.calls if c.method == method]

    def _record(self, method: str, chat_id: int, **params: Any) -> None:
        self.calls.append(BotCall(self.clock.now(), method, chat_id, params))
        self.called.set()
        if self._failures[method]:
            raise self._failures[method].popleft()

    async def send_message(self, chat_id: int, text: str, **params: Any) -> SentMessage:
        self._record("send_message", chat_id, text=text, **params)
        return SentMessage(next(self._ids))

    async def send_document(self, chat_id: int, document: Any, **params: Any) -> SentMessage:
        self._record("send_document", chat_id, **params)
        return SentMessage(next(self._ids))

    async def edit_message_text(self, text: str, chat_id: int, message_id: int, **params: Any) -> SentMessage:
        self._record("edit_message_text", chat_id, text=text, message_id=message_id, **params)
        return SentMessage(message_id)

    async def delete_message(self, chat_id: int, message_id: int) -> bool:
        self._record("delete_message", chat_id, message_id=message_id)
        return True

    async def send_message_draft(self, chat_id: int, draft_id: int, **params: Any) -> bool:
        self._record("send_message_draft", chat_id, draft_id=draft_id, **params)
        return True

    async def send_chat_action(self, chat_id: int, action: Any, **params: Any) -> bool:
        self._record("send_chat_action", chat_id, action=action, **params)
        return True
