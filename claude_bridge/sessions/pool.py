"""The live-process pool: at most `max_live` sessions hold a running CLI; the least recently used idle one makes
room, and sessions idle longer than `idle_after` are suspended (suspend_idle, which the scheduler calls).

It knows members by name, liveness, business and last activity only; a member suspends itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Protocol

logger = logging.getLogger(__name__)


class Member(Protocol):
    """A session as the pool sees it."""

    @property
    def name(self) -> str: ...
    @property
    def live(self) -> bool: ...
    @property
    def busy(self) -> bool: ...
    @property
    def last_active(self) -> float: ...
    async def suspend(self) -> None: ...


class LivePool:
    """Spawns happen one at a time inside `slot()`, which first makes room under the cap."""

    def __init__(
        self,
        members: Callable[[], Iterable[Member]],
        *,
        max_live: int,
        idle_after: float,
        clock: Callable[[], float],
    ) -> None:
        self._members = members
        self.max_live = max_live
        self.idle_after = idle_after
        self._clock = clock
        self._changed = asyncio.Condition()
        self._spawn_lock = asyncio.Lock()

    def live_count(self) -> int:
        return sum(1 for member in self._members() if member.live)

    def victim(self, exclude: Member) -> Member | None:
        """The least recently used live member that is not busy."""
        idle = [m for m in self._members() if m is not exclude and m.live and not m.busy]
        return min(idle, key=lambda m: m.last_active, default=None)

    @contextlib.asynccontextmanager
    async def slot(self, member: Member, on_wait: Callable[[], None]) -> AsyncIterator[None]:
        """Hold the right to start one process under the cap; `on_wait` is called once if it must wait for room."""
        async with self._spawn_lock:
            told = False
            while True:
                async with self._changed:
                    if self.live_count() < self.max_live:
                        break
                    victim = self.victim(exclude=member)
                    if victim is None:
                        if not told:
                            on_wait()
                            told = True
                        # Checked and waited under one lock: a change cannot slip in between.
                        await self._changed.wait()
                        continue
                logger.info("live-session cap %d reached: suspending %s", self.max_live, victim.name)
                await victim.suspend()
            yield

    async def changed(self) -> None:
        """A member stopped, or finished a message: waiters look again."""
        async with self._changed:
            self._changed.notify_all()

    async def suspend_idle(self) -> list[str]:
        """Suspend every live member idle longer than idle_after; the next message resumes it."""
        now = self._clock()
        suspended = []
        for member in list(self._members()):
            if member.live and not member.busy and now - member.last_active > self.idle_after:
                await member.suspend()
                suspended.append(member.name)
        return suspended
