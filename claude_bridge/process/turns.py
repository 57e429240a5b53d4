"""One turn of the CLI's stream: started by a message we wrote or by Claude itself, ended by exactly one result.

A Turn is the turn's ordered event stream with timings: any number of readers see every event (the chat's view of
it and the session keeping its books read the same stream, nobody copies it). It does not know which process feeds it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from claude_bridge.protocol.events import AssistantText, Event, TextDelta, ToolResult, ToolUse, TurnResult

CLAUDE_TURN_HEADER = "Claude continued on its own"  # a turn of Claude's own whose cause the CLI did not say


@dataclass
class TurnTimings:
    """Seconds from spawn to init, and from send to first text and to the result."""

    spawn_to_init: float | None = None
    send_to_first_text: float | None = None
    send_to_result: float | None = None


class Turn:
    """One turn: its events arrive in order, ending with exactly one TurnResult.

    `content` is the message we wrote (None for a turn Claude started); `header` says what started Claude's turn
    (e.g. 'Background command "pytest -q" completed (exit code 0)').
    """

    def __init__(
        self, content: str | list[dict[str, Any]] | None, *, header: str = "", tasks: tuple[str, ...] = ()
    ) -> None:
        self.content = content
        self.header = header
        self.tasks = tasks  # the background tasks whose end started Claude's turn (their ids)
        self.written = asyncio.Event()
        self.done = asyncio.Event()
        self.result: TurnResult | None = None
        self.timings = TurnTimings()
        self.watchdog_fired = False
        self._log: list[Event] = []  # kept for the turn's life: every reader reads it from the start
        self._grew = asyncio.Event()  # replaced on every push, so each reader waits on its own generation
        self._watchers: list[Callable[[], None]] = []
        self._sent_at = 0.0
        self._open_tools: set[str] = set()

    @classmethod
    def by_claude(cls, header: str, tasks: tuple[str, ...] = ()) -> Turn:
        """A turn no message of ours started (a background task ended, /loop, a cron): it is already running."""
        turn = cls(None, header=header or CLAUDE_TURN_HEADER, tasks=tasks)
        turn.start_clock()
        turn.written.set()
        return turn

    @property
    def started_by_claude(self) -> bool:
        return self.content is None

    @property
    def has_open_tools(self) -> bool:
        """A tool_use without its tool_result yet (a long build is work, not a hang)."""
        return bool(self._open_tools)

    def start_clock(self) -> None:
        """The message is being written (or Claude's turn began): timings count from now."""
        self._sent_at = time.monotonic()

    def push(self, event: Event) -> None:
        """Feed the turn one event (the process does this; test fakes may too)."""
        if self.done.is_set():
            return
        now = time.monotonic()
        if isinstance(event, (AssistantText, TextDelta)) and self.timings.send_to_first_text is None and self._sent_at:
            self.timings.send_to_first_text = now - self._sent_at
        elif isinstance(event, ToolUse):
            self._open_tools.add(event.id)
        elif isinstance(event, ToolResult):
            self._open_tools.discard(event.tool_use_id)
        elif isinstance(event, TurnResult):
            if self._sent_at:
                self.timings.send_to_result = now - self._sent_at
            self.result = event
            self.done.set()
        self._log.append(event)
        grew, self._grew = self._grew, asyncio.Event()
        grew.set()
        for wake in self._watchers:
            wake()

    @property
    def history(self) -> Sequence[Event]:
        """Every event so far, in order (the last one is the TurnResult once the turn is done)."""
        return self._log

    def watch(self, wake: Callable[[], None]) -> None:
        """Call `wake` after every new event (a view that also waits on other things)."""
        self._watchers.append(wake)

    async def events(self) -> AsyncIterator[Event]:
        """Yield this turn's events from its first up to and including its TurnResult (each reader sees them all)."""
        seen = 0
        while True:
            grew = self._grew
            while seen < len(self._log):
                event = self._log[seen]
                seen += 1
                yield event
                if isinstance(event, TurnResult):
                    return
            await grew.wait()

    async def wait(self) -> TurnResult:
        """Wait for the turn's result without reading its events (the doctor's one turn)."""
        await self.done.wait()
        assert self.result is not None
        return self.result
