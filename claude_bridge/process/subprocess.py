"""ClaudeSubprocess: one persistent Claude Code CLI for one session directory, as a stream of turns.

It owns the lifecycle (one State, transitions in one table), writes one message at a time, attributes the CLI's
output to turns by the CLI's own markers (`init`, `result.origin`), and restarts the CLI after a crash. Launching is
argv.py, framing and control requests live.py, the state table state.py, cleanup reaping.py; it knows nothing of
session names or Telegram. It stays one module of ~590 lines on purpose: the pump, crash recovery and the watchdog
all move the one State (and so does a reload's hand-over), and splitting them would spread its transitions over
several files.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import signal
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import replace
from typing import Any

import psutil

from claude_bridge.errors import BridgeError, ClaudeStartError
from claude_bridge.process.argv import (
    NO_CONVERSATION,
    ProcessOptions,
    build_argv,
    build_env,
    explain_start_failure,
)
from claude_bridge.process.handover import HandoverError, SubprocessHandover, adopt, detach
from claude_bridge.process.live import ControlHandler, LiveProcess
from claude_bridge.process.reaping import (
    claim_orphans,
    has_descendants,
    kill_tree,
    reap_adopted,
    stop_survivors,
)
from claude_bridge.process.state import TRANSITIONS, IllegalTransition, State
from claude_bridge.process.turns import CLAUDE_TURN_HEADER, Turn, TurnTimings
from claude_bridge.protocol import messages
from claude_bridge.protocol.events import (
    CANCELLED,
    EXITED,
    HANDED_OVER,
    START_FAILED,
    WATCHDOG,
    BackgroundTasksChanged,
    ControlResponse,
    Event,
    ProcessStatus,
    SessionStarted,
    TaskInfo,
    TaskNotification,
    TaskStarted,
    TaskUpdated,
    TurnResult,
)
from claude_bridge.protocol.limits import RateLimit

logger = logging.getLogger(__name__)

TASK_ENDED = ("completed", "failed", "killed", "stopped", "cancelled")


class ClaudeSubprocess:
    """A long-lived CLI process for one session directory, fed one message at a time, restarted on crashes.

    `on_status` hears crashes and restarts; `on_claude_turn` gets each turn Claude starts by itself (a background
    task ended, /loop, a cron); `on_control_request` answers the CLI's own control requests (no handler → refused).
    """

    def __init__(
        self,
        options: ProcessOptions,
        on_status: Callable[[ProcessStatus], None] | None = None,
        *,
        on_claude_turn: Callable[[Turn], None] | None = None,
        on_control_request: ControlHandler | None = None,
    ) -> None:
        self.options = options
        self.model = options.model
        self.session_id = ""
        self.last_timings = TurnTimings()
        # The account's usage-limit state as this process last heard it: the CLI says it once per change (§17),
        # so whether a turn was refused is read against it (2.1.197 may even send it before `init`, outside a turn).
        self.last_limit: RateLimit | None = None
        self._on_status = on_status
        self._on_claude_turn = on_claude_turn
        self._on_control_request = on_control_request
        self._state = State.NEW
        self._live: LiveProcess | None = None
        self._next: Turn | None = None  # the one message waiting to be written; the caller queues the rest
        self._current: Turn | None = None
        self._running_tasks: dict[str, TaskInfo] = {}
        self._orphans: list[psutil.Process] = []  # what a crashed CLI of ours had detached: stopped when we stop
        self._notices: list[str] = []
        self._notice_tasks: list[str] = []  # the ids of the tasks those notices are about
        self._expect_claude_until = 0.0
        self._wakeup = asyncio.Event()
        self._stopped = asyncio.Event()
        self._has_conversation = options.continue_conversation or bool(options.resume_id)
        self._restarts = 0
        self._last_activity = time.monotonic()
        self._cumulative_cost = 0.0
        self._tasks: set[asyncio.Task[None]] = set()

    # -- public face --

    @property
    def state(self) -> State:
        return self._state

    @property
    def pid(self) -> int | None:
        return self._live.pid if self._live else None

    @property
    def alive(self) -> bool:
        return self._state in (State.READY, State.BUSY)

    @property
    def busy(self) -> bool:
        """A turn is running, whoever started it, or Claude's own turn is due (a background task just ended)."""
        return self._current is not None or self._expect_claude_until > time.monotonic()

    @property
    def waiting(self) -> bool:
        """A message waits to be written (behind the running turn, or for Claude's own turn that is due)."""
        return self._next is not None

    @property
    def failed(self) -> bool:
        """Recovery gave up; the next submit tries a fresh start."""
        return self._state is State.FAILED

    @property
    def stderr_tail(self) -> str:
        return self._live.stderr_tail if self._live else ""

    @property
    def running_tasks(self) -> tuple[TaskInfo, ...]:
        """Background tasks the CLI runs now (a `run_in_background` Bash, a background agent, …)."""
        return tuple(self._running_tasks.values())

    async def start(self) -> None:
        """Spawn the CLI and wait until it answers; raises ClaudeNotFound / ClaudeStartError."""
        await self._spawn(continue_conversation=self._has_conversation, on_failure=State.NEW)
        self._own(self._pump(), "pump")
        self._own(self._watchdog(), "watchdog")

    def submit(self, content: str | list[dict[str, Any]]) -> Turn:
        """Hand over the next message; it is written when no turn runs (neither ours nor Claude's).

        One message waits at a time: the caller keeps its own queue (a session's worker) and submits the next once
        this one is written; a second one meanwhile is refused with BridgeError.
        """
        if self._state in (State.STOPPING, State.STOPPED):
            raise BridgeError("this Claude process is stopping")
        if self._next is not None:
            raise BridgeError("a message is already waiting to be written to this Claude process")
        turn = Turn(content)
        self._next = turn
        self._wakeup.set()
        return turn

    async def interrupt(self) -> bool:
        """Stop the running turn (the process lives on, queued messages continue); False if idle."""
        turn = self._current
        if turn is None or turn.done.is_set():
            return False
        try:
            await self._request(messages.interrupt(), timeout=5.0)
        except BridgeError as exc:
            logger.warning("%s: interrupt was not acknowledged: %s", self.options.label, exc)
        return True

    async def set_model(self, model: str | None) -> None:
        """Switch model: at once on a live process (`set_model`), and for every later spawn."""
        self.model = model
        if self.alive:
            await self._request(messages.set_model(model), self.options.control_timeout)

    async def set_permission_mode(self, mode: str) -> None:
        """Switch permission mode on a live process; BridgeError if the CLI refuses (bypassPermissions, §6)."""
        self.options = replace(self.options, permission_mode=mode)
        if self.alive:
            await self._request(messages.set_permission_mode(mode), self.options.control_timeout)

    async def stop_task(self, task_id: str) -> None:
        """Stop one background task; BridgeError if the CLI refuses or does not answer."""
        await self._request(messages.stop_task(task_id), self.options.control_timeout)

    async def stop(self) -> None:
        """Interrupt if busy, close stdin, wait, then SIGTERM/SIGKILL the group; no process is left behind."""
        if self._state in (State.STOPPING, State.STOPPED):
            await self._stopped.wait()
            return
        was_alive = self.alive
        self._to(State.STOPPING)
        turn = self._current  # the reader may clear it while we wait below
        if turn is not None and was_alive:
            await self.interrupt()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(3.0, self.options.stop_timeout)):
                    await turn.done.wait()
        tasks, self._tasks = self._tasks, set()
        for task in tasks:
            task.cancel()
        # gather, not `await task` under suppress(CancelledError): a cancel of stop() itself must propagate.
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._live is not None:
            await self._shutdown_process(self._live, graceful=True)
        orphans, self._orphans = self._orphans, []
        await asyncio.to_thread(stop_survivors, orphans)
        self._current = None
        self._fail_waiting(CANCELLED, "The session was stopped before this message was answered.")
        self._to(State.STOPPED)
        self._stopped.set()

    # -- a reload: the CLI crosses the bot's exec --

    def restart_key(self) -> str:
        """A digest of the settings only a new CLI takes (its path, its environment): a reload compares them."""
        key = repr((str(self.options.claude_bin), sorted(self.options.env.items())))
        return hashlib.sha256(key.encode()).hexdigest()

    async def hand_over(self) -> SubprocessHandover:
        """Stop serving the CLI in this image without ending it, and describe it for the next image.

        The turn in flight gets a `handed_over` status as its last event here; afterwards this object is inert.
        HandoverError if the process is not running or cannot be detached (then it goes on being served here).
        """
        live = self._live
        if live is None or not self.alive:
            raise HandoverError(f"{self.options.label}: no running Claude process to hand over")
        tasks, self._tasks = self._tasks, set()
        for task in tasks:
            task.cancel()  # the pump and the watchdog: nothing is written to the CLI from here on
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            record = await detach(live)
        except HandoverError:
            self._own(self._pump(), "pump")
            self._own(self._watchdog(), "watchdog")
            raise
        self._live = None
        turn = self._current
        if turn is not None:
            turn.push(ProcessStatus(HANDED_OVER, "The bot is reloading; the answer goes on."))
        return SubprocessHandover(
            process=record,
            session_id=self.session_id,
            turn_header=None if turn is None or turn.done.is_set() else turn.header if turn.started_by_claude else "",
            running_tasks=self.running_tasks,
            notices=tuple(self._notices),
            cumulative_cost=self._cumulative_cost,
            model=self.model,
            restart_key=self.restart_key(),
        )

    async def adopt(self, record: SubprocessHandover) -> Turn | None:
        """Serve the CLI a previous image handed over (instead of start()); returns the turn still in flight.

        The caller passes that turn on, Claude's own too: it goes on where the previous image showed it, so it is not
        announced to `on_claude_turn` as a new one. HandoverError if it cannot be adopted.
        """
        self.session_id = record.session_id
        self.model = record.model
        self._cumulative_cost = record.cumulative_cost
        self._has_conversation = True
        self._running_tasks = {task.task_id: task for task in record.running_tasks}
        self._notices = list(record.notices)
        turn: Turn | None = None
        if record.turn_header == "":
            turn = Turn("")  # a message of ours, already written: only its answer is still to come
            turn.start_clock()
            turn.written.set()
        elif record.turn_header is not None:
            turn = Turn.by_claude(record.turn_header)
        self._to(State.STARTING)
        try:
            self._live = await adopt(record.process, self._on_event, self._on_exit, self._on_control_request)
        except HandoverError:
            self._to(State.NEW)
            raise
        self._to(State.READY)
        if turn is not None:
            self._current = turn
            self._to(State.BUSY)
        self._own(self._pump(), "pump")
        self._own(self._watchdog(), "watchdog")
        return turn

    # -- lifecycle --

    def _to(self, state: State) -> None:
        if state not in TRANSITIONS[self._state]:
            logger.error("%s: illegal move %s → %s", self.options.label, self._state.name, state.name)
            raise IllegalTransition(f"{self._state.name} → {state.name}")
        logger.debug("%s: %s → %s", self.options.label, self._state.name, state.name)
        self._state = state
        self._wakeup.set()

    def _own(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Run a task this object owns: stop() cancels and awaits it."""
        task = asyncio.create_task(coro, name=f"{self.options.label}-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _spawn(self, *, continue_conversation: bool, on_failure: State) -> None:
        self._to(State.STARTING)
        try:
            live = await self._launch_or_fresh(continue_conversation)
        except BridgeError:
            if self._state is State.STARTING:
                self._to(on_failure)
            raise
        if self._state is not State.STARTING:  # stop() came while it started
            await self._shutdown_process(live, graceful=False)
            raise BridgeError("the session was stopped while Claude was starting")
        self._to(State.READY)

    async def _launch_or_fresh(self, continue_conversation: bool) -> LiveProcess:
        """Launch; if the conversation to resume is gone (the CLI exits at once saying so), start a fresh one."""
        resume_id = (self.session_id or self.options.resume_id) if continue_conversation else None
        try:
            return await self._launch(continue_conversation, resume_id)
        except ClaudeStartError as exc:
            if not resume_id or NO_CONVERSATION not in exc.stderr_tail:
                raise
        logger.warning("%s: conversation %s not found; starting a fresh one", self.options.label, resume_id)
        self.session_id = ""
        self.options = replace(self.options, resume_id=None, continue_conversation=False)
        self._has_conversation = False
        self._emit(
            ProcessStatus(
                "conversation_lost",
                f"The conversation {resume_id} was not found in this folder, so Claude starts a fresh one.",
            )
        )
        return await self._launch(False, None)

    async def _launch(self, continue_conversation: bool, resume_id: str | None) -> LiveProcess:
        marker = uuid.uuid4().hex
        argv = build_argv(
            self.options, model=self.model, continue_conversation=continue_conversation, resume_id=resume_id
        )
        env = build_env(self.options.env, self.options.claude_bin, marker)
        live = await LiveProcess.spawn(
            self.options, argv, env, marker, self._on_event, self._on_exit, self._on_control_request
        )
        self._live = live
        logger.info(
            "%s: spawned Claude CLI pid %s%s%s",
            self.options.label,
            live.pid,
            f" --resume={resume_id}" if resume_id else " --continue" if continue_conversation else "",
            f" model={self.model}" if self.model else "",
        )
        # The CLI prints nothing until its first input; `initialize` proves it started (and warms it up),
        # while flag errors and the root refusal make it exit at once with the reason on stderr.
        answered = asyncio.create_task(live.request(messages.initialize()))
        exited = asyncio.create_task(live.exited.wait())
        done, _ = await asyncio.wait(
            {answered, exited}, timeout=self.options.start_timeout, return_when=asyncio.FIRST_COMPLETED
        )
        exited.cancel()
        await asyncio.gather(exited, return_exceptions=True)
        if answered in done and answered.exception() is None:
            return live
        answered.cancel()
        await asyncio.gather(answered, return_exceptions=True)
        if not live.exited.is_set():
            await self._shutdown_process(live, graceful=False)
            raise ClaudeStartError(
                f"Claude Code did not answer within {self.options.start_timeout:.0f} s of starting",
                None,
                live.stderr_tail,
            )
        await live.close()
        if self._live is live:
            self._live = None
        message = explain_start_failure(live.stderr_tail, live.returncode)
        logger.error("%s: CLI exited at start (code %s): %s", self.options.label, live.returncode, message)
        raise ClaudeStartError(message, live.returncode, live.stderr_tail)

    async def _request(self, body: Mapping[str, Any], timeout: float) -> ControlResponse:
        live = self._live
        if live is None or not self.alive:
            raise BridgeError("the Claude process is not running")
        return await live.request(body, timeout)

    # -- the stream of turns --

    def _on_event(self, live: LiveProcess, event: Event) -> None:
        if live is not self._live:
            return
        self._last_activity = time.monotonic()
        if isinstance(event, (TaskStarted, TaskUpdated, TaskNotification, BackgroundTasksChanged)):
            self._track_task(event)
            return
        if isinstance(event, RateLimit):
            self.last_limit = event
            if self._current is None:
                return
        if isinstance(event, SessionStarted):
            if event.session_id:
                self.session_id = event.session_id
            self._expect_claude_until = 0.0
        if isinstance(event, TurnResult):
            event = self._account(event)
        turn = self._current
        if turn is None:
            # Claude's own turn begins with `init`; a result without one is placed only if its origin says so.
            starts_turn = isinstance(event, SessionStarted) or (isinstance(event, TurnResult) and bool(event.origin))
            if not starts_turn:
                logger.warning("%s: %s outside any turn; dropped", self.options.label, type(event).__name__)
                return
            turn = self._begin_claude_turn()
        elif isinstance(event, TurnResult) and event.origin and not turn.started_by_claude:
            # Claude's own turn began as we wrote the user's message; its result must not end the user's turn.
            logger.warning(
                "%s: Claude's own turn (%s) overlapped a user message; its result goes to a turn of its own",
                self.options.label,
                event.origin,
            )
            self._begin_claude_turn(current=False).push(event)
            return
        if isinstance(event, SessionStarted) and live.awaiting_first_init:
            live.awaiting_first_init = False
            turn.timings.spawn_to_init = time.monotonic() - live.spawned_at
        turn.push(event)
        if isinstance(event, TurnResult):
            self._current = None
            self.last_timings = turn.timings
            if self._state is State.BUSY:
                self._to(State.READY)
            if self._notices:  # a task ended during this turn: Claude's turn about it comes next
                self._expect_claude_turn()

    def _begin_claude_turn(self, *, current: bool = True) -> Turn:
        header = "\n".join(self._notices) or CLAUDE_TURN_HEADER
        turn = Turn.by_claude(header, tuple(self._notice_tasks))
        self._notices.clear()
        self._notice_tasks.clear()
        logger.info("%s: Claude started a turn by itself: %s", self.options.label, header)
        if current:
            self._current = turn
            if self._state is State.READY:
                self._to(State.BUSY)
        if self._on_claude_turn is not None:
            self._on_claude_turn(turn)
        return turn

    def _account(self, event: TurnResult) -> TurnResult:
        """Per-turn cost from the CLI's cumulative one, our watchdog's subtype, and the restart counter."""
        if event.session_id:
            self.session_id = event.session_id
        self._has_conversation = True
        cost = max(0.0, event.total_cost_usd - self._cumulative_cost)
        self._cumulative_cost = event.total_cost_usd
        event = replace(event, cost_usd=cost)
        if self._current is not None and self._current.watchdog_fired:
            event = replace(event, subtype=WATCHDOG, text=self._watchdog_text())
        if not event.is_error:
            self._restarts = 0
        return event

    def _track_task(self, event: TaskStarted | TaskUpdated | TaskNotification | BackgroundTasksChanged) -> None:
        if isinstance(event, TaskStarted):
            self._running_tasks[event.task_id] = TaskInfo(event.task_id, event.description, event.task_type)
        elif isinstance(event, BackgroundTasksChanged):
            self._running_tasks = {task.task_id: task for task in event.tasks}
        elif isinstance(event, TaskUpdated):
            if event.status in TASK_ENDED:
                self._running_tasks.pop(event.task_id, None)
        else:
            self._running_tasks.pop(event.task_id, None)
            # Measured on 2.1.197 and 2.1.332: a task that ends by itself makes the CLI start Claude's turn at once
            # (after the running turn, if one runs); one ended by stop_task ("stopped") does not.
            if event.status != "stopped":
                self._notices.append(event.summary or f"Background task {event.task_id} {event.status}")
                self._notice_tasks.append(event.task_id)
                if self._current is None:
                    self._expect_claude_turn()
        if self._current is not None:
            self._current.push(event)

    def _expect_claude_turn(self) -> None:
        """Hold our next message (and count as busy) for the Claude turn a task's end is about to start."""
        self._expect_claude_until = time.monotonic() + self.options.claude_turn_grace
        self._wakeup.set()

    async def _pump(self) -> None:
        """Write the next waiting message whenever the CLI is free: one message at a time, never into a turn."""
        while True:
            wait = self._expect_claude_until - time.monotonic()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait if wait > 0 else None):
                    await self._wakeup.wait()
            self._wakeup.clear()
            if self._next is None or self._expect_claude_until > time.monotonic():
                continue
            if self._state is State.FAILED:
                try:
                    await self._spawn(continue_conversation=self._has_conversation, on_failure=State.FAILED)
                except BridgeError as exc:
                    self._fail_waiting(START_FAILED, str(exc))
                    continue
            if self._state is not State.READY or self._live is None:
                continue  # woken again when it is
            await self._write_next(self._live)
            self._wakeup.set()  # more may wait; the loop re-checks

    async def _write_next(self, live: LiveProcess) -> None:
        turn, self._next = self._next, None
        assert turn is not None
        self._current = turn
        self._to(State.BUSY)
        turn.start_clock()
        self._last_activity = time.monotonic()
        try:
            await live.write(messages.user_message(turn.content or "", self.session_id))
        except BridgeError:
            logger.warning("%s: could not write the message; the process is gone", self.options.label)
        turn.written.set()

    def _fail_waiting(self, subtype: str, text: str) -> None:
        turn, self._next = self._next, None
        if turn is not None:
            turn.push(TurnResult(subtype=subtype, is_error=True, text=text))

    # -- crashes --

    def _on_exit(self, live: LiveProcess) -> None:
        if live is not self._live or self._state is State.STARTING:
            return  # a start that failed: _launch explains it
        code = live.returncode
        self._live = None
        self._running_tasks.clear()
        self._notices.clear()
        self._notice_tasks.clear()
        self._expect_claude_until = 0.0
        tail = live.stderr_tail.strip()[-800:]
        turn, self._current = self._current, None
        stopping = self._state is State.STOPPING
        if stopping:
            reason = "The session was stopped while Claude was working"
        else:
            reason = live.exit_reason or f"Claude exited unexpectedly (exit code {code})"
            logger.error("%s: CLI pid %s exited with code %s", self.options.label, live.pid, code)
        if turn is not None and not turn.done.is_set():
            cut = "Claude's own turn was cut off" if turn.started_by_claude else "Your message was cut off"
            text = f"{reason}. {cut} and was not re-sent (its tools may have run)."
            if tail and not stopping:
                text += f"\n{tail}"
            turn.push(TurnResult(subtype=EXITED, is_error=True, text=text))
        if stopping:
            return
        self._emit(ProcessStatus("crashed", reason, exit_code=code))
        self._to(State.RECOVERING)
        self._own(self._recover(live, code, tail), "recover")

    async def _recover(self, dead: LiveProcess, code: int | None, tail: str) -> None:
        await dead.close()
        await dead.reap_orphans()
        self._orphans += await asyncio.to_thread(claim_orphans)
        await asyncio.to_thread(reap_adopted)  # what exited on its way to us (a `setsid` parent, a killed tool shell)
        delays = self.options.restart_delays
        while self._restarts < len(delays):
            delay = delays[self._restarts]
            self._restarts += 1
            self._emit(
                ProcessStatus(
                    "restarting",
                    f"Restarting Claude in {delay:g} s (attempt {self._restarts} of {len(delays)})…",
                    exit_code=code,
                    attempt=self._restarts,
                )
            )
            await asyncio.sleep(delay)
            try:
                await self._spawn(continue_conversation=True, on_failure=State.RECOVERING)
            except BridgeError as exc:
                tail = str(exc)
                continue
            recovered = "Claude restarted; the conversation continues."
            self._emit(ProcessStatus("recovered", recovered, attempt=self._restarts))
            return
        message = (
            f"Claude could not be restarted after {len(delays)} attempts (last exit code {code}). "
            f"Send a message to try again.{(' ' + tail) if tail else ''}"
        )
        logger.error("%s: giving up restarting the CLI", self.options.label)
        self._to(State.FAILED)
        self._emit(ProcessStatus("gave_up", message, exit_code=code, attempt=self._restarts))
        self._fail_waiting(EXITED, message)
        self._restarts = 0

    def _emit(self, status: ProcessStatus) -> None:
        if self._next is not None:
            self._next.push(status)
        if self._on_status is not None:
            self._on_status(status)

    # -- watchdog --

    def _watchdog_text(self) -> str:
        limit = self.options.watchdog_seconds
        silence = f"{limit / 60:g} min" if limit >= 60 else f"{limit:g} s"
        return f"Claude sent nothing for {silence}, so the turn was stopped by the hang watchdog."

    async def _watchdog(self) -> None:
        limit = self.options.watchdog_seconds
        tick = max(0.05, min(5.0, limit / 4))
        while True:
            await asyncio.sleep(tick)
            turn, live = self._current, self._live
            if turn is None or live is None or turn.done.is_set() or not turn.written.is_set():
                continue
            if turn.has_open_tools and has_descendants(live.pid):
                # A tool is still running (a long build, a test suite): that is work, not a hang.
                self._last_activity = time.monotonic()
                continue
            if live.answering:
                # The CLI waits for us (a prompt waits for a person): that time is not silence, and the prompt's
                # own reminder and timeout are its only clocks.
                self._last_activity = time.monotonic()
                continue
            if time.monotonic() - self._last_activity < limit:
                continue
            logger.warning("%s: no output for %g s; interrupting the turn", self.options.label, limit)
            turn.watchdog_fired = True
            with contextlib.suppress(BridgeError):
                await self._request(messages.interrupt(), timeout=min(10.0, limit))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(10.0, limit)):
                    await turn.done.wait()
            if not turn.done.is_set() and live is self._live:
                logger.error("%s: interrupt ignored; killing the CLI", self.options.label)
                live.exit_reason = self._watchdog_text() + " The interrupt was ignored, so Claude was restarted"
                await kill_tree(live.pid, signal.SIGKILL)

    async def _shutdown_process(self, live: LiveProcess, *, graceful: bool) -> None:
        await live.shutdown(graceful=graceful, timeout=self.options.stop_timeout)
        if self._live is live:
            self._live = None
