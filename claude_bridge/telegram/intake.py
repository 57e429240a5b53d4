"""Messages of one chat (or topic) reach Claude in the order they were sent, even when one of them needs a download
or a transcription first: each takes its place in line when it arrives and is handed over only after the one before.

The slow parts still run side by side; only the hand-over to the session waits. No Telegram calls here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class InOrder:
    """One line per chat or topic key."""

    def __init__(self) -> None:
        self._last: dict[str, asyncio.Future[None]] = {}

    @contextlib.asynccontextmanager
    async def place_in_line(self, key: str) -> AsyncIterator[Callable[[Callable[[], Awaitable[T]]], Awaitable[T]]]:
        """Take a place now; the yielded `hand_over(fn)` runs `fn` once every earlier message was handed over."""
        before = self._last.get(key)
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._last[key] = mine

        async def hand_over(fn: Callable[[], Awaitable[T]]) -> T:
            if before is not None:
                await asyncio.shield(before)
            return await fn()

        try:
            yield hand_over
        finally:
            mine.set_result(None)  # whatever happened to this message, the next one may go
            if self._last.get(key) is mine:
                del self._last[key]

    def __len__(self) -> int:
        return len(self._last)
