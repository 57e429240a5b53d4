"""One session at run time: its metadata and one state (lifecycle.py), its inbox, its worker and the one Claude
process it may hold.

It turns a Delivery into a turn of that process (starting it through the pool when needed), sends its notices and
keeps the books (inbox marks, metadata); every failure becomes an error result for that message, never a dead
worker. What the CLI asks of it is claude_requests.py, the turns Claude starts by itself claude_turns.py.
It is near 600 lines because the features that change how one message is sent (the usage limit's hold and resend, a
reload's turn in flight, the project's kept rules and mode) all act on the one process slot and the same books; the
types a session is built from (ProcessLike, ProcessHooks, Runtime) are at its top.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from claude_bridge.errors import BridgeError, SessionError
from claude_bridge.process.argv import ProcessOptions
from claude_bridge.process.requests import OnPermission
from claude_bridge.process.turns import CLAUDE_TURN_HEADER, Turn, TurnTimings
from claude_bridge.protocol.claude_schedules import ClaudeSchedule
from claude_bridge.protocol.events import (
    CANCELLED,
    START_FAILED,
    ProcessStatus,
    SessionStarted,
    TaskInfo,
    TaskStarted,
    ToolResult,
    ToolUse,
    TurnResult,
)
from claude_bridge.protocol.limits import RateLimit
from claude_bridge.protocol.mcp import McpServer, mcp_config
from claude_bridge.sessions import known_commands
from claude_bridge.sessions.claude_requests import ClaudeRequests
from claude_bridge.sessions.claude_turns import ClaudeTurns
from claude_bridge.sessions.file_policy import Protected
from claude_bridge.sessions.frontend import ClaudeCommands, FrontEnd
from claude_bridge.sessions.homes import TaskOrigins
from claude_bridge.sessions.inbox import COMPACT_AT, Content, Inbox, InboxOp
from claude_bridge.sessions.lifecycle import Lifecycle, checked, from_disk, to_disk
from claude_bridge.sessions.limit_keeper import LimitKeeper
from claude_bridge.sessions.own_schedules import OwnSchedules, fired_header, lost_text
from claude_bridge.sessions.place import Place
from claude_bridge.sessions.pool import LivePool
from claude_bridge.sessions.prompts import PromptBoard
from claude_bridge.sessions.rules import trust_before_start
from claude_bridge.sessions.store import (
    DEFAULT_PERSONA,
    INBOX_FILE,
    PID_FILE,
    Metadata,
    Persona,
    SessionStore,
)
from claude_bridge.sessions.tools import SKIPS_ASKING
from claude_bridge.sessions.tools import SYSTEM_PROMPT as TOOLS_PROMPT
from claude_bridge.sessions.transcripts import is_session_id
from claude_bridge.sessions.worker import SHUTDOWN_UNSENT, Delivery, SessionWorker, failure

logger = logging.getLogger(__name__)

SKIPPING = "⚠️ Session “{name}” runs in bypassPermissions: every tool runs unasked. /mode default asks again."

CLAUDE_TURNS_GRACE = 5.0  # seconds Claude's own turns get to end once their process stopped


class SessionState(StrEnum):
    """What /sessions and /status say a session is doing (its Lifecycle, and whether it works right now)."""

    LIVE = "live"
    BUSY = "busy"
    SUSPENDED = "suspended"
    FAILED = "failed"
    DAMAGED = "damaged"


class ProcessLike(Protocol):
    """What a session needs of a Claude process (ClaudeSubprocess, or a fake in tests)."""

    session_id: str
    last_timings: TurnTimings
    last_limit: RateLimit | None  # the usage limit as the process last heard of it (protocol/limits.py)

    @property
    def alive(self) -> bool: ...
    @property
    def busy(self) -> bool: ...
    @property
    def pid(self) -> int | None: ...
    @property
    def failed(self) -> bool: ...
    @property
    def running_tasks(self) -> tuple[TaskInfo, ...]: ...
    async def start(self) -> None: ...
    def submit(self, content: Content) -> Turn: ...
    async def interrupt(self) -> bool: ...
    async def set_model(self, model: str | None) -> None: ...
    async def stop_task(self, task_id: str) -> None: ...
    async def set_permission_mode(self, mode: str) -> None: ...
    async def stop(self) -> None: ...


@dataclass(frozen=True)
class ProcessHooks:
    """How a process talks back to its session: status changes, turns Claude starts, the tools the session serves
    and its answer to a permission request (typed: the process layer reads the CLI's control requests)."""

    on_status: Callable[[ProcessStatus], None]
    on_claude_turn: Callable[[Turn], None]
    tools: McpServer
    on_permission: OnPermission


Spawner = Callable[[ProcessOptions, ProcessHooks], ProcessLike]


@dataclass(frozen=True)
class Runtime:
    """What every session shares with its manager."""

    store: SessionStore
    pool: LivePool
    spawn: Spawner
    base: ProcessOptions
    clock: Callable[[], float]
    tell: Callable[[Place, str], None]  # a notice for a chat (topic) outside any delivery (fire and forget)
    front_end: FrontEnd  # shows Claude's own turns, delivers the files Claude sends
    limits: LimitKeeper  # the account's usage limit: every send asks it first, every turn's end tells it
    upload_limit: int = 50 * 1024 * 1024
    prompts: PromptBoard = field(default_factory=PromptBoard)  # Claude's questions waiting for the human
    protected: Protected = field(default_factory=Protected)  # what no tool may send (file_policy)


class Session:
    """The process is started lazily by the first message and suspended by the pool; `close()` ends it for good."""

    def __init__(self, meta: Metadata, runtime: Runtime, damage: str | None = None) -> None:
        self.meta = meta
        self._rt = runtime
        self._damage = damage  # "damaged: <file>: <reason>", said while the session is DAMAGED
        self.lifecycle = Lifecycle.DAMAGED if damage else from_disk(meta.status)
        self.directory = Path(meta.workspace) if meta.workspace else runtime.store.directory(meta.name)
        self.state_dir = runtime.store.state_dir(meta.name)
        self.inbox = Inbox(self.state_dir / INBOX_FILE)
        self.process: ProcessLike | None = None
        self.claude_commands = known_commands.load(self.state_dir)  # as the last `init` listed them; None before one
        self.origins = TaskOrigins()  # where each background task was started: Claude's turn about it goes there
        self.own_schedules = OwnSchedules(self.state_dir, runtime.clock)  # Claude's crons, kept across restarts
        runtime.limits.book.restore(meta.name, meta.usage)  # /usage's line, saved with the metadata
        self._claude_place: Place | None = None  # where Claude's own running turn (_claude_turn) is shown
        self._claude_turn: Turn | None = None
        if meta.home_chat_id is None and meta.last_chat_id is not None:  # from before homes: the last user's place
            meta.home_chat_id, meta.home_thread_id = meta.last_chat_id, meta.last_thread_id
        # A reload's turns still in flight, by inbox entry: their delivery follows them instead of sending anew.
        self.resumed: dict[str, tuple[ProcessLike, Turn]] = {}
        # Accepting a message and deleting the session take turns, so nothing is accepted into a removed folder.
        self.lock = asyncio.Lock()
        # One start at a time: a message's, or the one that keeps Claude's crons firing after the bot started.
        self._start_lock = asyncio.Lock()
        self.worker = SessionWorker(meta.name, self.deliver, runtime.pool.changed)
        self.requests = ClaudeRequests(
            meta.name,
            self.directory,
            self._turn_place,
            runtime.prompts,
            runtime.front_end.send_file,
            runtime.upload_limit,
            self._left_plan_mode,
            self.keep_mode,
            own=(self.directory, self.state_dir / "files"),
            protected=runtime.protected,
            mode=self.permission_mode,
        )
        self.claude_turns = ClaudeTurns(meta.name, self._follow, runtime.pool.changed)

    # -- what the pool and the manager read --

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def damage(self) -> str | None:
        """Why the session's state cannot be read ("damaged: <file>: <reason>"), while it is DAMAGED."""
        return self._damage if self.lifecycle is Lifecycle.DAMAGED else None

    @property
    def deleted(self) -> bool:
        return self.lifecycle is Lifecycle.DELETED

    @property
    def live(self) -> bool:
        # A process that is restarting after a crash still counts: it keeps its queue and comes back.
        return self.process is not None and not self.process.failed

    @property
    def last_place(self) -> Place | None:
        """The chat (and forum topic) that last talked to this session; nothing is sent there by it (see home)."""
        if self.meta.last_chat_id is None:
            return None
        return Place(self.meta.last_chat_id, self.meta.last_thread_id)

    @last_place.setter
    def last_place(self, place: Place) -> None:
        self.meta.last_chat_id, self.meta.last_thread_id = place.chat_id, place.thread_id

    @property
    def home(self) -> Place | None:
        """The place that created the session (homes.py); None for a session nobody has used yet."""
        return None if self.meta.home_chat_id is None else Place(self.meta.home_chat_id, self.meta.home_thread_id)

    @home.setter
    def home(self, place: Place) -> None:
        self.meta.home_chat_id, self.meta.home_thread_id = place.chat_id, place.thread_id

    @property
    def busy(self) -> bool:
        """Working: a message is being answered or waits, Claude runs its own turn, background tasks run, or
        Claude's own schedules wait to fire.

        The pool neither suspends nor evicts a busy session."""
        # A question waiting for the human is work in progress too.
        # The process is busy too between a background task's end and Claude's turn that reports it.
        return (
            self.worker.busy
            or self.claude_busy
            or (self.process is not None and self.process.busy)
            or bool(self.running_tasks)
            or bool(self.claude_schedules)  # Claude's own crons and wakeups fire only while its process lives
            or bool(self._rt.prompts.waiting(self.name))
        )

    @property
    def claude_busy(self) -> bool:
        """A turn Claude started by itself is running."""
        return self.claude_turns.running > 0

    @property
    def running_tasks(self) -> tuple[TaskInfo, ...]:
        return self.process.running_tasks if self.process is not None else ()

    @property
    def claude_schedules(self) -> tuple[ClaudeSchedule, ...]:
        return self.own_schedules.pending()

    def answered_unbooked(self) -> Delivery | None:
        """The message whose answer was read and whose books (metadata, the inbox's done record) are being written
        now, before its answer is shown: a reload waits for them. None too for a message the usage limit refused
        (back in the inbox, it waits for the reset)."""
        current = self.worker.current
        turn = current.turn if current is not None else None
        if current is None or current.by_claude or turn is None or not turn.done.is_set() or current.done.is_set():
            return None
        return None if self._rt.limits.held(self.name) is not None else current

    def ahead(self) -> int:
        """How many turns a new message would wait behind: queued messages and a running Claude turn."""
        return self.worker.ahead() + self.claude_turns.running

    @property
    def last_active(self) -> float:
        return self.meta.last_active

    @property
    def state(self) -> SessionState:
        """What /sessions shows, from the lifecycle and the work under way."""
        if self.lifecycle is Lifecycle.DAMAGED:
            return SessionState.DAMAGED
        if self.worker.busy or self.claude_busy:
            return SessionState.BUSY
        if self.live:
            return SessionState.LIVE
        return SessionState.FAILED if self.lifecycle is Lifecycle.FAILED else SessionState.SUSPENDED

    def persona(self) -> Persona:
        return self._rt.store.personas.get(self.meta.persona) or self._rt.store.personas[DEFAULT_PERSONA]

    def effective_model(self) -> str | None:
        """Session override > persona > CLI default (None)."""
        return self.meta.model or self.persona().model

    def permission_mode(self) -> str:
        return self.meta.permission_mode or self.persona().permission_mode or "default"

    def save(self) -> None:
        """Write the metadata (its status from the lifecycle); a deleted session writes nothing."""
        if self.lifecycle is Lifecycle.DAMAGED:  # never write the stand-in metadata over the file being repaired
            raise SessionError(f"Session “{self.name}” is {self._damage}; fix or /delete it.")
        if self.lifecycle is Lifecycle.DELETED:
            return
        self.meta.status = to_disk(self.lifecycle)
        self.meta.usage = self._rt.limits.book.kept(self.name)
        self._rt.store.save(self.meta)

    # -- its one state --

    def _to(self, state: Lifecycle) -> None:
        self.lifecycle = checked(self.lifecycle, state)

    def restart_later(self) -> None:
        """New settings the running process cannot take: it restarts before the next message (not mid-turn)."""
        if self.process is not None and self.lifecycle in (Lifecycle.STARTING, Lifecycle.LIVE):
            self._to(Lifecycle.RESTART_DUE)

    def now_live(self) -> None:
        """Its process runs: a reload adopted one that kept running across the bot's exec."""
        self._to(Lifecycle.LIVE)
        self.own_schedules.adopted()  # the same process: Claude's schedules in it fire on

    def mark_deleted(self) -> None:
        """From now on nothing of the session is written (its folder is about to go)."""
        self._to(Lifecycle.DELETED)

    async def close(self, timeout: float = 20.0) -> None:
        """End for good (shutdown, delete): every delivery ends with a result, the process stops (within `timeout`),
        Claude's own turns end, and the books are written."""
        # The worker first: left running, it would start the next queued message as the process stops.
        await self.worker.close()
        if self.process is not None:
            try:
                async with asyncio.timeout(timeout):
                    await self.stop_process(Lifecycle.STOPPED)
            except TimeoutError:
                logger.warning("session %s did not stop within %.0f s", self.name, timeout)
        await self.claude_turns.close(CLAUDE_TURNS_GRACE)
        if self.lifecycle is not Lifecycle.DAMAGED:
            try:
                self.save()
            except OSError as exc:
                logger.error("session %s: could not save metadata at shutdown: %s", self.name, exc)

    # -- the process --

    async def suspend(self) -> None:
        await self.stop_process(Lifecycle.SUSPENDED)

    async def stop_process(self, state: Lifecycle) -> None:
        """Stop the process if there is one and move to `state` (SUSPENDED or STOPPED)."""
        process, self.process = self.process, None
        # The state moves with the process slot, before the stop is awaited: a message arriving meanwhile finds a
        # session without a process and starts one (it must not find LIVE with no process).
        if self.lifecycle is not Lifecycle.DELETED:
            self._to(state)
        try:
            if process is not None:
                tasks = process.running_tasks
                await process.stop()
                self.own_schedules.stopped()
                logger.info("session %s %s", self.name, state)
                if tasks:
                    self._tell_stopped(tasks, state)
            self.save()
        finally:
            await self._rt.pool.changed()

    def _tell_stopped(self, tasks: tuple[TaskInfo, ...], state: Lifecycle) -> None:
        why = "was suspended" if state is Lifecycle.SUSPENDED else "was stopped"
        lines = "\n".join(f"• {task.description or task.task_id}" for task in tasks)
        text = f"⚙️ {self.name}: the session {why}, so its background task(s) were stopped:\n{lines}"
        logger.info("session %s: stopped %d background task(s) with the process", self.name, len(tasks))
        if self.home is None:
            logger.warning("session %s: no chat to tell that its background tasks were stopped", self.name)
            return
        self._rt.tell(self.home, text)

    async def keep_schedules_firing(self) -> None:
        """After the bot started: Claude's crons fire only while its process lives, so a session whose schedules a
        --resume brings back is started now (they fire with no message written); those that cannot come back are
        dropped and its home is told. BridgeError if Claude cannot be started."""
        async with self._start_lock:
            if self.process is not None or self.damage:  # adopted by a reload, or started by a message meanwhile
                return
            if not self.own_schedules.restorable():
                self._tell_lost(self.own_schedules.restarted())
                return
            logger.info("session %s: starting again so Claude's own schedules keep firing", self.name)
            waiting = "session %s waits for a live slot (MAX_LIVE_SESSIONS) to start for Claude's own schedules"
            async with self._rt.pool.slot(self, lambda: logger.warning(waiting, self.name)):
                await self._start()

    def _tell_lost(self, lost: tuple[ClaudeSchedule, ...]) -> None:
        """Claude's schedules that a restart of its process lost: one line for the session's home."""
        if not lost:
            return
        logger.info("session %s: %d of Claude's own schedule(s) lost in a restart", self.name, len(lost))
        if self.home is None:
            logger.warning("session %s: no chat to tell which of Claude's schedules were lost", self.name)
            return
        self._rt.tell(self.home, lost_text(self.name, lost))

    async def reread_settings(self) -> None:
        """The project's settings changed: restart the process (keeping its conversation) now if it is idle, else
        before its next message. Measured: 2.1.197 never re-reads a rule removed from settings.local.json."""
        if self.process is None:
            return
        if self.busy:
            self.restart_later()
        else:
            await self.suspend()

    async def keep_mode(self, mode: str) -> None:
        """Make `mode` the session's permission mode: kept, shown by /mode and /status, set on a live process."""
        self.meta.permission_mode = mode
        self.save()
        if self.live and self.process is not None:
            try:
                await self.process.set_permission_mode(mode)
            except BridgeError as exc:
                why = "restarting before its next turn"
                logger.info("session %s: set_permission_mode refused (%s); %s", self.name, exc, why)
                self.restart_later()

    async def stop_task(self, task_id: str) -> TaskInfo:
        """Stop one running background task by its id (or a unique prefix of it); SessionError if there is none."""
        matches = [task for task in self.running_tasks if task.task_id.startswith(task_id)] if task_id else []
        if self.process is None or len(matches) != 1:
            raise SessionError(f"No running background task {task_id!r} in session “{self.name}”. /tasks lists them.")
        await self.process.stop_task(matches[0].task_id)
        await self._rt.pool.changed()  # a session waiting for a live slot may now take this one
        return matches[0]

    async def _ensure_live(self, delivery: Delivery) -> ProcessLike:
        async with self._start_lock:
            return await self._make_live(delivery)

    async def _make_live(self, delivery: Delivery) -> ProcessLike:
        if self.process is not None and self.lifecycle is Lifecycle.RESTART_DUE:
            delivery.notice(f"Restarting session “{self.name}” with its new settings…")
            await self.claude_turns.wait()  # a restart waits for Claude's own turn as a message does
            await self.stop_process(Lifecycle.SUSPENDED)
        if self.process is not None and self.live:
            return self.process
        if self.process is not None:
            await self.stop_process(Lifecycle.SUSPENDED)  # it gave up after crashes: start afresh
        max_live = self._rt.pool.max_live
        waiting = f"All {max_live} live sessions are busy; your message starts as soon as one finishes."
        async with self._rt.pool.slot(self, lambda: delivery.notice(waiting)):
            process = await self._start()
        if self.permission_mode() == SKIPS_ASKING:  # said at every (re)start: nobody forgets it runs so
            delivery.notice(SKIPPING.format(name=self.name))
        return process

    async def _start(self) -> ProcessLike:
        trust_before_start(self._rt.base.env, self.directory)  # #21: so the project's kept rules hold
        process = self.new_process()
        # Set before start(): a shutdown during the start still finds and stops it.
        self.process = process
        self._to(Lifecycle.STARTING)
        try:
            await process.start()
            if self.lifecycle is Lifecycle.STARTING:  # new settings meanwhile leave it RESTART_DUE
                self._to(Lifecycle.LIVE)
            self.save()
            self._tell_lost(self.own_schedules.restarted())  # --resume brought back what it could
        except BaseException:
            if self.process is process:
                self.process = None
                self._to(Lifecycle.SUSPENDED)
            try:
                await process.stop()
            except Exception:
                logger.warning("session %s: cleaning up a failed start failed too", self.name, exc_info=True)
            raise
        return process

    def new_process(self) -> ProcessLike:
        """A process for this session with today's settings, not started (a reload adopts into it instead)."""
        hooks = ProcessHooks(self._on_status, self._on_claude_turn, self.requests.tools, self.requests.on_permission)
        return self._rt.spawn(self._options(), hooks)

    def _options(self) -> ProcessOptions:
        persona = self.persona()
        # Its own conversation by id (other sessions may share the folder); --continue only for an id we do not
        # know ("unknown" from older versions). No id at all: a fresh conversation.
        resume_id = self.meta.claude_session_id if is_session_id(self.meta.claude_session_id) else None
        unknown = bool(self.meta.claude_session_id) and not resume_id
        if resume_id or unknown:
            logger.info("session %s resumes %s", self.name, resume_id or "the folder's newest conversation")
        prompt = "\n\n".join(part for part in (persona.system_prompt, TOOLS_PROMPT) if part)
        return replace(
            self._rt.base,
            cwd=self.directory,
            model=self.effective_model(),
            append_system_prompt=prompt,
            mcp_config=mcp_config(),
            allowed_tools=self.requests.allowed_tools,
            max_turns=persona.max_turns,
            permission_mode=self.permission_mode(),
            continue_conversation=unknown,
            resume_id=resume_id,
            label=self.name,
            pid_file=self.state_dir / PID_FILE,
        )

    def _left_plan_mode(self) -> None:
        """Claude's plan was approved: the CLI leaves plan mode (§16.3), and a restart must not bring it back."""
        if self.meta.permission_mode == "plan":
            self.meta.permission_mode = "default"
            self.save()

    def _turn_place(self) -> Place | None:
        """Where the running turn's answer, prompts and files go: the message's place, else Claude's own turn's."""
        current = self.worker.current
        return current.place if current is not None else self._claude_place or self.home

    def _on_claude_turn(self, turn: Turn) -> None:
        """Claude started a turn by itself: show it where the work it reports was started (else the session's
        home), and keep its books."""
        place = self.origins.place_of(turn.tasks) or self.home
        if turn.header == CLAUDE_TURN_HEADER and (schedule := self.own_schedules.fired()) is not None:
            turn.header = fired_header(schedule)  # the CLI does not say; the one whose time just came
        self._claude_place, self._claude_turn = place, turn
        delivery = self.claude_delivery(turn, place)
        if place is None:
            logger.warning("session %s: Claude's own turn (%s) has no chat to go to", self.name, delivery.header)
        else:
            self._rt.front_end.show_claude_turn(delivery)
        self.relay_claude_turn(turn, delivery)

    def claude_delivery(self, turn: Turn, place: Place | None, entry_id: str = "") -> Delivery:
        """The delivery that shows Claude's own turn in `place` (None: nowhere, it runs unseen), under `entry_id` (a
        reload keeps the one the previous image showed it under)."""
        return Delivery.of_claude_turn(self.name, place, turn, entry_id)

    def relay_claude_turn(self, turn: Turn, delivery: Delivery) -> None:
        """Follow Claude's own turn to its end (shown by `delivery`, or running unseen) and book it like any other."""
        process = self.process

        def book(result: TurnResult) -> None:
            if turn is self._claude_turn:
                self._claude_place = self._claude_turn = None
            if process is not None and not self.deleted:
                self._book(process, turn, result)
                self._rt.limits.count_own_turn(self.name, result, process.last_limit)
                self.save()

        self.claude_turns.follow(turn, delivery, book)

    def _saw_init(self, started: SessionStarted, place: Place) -> None:
        """Claude's commands and skills as this `init` lists them; the place's menu follows them."""
        commands = ClaudeCommands(started.slash_commands, started.skills, started.terminal_slash_commands)
        if commands != self.claude_commands:
            known_commands.save(self.state_dir, commands)
        self.claude_commands = commands
        self._rt.front_end.show_commands(place, self.name, commands)

    def _on_status(self, status: ProcessStatus) -> None:
        logger.info("session %s: %s", self.name, status.message)
        if status.kind == "conversation_lost":
            self.meta.claude_session_id = ""
            self._tell_lost(self.own_schedules.restarted(resumed=False))
        elif status.kind == "crashed":
            self.own_schedules.stopped()
        elif status.kind == "recovered":
            self._tell_lost(self.own_schedules.restarted())
        if status.kind == "gave_up" and self.lifecycle in (Lifecycle.LIVE, Lifecycle.RESTART_DUE):
            self._to(Lifecycle.FAILED)
            try:
                self.save()
            except OSError as exc:
                logger.error("session %s: could not save metadata: %s", self.name, exc)
        current, place = self.worker.current, self._turn_place()
        # A crash and the restart after it reach the turn they cut (its view shows them in order with its other lines);
        # a notice from here would repeat them, out of order. A conversation lost at start, or giving up, happens
        # before any turn of the process exists: only this notice tells it.
        told_by_turn = status.kind in ("crashed", "recovered") and (current is not None or self.claude_busy)
        if status.kind not in ("crashed", "gave_up", "recovered", "conversation_lost") or told_by_turn:
            return
        if place is None:
            logger.warning("session %s: no chat to tell %s: %s", self.name, status.kind, status.message)
            return
        self._rt.tell(place, f"⚙️ {self.name}: {status.message}")

    # -- one message --

    async def deliver(self, delivery: Delivery) -> None:
        """Answer one message; whatever fails, the delivery ends with one result and the inbox marks it done."""
        progress = _Progress()
        try:
            resumed = self.resumed.get(delivery.entry_id)  # the answer to a message from before a reload
            if resumed is None:
                await self._rt.limits.clear_to_send(self.name, delivery.place)  # usage limit: hold the line
            try:
                process = await self._ensure_live(delivery) if resumed is None else resumed[0]
            except BridgeError as exc:  # worded by the process layer (ClaudeNotFound, ClaudeStartError)
                logger.error("session %s: could not start Claude: %s", self.name, exc)
                self._to(Lifecycle.FAILED)
                result = TurnResult(subtype=START_FAILED, is_error=True, text=str(exc))
            else:
                result = await self._answer(process, delivery, resumed[1] if resumed else None, progress)
            progress.stage = "save the session's state"
            await self._finish(delivery)
        except asyncio.CancelledError:
            cut_off = failure("The bot is shutting down; Claude's work on this message was cut off.", CANCELLED)
            delivery.finish(cut_off if progress.sent else SHUTDOWN_UNSENT)
            raise
        except Exception as exc:
            logger.exception("session %s: could not %s", self.name, progress.stage)
            result = failure(f"Could not {progress.stage}: {exc}. Your next message will try again.")
            with contextlib.suppress(OSError):
                await self.inbox.mark(delivery.entry_id, InboxOp.DONE)
        self.resumed.pop(delivery.entry_id, None)
        delivery.finish(result)

    async def _answer(
        self, process: ProcessLike, delivery: Delivery, resumed: Turn | None, progress: _Progress
    ) -> TurnResult:
        """Submit the message (or go on with its turn from before a reload); the delivery shows the turn. Again
        after the usage limit's reset if the limit refused it."""
        assert delivery.content is not None  # the worker hands over prepared deliveries only
        while True:
            progress.stage = "send the message to Claude"
            turn = process.submit(delivery.content) if resumed is None else resumed
            resumed = None  # a retry after the usage limit's reset is a turn of its own
            delivery.follow(turn)
            progress.sent = await _written(turn)
            if progress.sent:
                progress.stage = "record the message as sent"
                await self.inbox.mark(delivery.entry_id, InboxOp.SENT)
            progress.stage = "follow Claude's answer"
            result = await self._follow(turn, delivery.place)
            self._book(process, turn, result)
            if not await self._refused_by_limit(process, delivery, result):
                return result
            progress.sent = False
            await self._rt.limits.clear_to_send(self.name, delivery.place)

    async def _follow(self, turn: Turn, place: Place) -> TurnResult:
        """Read the turn alongside its view: its `init` for the place's menu, its tool_use blocks for the prompts
        (ExitPlanMode's request may need the plan from one); its TurnResult, which the caller passes on last."""
        async for event in turn.events():
            match event:
                case TurnResult():
                    return event
                case SessionStarted():
                    self._saw_init(event, place)
                case TaskStarted():
                    self.origins.started(event.task_id, place)  # Claude's turn about this task goes to this place
                case ToolUse():
                    self.own_schedules.saw(event)
                    await self._rt.prompts.saw(event)
                case ToolResult():
                    self.own_schedules.saw(event)
        raise BridgeError("the turn ended without a result")

    async def _refused_by_limit(self, process: ProcessLike, delivery: Delivery, result: TurnResult) -> bool:
        """Tell the limit keeper the turn ended; True if the usage limit refused it (it is then resent later)."""
        limits, place, last = self._rt.limits, delivery.place, process.last_limit
        refused = limits.refused(result, last)
        if refused and delivery.content is not None:  # back in the inbox first: a restart meanwhile sends it again
            await self.inbox.requeue(delivery.entry_id, place.chat_id, delivery.content, place.thread_id)
        await limits.after_turn(self.name, delivery.entry_id, place, result, last)
        return refused

    async def _finish(self, delivery: Delivery) -> None:
        self.save()
        await self.inbox.mark(delivery.entry_id, InboxOp.DONE)
        if not self.worker.queued:
            await self.inbox.compact(at_least=COMPACT_AT)

    def _book(self, process: ProcessLike, turn: Turn, result: TurnResult) -> None:
        meta = self.meta
        meta.turns += 1
        meta.total_cost_usd = round(meta.total_cost_usd + result.cost_usd, 6)
        meta.claude_session_id = process.session_id or result.session_id or meta.claude_session_id
        meta.last_active = self._rt.clock()
        meta.last_timings = {
            "spawn_to_init": turn.timings.spawn_to_init,
            "send_to_first_text": turn.timings.send_to_first_text,
            "send_to_result": turn.timings.send_to_result,
        }


@dataclass
class _Progress:
    """How far one message got: what the bot was doing (for the error it words), and whether Claude has it."""

    stage: str = "start Claude"
    sent: bool = False


async def _written(turn: Turn) -> bool:
    """Wait until the message is written to Claude (True) or its turn ended without that (False)."""
    waits = [asyncio.ensure_future(turn.written.wait()), asyncio.ensure_future(turn.done.wait())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
    return turn.written.is_set()
