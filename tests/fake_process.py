"""A fake Claude process and spawner for SessionManager tests: scripted with `enqueue`, recording what happened."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from claude_bridge.errors import BridgeError, ClaudeStartError
from claude_bridge.process import pidfile
from claude_bridge.process.argv import ProcessOptions, start_failure
from claude_bridge.process.requests import control_handler
from claude_bridge.process.turns import Turn, TurnTimings
from claude_bridge.protocol.events import (
    EXITED,
    AssistantText,
    ControlRequest,
    Event,
    ProcessStatus,
    SessionStarted,
    TaskInfo,
    TurnResult,
)
from claude_bridge.protocol.limits import RateLimit
from claude_bridge.sessions.frontend import ClaudeCommands
from claude_bridge.sessions.limits import Hold
from claude_bridge.sessions.place import Place
from claude_bridge.sessions.prompts import Prompt
from claude_bridge.sessions.tools import OutgoingFile
from claude_bridge.sessions.worker import Delivery

_pids = itertools.count(40000)


class FakeClock:
    """A wall clock that only moves when told."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeProcess:
    """Same public face as ClaudeSubprocess; answers each message with the next scripted events."""

    def __init__(self, options: ProcessOptions, spawner: FakeSpawner) -> None:
        self.options = options
        self.spawner = spawner
        self.session_id = options.resume_id or ""  # the CLI keeps the id it resumes
        self.last_timings = TurnTimings()
        self.last_limit: RateLimit | None = None  # a scripted RateLimit event sets it, as the real process does
        self.started = False
        self.stopped = False
        self.failed = False
        self.models: list[str | None] = [options.model]
        self.modes: list[str] = []
        self.received: list[Any] = []
        self.hooks: Any = None  # the ProcessHooks the session gave (status, Claude turns, control requests)
        self.pid: int | None = next(_pids)
        self._queue: deque[Turn] = deque()
        self._current: Turn | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.tasks: dict[str, TaskInfo] = {}  # running background tasks; tests add them
        self.claude_turn_due = False  # a task ended by itself: Claude's turn reporting it is about to begin
        self.stopped_tasks: list[str] = []

    @property
    def continued(self) -> bool:
        return self.options.continue_conversation

    @property
    def alive(self) -> bool:
        return self.started and not self.stopped

    @property
    def busy(self) -> bool:
        return self._current is not None or self.claude_turn_due

    @property
    def queue_length(self) -> int:
        return len(self._queue)

    @property
    def running_tasks(self) -> tuple[TaskInfo, ...]:
        return tuple(self.tasks.values())

    async def stop_task(self, task_id: str) -> None:
        self.stopped_tasks.append(task_id)
        self.tasks.pop(task_id, None)

    async def control_request(self, request: ControlRequest) -> Mapping[str, Any]:
        """The CLI asks the session something, answered as the real process does (process.requests)."""
        return await control_handler(self.hooks.tools, self.hooks.on_permission)(request)

    def end_task(self, task_id: str) -> None:
        """A background task ends by itself: as the CLI, Claude's turn reporting it is due (begin_claude_turn)."""
        self.tasks.pop(task_id)
        self.claude_turn_due = True

    def begin_claude_turn(self, header: str) -> Turn:
        """Claude starts a turn by itself (as after a background task): messages wait until the test ends it."""
        self.claude_turn_due = False
        turn = Turn.by_claude(header)
        self._current = turn
        self.hooks.on_claude_turn(turn)
        asyncio.get_running_loop().create_task(self._clear_when_done(turn))
        return turn

    async def _clear_when_done(self, turn: Turn) -> None:
        await turn.done.wait()
        if self._current is turn:
            self._current = None
        self._wake.set()

    async def start(self) -> None:
        if self.spawner.fail_start:
            raise ClaudeStartError(self.spawner.fail_start, 1, "")
        if self.spawner.start_error is not None:
            raise self.spawner.start_error
        self.started = True
        await self.spawner.start_gate.wait()
        if self.options.pid_file is not None:  # as the real process does on every spawn
            try:
                pidfile.write(self.options.pid_file, self.pid or 0, "fake-marker")
            except OSError as exc:
                raise start_failure(exc, self.options.claude_bin, launching=False) from exc
        self._task = asyncio.create_task(self._run())

    def submit(self, content: Any) -> Turn:
        if self.spawner.submit_error is not None:
            raise self.spawner.submit_error
        turn = Turn(content)
        self._queue.append(turn)
        self._wake.set()
        return turn

    async def interrupt(self) -> bool:
        if self._current is None:
            return False
        self.spawner.interrupts += 1
        self._current.push(
            TurnResult("error_during_execution", True, "", self.session_id, terminal_reason="aborted_streaming")
        )
        return True

    async def set_model(self, model: str | None) -> None:
        self.models.append(model)

    async def set_permission_mode(self, mode: str) -> None:
        """Like the CLI (§6): bypassPermissions is refused unless the process was launched in it."""
        if mode == "bypassPermissions" and self.options.permission_mode != mode:
            raise BridgeError("Claude refused set_permission_mode: not launched with --dangerously-skip-permissions")
        self.modes.append(mode)

    async def stop(self) -> None:
        self.stopped = True
        if self._current is not None:  # as the real process: the running turn ends, cut off
            self._current.push(TurnResult(EXITED, True, "The session was stopped while Claude was working."))
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def emit_status(self, status: ProcessStatus) -> None:
        self.spawner.statuses.append(status)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue and self._current is None:
                turn = self._queue.popleft()
                self._current = turn
                self.received.append(turn.content)
                turn.written.set()
                script = self.spawner.next_script(turn.content)
                self.session_id = self.session_id or self.spawner.conversation_id(self.options.cwd)
                turn.push(SessionStarted(self.session_id, self.models[-1] or "default"))
                for event in script:
                    if event == "hold":
                        # Held until released, or until an interrupt ends the turn.
                        waits = [
                            asyncio.ensure_future(self.spawner.release.wait()),
                            asyncio.ensure_future(turn.done.wait()),
                        ]
                        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                        for wait in waits:
                            wait.cancel()
                        self.spawner.release.clear()
                        if turn.done.is_set():
                            break
                        continue
                    assert not isinstance(event, str)
                    if isinstance(event, RateLimit):
                        self.last_limit = event
                    turn.push(event)
                if not turn.done.is_set():
                    turn.push(TurnResult("success", False, "ok", self.session_id, cost_usd=0.01))
                await turn.done.wait()
                self._current = None


