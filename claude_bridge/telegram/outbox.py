"""One flood-safe sender per chat: every Telegram call for a chat goes through its Outbox.

Messages are delivered in order and retried until they arrive, paced by a token bucket per chat (a short burst,
then Telegram's sustained rate); live frames (drafts, progress edits) are coalesced by key so only the newest is
sent, and dropped when Telegram says to slow down. It knows Telegram's flood rules, not sessions or Claude.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from enum import Enum
from typing import Any, Protocol

from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut

logger = logging.getLogger(__name__)

Call = Callable[[], Awaitable[Any]]
NETWORK_RETRIES = 5


class OpKind(Enum):
    """What a queued call is; it decides which budget pays for it."""

    MESSAGE = "message"  # sendMessage, sendDocument, deleteMessage: must arrive
    EDIT = "edit"  # editMessageText: counts toward the same flood limit as messages
    DRAFT = "draft"  # sendMessageDraft
    ACTION = "action"  # sendChatAction


@dataclass(frozen=True)
class Rate:
    """`burst` calls at once, then `per_second` sustained."""

    burst: int
    per_second: float


# Bot FAQ: in one chat avoid more than one message per second ("short bursts tolerated, then 429"), and at most
# 20 messages per minute in a group. Edits count toward the same limit.
PRIVATE_RATE = Rate(burst=3, per_second=1.0)
GROUP_RATE = Rate(burst=3, per_second=20 / 60)
DRAFT_RATE = Rate(burst=1, per_second=1 / 0.3)  # a live frame every 0.3 s, as telegramify's DraftStream does
ACTION_RATE = Rate(burst=1, per_second=1.0)  # "typing…" is refreshed every few seconds; it needs little
MAX_OUTBOXES = 512  # chats with an outbox kept at once; idle ones beyond are dropped (strangers, old chats)


class Clock(Protocol):
    """Time for the outbox: tests pass a fake one that only moves when told."""

    def now(self) -> float: ...
    async def sleep(self, seconds: float) -> None: ...


class MonotonicClock:
    """The real clock."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class TokenBucket:
    """A budget that refills at `rate.per_second` up to `rate.burst` tokens; one call spends one token."""

    def __init__(self, rate: Rate) -> None:
        self.rate = rate
        self._tokens = float(rate.burst)
        self._updated: float | None = None

    def tokens(self, now: float) -> float:
        if self._updated is None:
            return self._tokens
        return min(float(self.rate.burst), self._tokens + (now - self._updated) * self.rate.per_second)

    def ready_at(self, now: float, *, reserve: float = 0.0) -> float:
        """When a call may go while keeping `reserve` tokens for others."""
        missing = 1.0 + reserve - self.tokens(now)
        return now if missing <= 0 else now + missing / self.rate.per_second

    def spend(self, now: float) -> None:
        self._tokens = self.tokens(now) - 1.0
        self._updated = now


def not_modified(exc: BaseException) -> bool:
    """Telegram's "message is not modified" is success: the chat already shows that text."""
    return isinstance(exc, BadRequest) and "not modified" in str(exc).lower()


def _retry_seconds(exc: RetryAfter) -> float:
    value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _retrieve(future: asyncio.Future[Any]) -> None:
    # Failures are logged once, where they happen (`_perform`); callers may drop the future (fire and forget),
    # so mark its exception as seen or asyncio reports "Future exception was never retrieved" at collection.
    if not future.cancelled():
        future.exception()


def _new_future() -> asyncio.Future[Any]:
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    future.add_done_callback(_retrieve)
    return future


@dataclass
class _Op:
    call: Call
    kind: OpKind
    fallback: Call | None = None
    future: asyncio.Future[Any] = field(default_factory=_new_future)
    is_frame: bool = False
    attempts: int = 0


