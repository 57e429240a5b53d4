"""One flood-safe sender per chat: every Telegram call for a chat goes through its Outbox.

Messages are delivered in order and retried until they arrive; live frames (drafts, progress edits) are
coalesced by key so only the newest is sent, and dropped when Telegram says to slow down. It knows Telegram's
flood rules, not sessions or Claude.
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
from typing import Any

from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut

logger = logging.getLogger(__name__)

Call = Callable[[], Awaitable[Any]]
PRIVATE_INTERVAL = 1.0  # Bot FAQ: avoid more than one message per second in a chat
GROUP_INTERVAL = 3.0  # … and at most 20 messages per minute in a group
DRAFT_INTERVAL = 0.3
NETWORK_RETRIES = 5


def not_modified(exc: BaseException) -> bool:
    """Telegram's "message is not modified" is success: the chat already shows that text."""
    return isinstance(exc, BadRequest) and "not modified" in str(exc).lower()


def _retry_seconds(exc: RetryAfter) -> float:
    value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


@dataclass
class _Op:
    call: Call
    kind: str  # "message" | "edit" | "draft" | "action"
    fallback: Call | None = None
    future: asyncio.Future[Any] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    attempts: int = 0


class Outbox:
    """The sender for one chat."""

    def __init__(self, chat_id: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.chat_id = chat_id
        self.is_group = chat_id < 0
        self.message_interval = GROUP_INTERVAL if self.is_group else PRIVATE_INTERVAL
        self._clock = clock
        self._messages: deque[_Op] = deque()
        self._frames: OrderedDict[str, _Op] = OrderedDict()
        self._wakeup = asyncio.Event()
        self._last: dict[str, float] = {}
        self._retry_at = 0.0
        self._task: asyncio.Task[None] | None = None

    def send(self, call: Call, *, fallback: Call | None = None, kind: str = "message") -> asyncio.Future[Any]:
        """Queue a call that must arrive (retried through flood limits); `fallback` runs if Telegram rejects it."""
        op = _Op(call, kind, fallback)
        self._messages.append(op)
        self._kick()
        return op.future

    def frame(self, key: str, call: Call, *, kind: str = "edit") -> asyncio.Future[Any]:
        """Queue a live frame; a newer frame with the same key replaces it, and a rate-limited one is dropped."""
        old = self._frames.pop(key, None)
        if old is not None and not old.future.done():
            old.future.set_result(None)
        op = _Op(call, kind)
        # Nobody has to await a frame; retrieve its outcome so a failure is not reported as "never retrieved".
        op.future.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._frames[key] = op
        self._kick()
        return op.future

    def discard_frame(self, key: str) -> None:
        """Forget a pending frame (its content is about to be superseded by a final message)."""
        op = self._frames.pop(key, None)
        if op is not None and not op.future.done():
            op.future.set_result(None)

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

    def _interval(self, kind: str) -> float:
        if kind == "draft":
            return DRAFT_INTERVAL
        if kind == "action":
            return 0.0
        return self.message_interval

    def _ready_at(self, op: _Op) -> float:
        last = self._last.get(op.kind if op.kind in ("draft", "action") else "message", 0.0)
        return max(self._retry_at, last + self._interval(op.kind))

    def _next(self) -> _Op | None:
        # Messages first (in order); frames only when no message waits, oldest key first.
        if self._messages:
            return self._messages[0]
        if self._frames:
            return min(self._frames.values(), key=self._ready_at)
        return None

    async def _run(self) -> None:
        while True:
            op = self._next()
            if op is None:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            delay = self._ready_at(op) - self._clock()
            if delay > 0:
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    # A new op may be more urgent (a message overtakes frames): re-pick after waking.
                    await asyncio.wait_for(self._wakeup.wait(), delay)
                continue
            self._take(op)
            await self._perform(op)

    def _take(self, op: _Op) -> None:
        if self._messages and self._messages[0] is op:
            self._messages.popleft()
        else:
            for key, frame in list(self._frames.items()):
                if frame is op:
                    del self._frames[key]

    async def _perform(self, op: _Op) -> None:
        op.attempts += 1
        self._last["draft" if op.kind == "draft" else "action" if op.kind == "action" else "message"] = self._clock()
        try:
            result = await op.call()
        except RetryAfter as exc:
            wait = _retry_seconds(exc)
            self._retry_at = self._clock() + wait
            logger.warning("chat %s: Telegram asked to wait %.0f s", self.chat_id, wait)
            if op.kind == "message":
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
            logger.warning("chat %s: Telegram rejected a %s: %s", self.chat_id, op.kind, exc)
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
            logger.exception("chat %s: a %s failed", self.chat_id, op.kind)
            if not op.future.done():
                op.future.set_exception(exc)
            return
        if not op.future.done():
            op.future.set_result(result)

    def _network_failure(self, op: _Op, exc: Exception) -> None:
        if op.kind == "message" and op.attempts < NETWORK_RETRIES:
            logger.warning("chat %s: network error (%s); retrying", self.chat_id, exc)
            self._retry_at = self._clock() + min(30.0, 2.0**op.attempts)
            self._messages.appendleft(op)
        elif op.kind == "message":
            op.future.set_exception(exc)
        else:
            op.future.set_result(None)


class Outboxes:
    """One Outbox per chat, created on first use."""

    def __init__(self) -> None:
        self._boxes: dict[int, Outbox] = {}

    def __call__(self, chat_id: int) -> Outbox:
        box = self._boxes.get(chat_id)
        if box is None:
            box = self._boxes[chat_id] = Outbox(chat_id)
        return box

    async def close(self) -> None:
        for box in self._boxes.values():
            await box.close()