class Shown:
    """A FrontEnd port that records what the sessions showed: notices, Claude's own turns, files and prompts."""

    def __init__(self) -> None:
        self.told: list[tuple[Place, str]] = []
        self.claude_turns: list[Delivery] = []
        self.files: list[OutgoingFile] = []
        self.prompts: asyncio.Queue[Prompt] = asyncio.Queue()
        self.menus: list[tuple[Place, str, ClaudeCommands]] = []
        self.limits: list[tuple[Place, Hold, int | None]] = []  # (place, hold shown, the message it edited)
        self.warnings: list[tuple[Place, RateLimit]] = []
        self.limit_shown: asyncio.Queue[tuple[Place, Hold, int | None]] = asyncio.Queue()  # to await each one

    async def show_limit(self, place: Place, hold: Hold, message_id: int | None) -> int | None:
        self.limits.append((place, hold, message_id))
        self.limit_shown.put_nowait((place, hold, message_id))
        return message_id if message_id is not None else 500 + len(self.limits)

    async def warn_limit(self, place: Place, limit: RateLimit) -> None:
        self.warnings.append((place, limit))

    async def notify(self, place: Place, text: str) -> None:
        self.told.append((place, text))

    def show_claude_turn(self, delivery: Delivery) -> None:
        self.claude_turns.append(delivery)

    async def send_file(self, outgoing: OutgoingFile) -> None:
        self.files.append(outgoing)

    def show_prompt(self, prompt: Prompt) -> None:
        self.prompts.put_nowait(prompt)

    def show_commands(self, place: Place, session: str, commands: ClaudeCommands) -> None:
        self.menus.append((place, session, commands))


class FakeSpawner:
    """The process factory: records every process it made and hands them scripted answers in order."""

    def __init__(self) -> None:
        self.started: list[FakeProcess] = []
        self.scripts: deque[list[Event | str]] = deque()
        self.statuses: list[ProcessStatus] = []
        self.release = asyncio.Event()
        self.interrupts = 0
        self.fail_start = ""
        self.start_error: BaseException | None = None
        self.submit_error: BaseException | None = None
        self.start_gate = asyncio.Event()  # clear it to hold every start() until it is set again
        self.start_gate.set()
        self._conversations: dict[Path, str] = {}

    def __call__(self, options: ProcessOptions, hooks: Any) -> FakeProcess:
        process = FakeProcess(options, self)
        process.hooks = hooks
        self.started.append(process)
        return process

    def enqueue(self, *scripts: list[Event | str]) -> None:
        """Each script is one turn's events; "hold" pauses the turn until `release` is set."""
        self.scripts.extend(scripts)

    def next_script(self, content: Any) -> list[Event | str]:
        if self.scripts:
            return self.scripts.popleft()
        return [AssistantText(f"echo: {content}")]

    def conversation_id(self, cwd: Path) -> str:
        return self._conversations.setdefault(cwd, f"conv-{cwd.name}")


def base_options(tmp_path: Path) -> ProcessOptions:
    # The CLI's config under the test's folder: a session marks its folder trusted there before every spawn.
    env = {"CLAUDE_CONFIG_DIR": str(tmp_path / "claude-config"), "HOME": str(tmp_path)}
    return ProcessOptions(claude_bin=Path("/nonexistent/claude"), cwd=tmp_path, env=env)


async def drain(delivery: Any) -> list[object]:
    """Every event of a Delivery, up to and including its TurnResult."""
    return [event async for event in delivery.events()]


def result_of(events: list[object]) -> TurnResult:
    """The TurnResult that ends a drained delivery."""
    last = events[-1]
    assert isinstance(last, TurnResult)
    return last