class Outbox:
    """The sender for one chat."""

    def __init__(self, chat_id: int, *, clock: Clock | None = None) -> None:
        self.chat_id = chat_id
        self._clock = clock or MonotonicClock()
        messages = TokenBucket(GROUP_RATE if chat_id < 0 else PRIVATE_RATE)
        self._buckets = {
            OpKind.MESSAGE: messages,
            OpKind.EDIT: messages,
            OpKind.DRAFT: TokenBucket(DRAFT_RATE),
            OpKind.ACTION: TokenBucket(ACTION_RATE),
        }
        self._messages: deque[_Op] = deque()
        self._frames: OrderedDict[str, _Op] = OrderedDict()
        self._wakeup = asyncio.Event()
        self._retry_at = 0.0
        self._in_flight: _Op | None = None  # taken off the queues, awaiting Telegram's answer
        self._task: asyncio.Task[None] | None = None

    def send(self, call: Call, *, fallback: Call | None = None, kind: OpKind = OpKind.MESSAGE) -> asyncio.Future[Any]:
        """Queue a call that must arrive (retried through flood limits); `fallback` runs if Telegram rejects it.

        The future may be dropped: its failure is logged here, once."""
        op = _Op(call, kind, fallback)
        self._messages.append(op)
        self._kick()
        return op.future

    def frame(self, key: str, call: Call, *, kind: OpKind = OpKind.EDIT) -> asyncio.Future[Any]:
        """Queue a live frame; a newer frame with the same key replaces it, and a rate-limited one is dropped."""
        self.discard_frame(key)
        op = _Op(call, kind, is_frame=True)
        self._frames[key] = op
        self._kick()
        return op.future

    def discard_frame(self, key: str) -> None:
        """Forget a pending frame (its content is superseded by a newer frame or a final message)."""
        op = self._frames.pop(key, None)
        if op is not None and not op.future.done():
            op.future.set_result(None)

    @property
    def idle(self) -> bool:
        """Nothing waits to be sent, and no call awaits Telegram's answer (dropping it would lose that call)."""
        return not self._messages and not self._frames and self._in_flight is None

    def drop(self) -> None:
        """Stop an idle outbox's task (it only waits for work); its budget is forgotten."""
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for op in [*self._messages, *self._frames.values()]:
            if not op.future.done():
                op.future.cancel()

    def _kick(self) -> None:
        self._wakeup.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"outbox-{self.chat_id}")

    def _ready_at(self, op: _Op, now: float) -> float:
        bucket = self._buckets[op.kind]
        # A live frame never takes a shared budget's last token: the final answer's first part need not wait.
        reserve = 1.0 if op.is_frame and bucket.rate.burst > 1 else 0.0
        return max(self._retry_at, bucket.ready_at(now, reserve=reserve))

    def _next(self, now: float) -> _Op | None:
        # The oldest message, or a frame whose budget is free sooner; on a tie the message goes first. An edit
        # never overtakes a waiting message: it may need that message's id (the preview or progress message).
        messages = self._buckets[OpKind.MESSAGE]
        waiting = bool(self._messages)
        candidates = [self._messages[0]] if waiting else []
        candidates += [op for op in self._frames.values() if not (waiting and self._buckets[op.kind] is messages)]
        return min(candidates, key=lambda op: self._ready_at(op, now), default=None)

    async def _run(self) -> None:
        while True:
            now = self._clock.now()
            op = self._next(now)
            if op is None:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            delay = self._ready_at(op, now) - now
            if delay > 0:
                await self._pause(delay)  # a new op may be more urgent (a message overtakes frames): re-pick
                continue
            self._take(op)
            self._in_flight = op
            try:
                await self._perform(op)
            finally:
                self._in_flight = None

    async def _pause(self, seconds: float) -> None:
        """Sleep `seconds` on the clock, or until something new is queued."""
        self._wakeup.clear()
        sleeper = asyncio.ensure_future(self._clock.sleep(seconds))
        woken = asyncio.ensure_future(self._wakeup.wait())
        try:
            await asyncio.wait({sleeper, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            woken.cancel()

    def _take(self, op: _Op) -> None:
        if self._messages and self._messages[0] is op:
            self._messages.popleft()
        else:
            for key, frame in list(self._frames.items()):
                if frame is op:
                    del self._frames[key]

    async def _perform(self, op: _Op) -> None:
        op.attempts += 1
        try:
            result = await self._call(op)
        except RetryAfter as exc:
            wait = _retry_seconds(exc)
            self._retry_at = self._clock.now() + wait
            logger.warning("chat %s: Telegram asked to wait %.0f s", self.chat_id, wait)
            if not op.is_frame:
                self._messages.appendleft(op)  # final text is retried until delivered
            else:
                op.future.set_result(None)  # a stale frame is worth nothing later
            return
        except BadRequest as exc:
            if not_modified(exc):
                op.future.set_result(None)
                return
            if op.fallback is not None:
                logger.warning("chat %s: Telegram rejected a message (%s); resending as plain text", self.chat_id, exc)
                self._messages.appendleft(_Op(op.fallback, op.kind, None, op.future))
                return
            logger.warning("chat %s: Telegram rejected a %s: %s", self.chat_id, op.kind.value, exc)
            op.future.set_exception(exc)
            return
        except Forbidden as exc:
            logger.warning("chat %s: cannot write to this chat: %s", self.chat_id, exc)
            op.future.set_exception(exc)
            return
        except (TimedOut, NetworkError) as exc:
            self._network_failure(op, exc)
            return
        except Exception as exc:
            # A bug in a call must not kill the chat's sender; the caller sees the exception.
            logger.exception("chat %s: a %s failed", self.chat_id, op.kind.value)
            if not op.future.done():
                op.future.set_exception(exc)
            return
        if not op.future.done():
            op.future.set_result(result)

    async def _call(self, op: _Op) -> Any:
        try:
            return await op.call()
        finally:
            # Spent when the answer is back: Telegram counted the call on arrival, which is no later, so the next
            # call never reaches Telegram sooner than the bucket allows, however the latency jitters.
            self._buckets[op.kind].spend(self._clock.now())

    def _network_failure(self, op: _Op, exc: Exception) -> None:
        if not op.is_frame and op.attempts < NETWORK_RETRIES:
            logger.warning("chat %s: network error (%s); retrying", self.chat_id, exc)
            self._retry_at = self._clock.now() + min(30.0, 2.0**op.attempts)
            self._messages.appendleft(op)
        elif not op.is_frame:
            logger.warning("chat %s: network error (%s); giving up on a %s", self.chat_id, exc, op.kind.value)
            op.future.set_exception(exc)
        else:
            op.future.set_result(None)


class Outboxes:
    """One Outbox per chat, created on first use; idle ones beyond `limit` are dropped, oldest first.

    Strangers are refused through an outbox too, so a flood of new chat ids must not grow memory without bound.
    """

    def __init__(self, *, clock: Clock | None = None, limit: int = MAX_OUTBOXES) -> None:
        self._clock = clock
        self._limit = limit
        self._boxes: OrderedDict[int, Outbox] = OrderedDict()

    def __call__(self, chat_id: int) -> Outbox:
        box = self._boxes.get(chat_id)
        if box is None:
            box = self._boxes[chat_id] = Outbox(chat_id, clock=self._clock)
            self._trim(keep=chat_id)
        self._boxes.move_to_end(chat_id)
        return box

    def __len__(self) -> int:
        return len(self._boxes)

    def __contains__(self, chat_id: object) -> bool:
        return chat_id in self._boxes

    @property
    def idle(self) -> bool:
        """Nothing waits to be sent in any chat (a reload waits for this before its exec)."""
        return all(box.idle for box in self._boxes.values())

    def _trim(self, *, keep: int) -> None:
        idle = [c for c, box in self._boxes.items() if box.idle and c != keep]  # `keep` is the box being handed out
        for chat_id in idle[: max(0, len(self._boxes) - self._limit)]:
            self._boxes.pop(chat_id).drop()

    async def close(self) -> None:
        for box in self._boxes.values():
            await box.close()
