"""The sessions façade: SessionManager composes the parts, each owning one job and tested alone.

store.py (sessions on disk, personas), inbox.py (the durable queue), routes.py (chat → active session),
pool.py (the live-process cap, LRU and idle suspension), worker.py (the per-session queue, Delivery) and
session.py (one session's process and books). It knows sessions, not Telegram and not the CLI's JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from claude_bridge.errors import BridgeError, SessionError
from claude_bridge.process.argv import ProcessOptions
from claude_bridge.process.reaping import reap_leftover
from claude_bridge.process.subprocess import ClaudeSubprocess
from claude_bridge.protocol.events import TurnResult
from claude_bridge.sessions.inbox import Content, EntryState, InboxOp
from claude_bridge.sessions.pool import LivePool
from claude_bridge.sessions.prompts import PromptBoard
from claude_bridge.sessions.routes import ChatRoutes
from claude_bridge.sessions.session import ProcessLike, Runtime, Session, SessionState, Spawner
from claude_bridge.sessions.store import (
    DEFAULT_PERSONA,
    MetaStatus,
    Persona,
    SessionStore,
    load_personas,
    validate_model,
)
from claude_bridge.sessions.tools import FileSink
from claude_bridge.sessions.worker import Delivery, Notice
from claude_bridge.settings import Settings, cli_environment

__all__ = [
    "DEFAULT_SESSION",
    "MODEL_ALIASES",
    "USER_MODES",
    "Delivery",
    "Notice",
    "ProcessLike",
    "SessionInfo",
    "SessionManager",
    "SessionState",
    "Spawner",
    "build_manager",
]

logger = logging.getLogger(__name__)

MODEL_ALIASES = ("sonnet", "opus", "haiku")
# The permission modes /mode offers: ask first (default), accept edits, plan only, skip every prompt.
USER_MODES = ("default", "acceptEdits", "plan", "bypassPermissions")
PROMPT_ANSWER = "prompt_answer"  # the result subtype of a typed message that answered a waiting prompt
DEFAULT_SESSION = "default"

Notifier = Callable[[int, str], Awaitable[None]]


@dataclass(frozen=True)
class SessionInfo:
    """The facts about a session; the command layer words them for /sessions and /status."""

    name: str
    state: SessionState
    queued: int
    persona: str
    model: str
    model_override: str | None
    permission_mode: str
    last_active: float
    turns: int
    total_cost_usd: float
    claude_session_id: str
    last_timings: dict[str, float | None]
    pid: int | None


class SessionManager:
    """Owns every session under `sessions_dir` and at most `max_live` live Claude processes."""

    def __init__(
        self,
        sessions_dir: Path,
        *,
        spawn: Spawner,
        base_options: ProcessOptions,
        personas: dict[str, Persona] | None = None,
        clock: Callable[[], float] = time.time,
        idle_after: float = 1800.0,
        max_live: int = 4,
        notify: Notifier | None = None,
        upload_limit: int = 50 * 1024 * 1024,
        prompts: PromptBoard | None = None,
    ) -> None:
        self.sessions_dir = sessions_dir
        self.personas = personas if personas is not None else {DEFAULT_PERSONA: Persona(DEFAULT_PERSONA, "", "")}
        self.notify = notify
        self.file_sink: FileSink | None = None  # the front end's way to deliver files Claude sends (send_file)
        self._clock = clock
        self.prompts = prompts or PromptBoard()  # Claude's questions waiting for the human; the front end shows them
        self._store = SessionStore(sessions_dir, self.personas)
        self._routes = ChatRoutes(sessions_dir / "chats.json", self._store.exists)
        self._sessions: dict[str, Session] = {}
        self._pool = LivePool(
            lambda: list(self._sessions.values()), max_live=max_live, idle_after=idle_after, clock=clock
        )
        self._runtime = Runtime(
            self._store,
            self._pool,
            spawn,
            base_options,
            clock,
            self._tell_soon,
            file_sink=lambda: self.file_sink,
            upload_limit=upload_limit,
            prompts=self.prompts,
        )
        self._scheduler: Any = None
        self._closed = False
        self._notices: set[asyncio.Task[None]] = set()

    @property
    def idle_after(self) -> float:
        return self._pool.idle_after

    @property
    def max_live(self) -> int:
        return self._pool.max_live

    # -- lifecycle --

    def start_scheduler(self, interval: float | None = None) -> None:
        """Run suspend_idle() periodically on an APScheduler job owned by the manager."""
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        self._scheduler = AsyncIOScheduler()
        every = interval or max(5.0, min(60.0, self.idle_after / 4))
        self._scheduler.add_job(self.suspend_idle, "interval", seconds=every, id="suspend-idle", coalesce=True)
        self._scheduler.start()

    async def suspend_idle(self) -> list[str]:
        """Suspend every live session idle longer than idle_after; the next message resumes it."""
        return await self._pool.suspend_idle()

    def reap_leftovers(self) -> list[int]:
        """Stop CLI processes a previous run left behind (a pid file per live session)."""
        stopped = []
        for pid_file in self.sessions_dir.glob("*/claude.pid"):
            with contextlib.suppress(ValueError, OSError):
                pid = int(pid_file.read_text().strip())
                if reap_leftover(pid, self._runtime.base.claude_bin):
                    stopped.append(pid)
            pid_file.unlink(missing_ok=True)
        return stopped

    async def recover(self) -> list[Delivery]:
        """After a restart: re-deliver messages never sent, in order; report the ones a restart cut off."""
        deliveries: list[Delivery] = []
        for name in self._store.names():
            session = self._get(name)
            entries = session.inbox.read()
            for entry in entries:
                if entry.state == EntryState.SENT:
                    await self._tell(
                        entry.chat_id,
                        f"⚠️ The bot restarted while Claude was working on your message “{_excerpt(entry.content)}” "
                        f"in session {name}. It was cut off and not re-sent (its tools may have run).",
                    )
                    await session.inbox.mark(entry.id, InboxOp.DONE)
            pending = [entry for entry in entries if entry.state == EntryState.QUEUED]
            for chat_id in dict.fromkeys(entry.chat_id for entry in pending):
                count = sum(1 for entry in pending if entry.chat_id == chat_id)
                await self._tell(
                    chat_id, f"↻ Delivering {count} message(s) to session {name} that arrived before the restart."
                )
            for entry in pending:
                delivery = Delivery(name, entry.chat_id, entry.content, entry.id, session.worker.ahead())
                session.worker.accept(delivery)
                deliveries.append(delivery)
            if not pending:
                await session.inbox.compact()
        return deliveries

    async def close_all(self, timeout: float = 20.0) -> None:
        """End every delivery with a result, stop every live session in parallel (bounded), flush metadata."""
        self._closed = True
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        sessions = list(self._sessions.values())
        # Workers first: a worker left running would start the next queued message as its process stops.
        await asyncio.gather(*(session.worker.close() for session in sessions))
        stops = [asyncio.ensure_future(s.stop_process(MetaStatus.STOPPED)) for s in sessions if s.process]
        if stops:
            _, pending = await asyncio.wait(stops, timeout=timeout)
            for task in pending:
                logger.warning("a session did not stop within %.0f s", timeout)
                task.cancel()
            await asyncio.gather(*stops, return_exceptions=True)
        for session in sessions:
            try:
                session.save()
            except OSError as exc:
                logger.error("session %s: could not save metadata at shutdown: %s", session.name, exc)
        notices = list(self._notices)
        for notice in notices:
            notice.cancel()
        await asyncio.gather(*notices, return_exceptions=True)
        logger.info("all sessions closed")

    # -- chats --

    def active_session(self, chat_id: int) -> str | None:
        """The chat's active session name, if it has one that still exists."""
        return self._routes.get(chat_id)

    def ensure_active(self, chat_id: int) -> tuple[str, str | None]:
        """The chat's active session, creating or adopting "default" as a first message does (+ the notice, or None)."""
        name = self._routes.get(chat_id)
        if name is not None:
            return name, None
        name = DEFAULT_SESSION
        if self._store.exists(name):
            notice = f"Using session “{name}”. /sessions lists all, /new makes another."
        else:
            self.create(name)
            notice = f"Created session “{name}” and made it active. /new makes another, /switch changes."
        self._routes.set(chat_id, name)
        return name, notice

    def switch(self, chat_id: int, name: str) -> SessionInfo:
        """Make `name` the chat's active session."""
        self._get(name)
        self._routes.set(chat_id, name)
        return self.status(name)

    # -- sessions --

    def exists(self, name: str) -> bool:
        return self._store.exists(name)

    def _get(self, name: str) -> Session:
        session = self._sessions.get(name)
        if session is None:
            session = Session(self._store.load(name), self._runtime)
            self._sessions[name] = session
        return session

    def create(self, name: str, persona: str = DEFAULT_PERSONA) -> SessionInfo:
        """Create a session directory with metadata and files/."""
        self._store.create(name, persona, self._clock())
        return self.status(name)

    def list_sessions(self) -> list[SessionInfo]:
        """Every session, most recently active first."""
        infos = [self.status(name) for name in self._store.names()]
        return sorted(infos, key=lambda info: info.last_active, reverse=True)

    def files_dir(self, name: str) -> Path:
        """Where uploads for this session are saved."""
        path = self._get(name).directory / "files"
        path.mkdir(exist_ok=True)
        return path

    def status(self, name: str) -> SessionInfo:
        session = self._get(name)
        meta = session.meta
        return SessionInfo(
            name=name,
            state=session.state,
            queued=session.worker.queued,
            persona=meta.persona,
            model=session.effective_model() or "CLI default",
            model_override=meta.model,
            permission_mode=session.permission_mode(),
            last_active=meta.last_active,
            turns=meta.turns,
            total_cost_usd=meta.total_cost_usd,
            claude_session_id=meta.claude_session_id if meta.claude_session_id != "unknown" else "",
            last_timings=dict(meta.last_timings),
            pid=session.process.pid if session.process is not None and session.live else None,
        )

    def effective_model(self, name: str) -> str | None:
        """Session override > persona > CLI default (None)."""
        return self._get(name).effective_model()

    async def set_model(self, name: str, model: str | None) -> SessionInfo:
        """Override the session's model (None clears it); applied at once to a live process."""
        session = self._get(name)
        if model is not None:
            validate_model(model)
        session.meta.model = model
        session.save()
        if session.live and session.process is not None:
            try:
                await session.process.set_model(session.effective_model())
            except BridgeError as exc:
                logger.warning("session %s: set_model failed (%s); restarting before the next turn", name, exc)
                session.restart_pending = True
        return self.status(name)

    async def set_persona(self, name: str, persona: str) -> SessionInfo:
        """Change the persona; a live process restarts with the new prompt before the next turn."""
        session = self._get(name)
        self._store.check_persona(persona)
        session.meta.persona = persona
        session.save()
        if session.process is not None:
            session.restart_pending = True
        return self.status(name)

    async def set_permission_mode(self, name: str, mode: str) -> SessionInfo:
        """Set and keep the session's permission mode: live if the CLI takes it, else by a restart keeping history."""
        if mode not in USER_MODES:
            raise SessionError(f"Unknown permission mode {mode!r}; one of {', '.join(USER_MODES)}.")
        session = self._get(name)
        session.meta.permission_mode = mode
        session.save()
        if session.live and session.process is not None:
            try:
                await session.process.set_permission_mode(mode)
            except BridgeError as exc:
                logger.info("session %s: set_permission_mode refused (%s); restarting before the next turn", name, exc)
                session.restart_pending = True
        return self.status(name)

    async def interrupt(self, name: str) -> bool:
        """Stop the running turn of a session and cancel its waiting prompts; queued messages continue.

        False if nothing was running.
        """
        session = self._get(name)
        cancelled = self.prompts.cancel_session(name, "stopped with /stop")
        if session.process is None or not session.process.busy:
            return cancelled > 0
        return await session.process.interrupt() or cancelled > 0

    async def delete(self, name: str) -> None:
        """Delete a session (refused while a message is accepted); the folder goes only after its process stopped."""
        session = self._get(name)
        async with session.lock:
            if session.busy:
                raise SessionError(f"Session {name!r} is busy; /stop it first, then delete it.")
            session.deleted = True
            try:
                await session.stop_process(MetaStatus.STOPPED)
                await session.worker.close()
                self._store.remove(name)
            finally:
                self._sessions.pop(name, None)
            self._routes.forget(name)
        logger.info("deleted session %s", name)

    async def send(self, chat_id: int, content: Content) -> Delivery:
        """Accept a message for the chat's active session: durably queued before this returns."""
        if self._closed:
            raise SessionError("The bot is shutting down; send your message again in a moment.")
        name, notice = self.ensure_active(chat_id)
        session = self._get(name)
        if isinstance(content, str) and (prompt := self.prompts.typed(name, content)) is not None:
            return _answered_prompt(name, chat_id, content, prompt.outcome or "✍️ Noted; answer the next question.")
        # One at a time per session: the inbox order is the delivery order, and delete cannot cut in.
        async with session.lock:
            if session.deleted:
                raise SessionError(
                    f"Session “{name}” was deleted while your message was on its way; it was not sent. "
                    "Send it again to use another session."
                )
            if self._closed:
                raise SessionError("The bot is shutting down; send your message again in a moment.")
            session.last_chat_id = chat_id
            session.meta.last_active = self._clock()
            entry_id = await session.inbox.add(chat_id, content)
            delivery = Delivery(name, chat_id, content, entry_id, session.worker.ahead())
            if notice:
                delivery.notice(notice)
            session.worker.accept(delivery)
        return delivery

    # -- notices outside a delivery --

    def _tell_soon(self, chat_id: int, text: str) -> None:
        task = asyncio.get_running_loop().create_task(self._tell(chat_id, text))
        self._notices.add(task)
        task.add_done_callback(self._notices.discard)

    async def _tell(self, chat_id: int, text: str) -> None:
        if self.notify is None:
            logger.info("notice for chat %s: %s", chat_id, text)
            return
        try:
            await self.notify(chat_id, text)
        except Exception:
            logger.exception("could not notify chat %s", chat_id)


def _answered_prompt(name: str, chat_id: int, content: Content, outcome: str) -> Delivery:
    """A typed message that answered a waiting prompt instead of becoming a turn: already finished."""
    delivery = Delivery(name, chat_id, content, entry_id="", position=0)
    delivery.finish(
        TurnResult(subtype=PROMPT_ANSWER, is_error=False, text=f"↩️ Sent to Claude as your answer. {outcome}")
    )
    return delivery


def _excerpt(content: Content, limit: int = 60) -> str:
    if isinstance(content, str):
        text = content
    else:
        text = " ".join(str(block.get("text", "")) for block in content if isinstance(block, dict))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def build_manager(settings: Settings, claude_bin: Path, notify: Any = None) -> SessionManager:
    """The session manager with real Claude processes."""
    personas, _ = load_personas(settings.personas_dir)
    base = ProcessOptions(
        claude_bin=claude_bin,
        cwd=settings.sessions_dir,
        env=cli_environment(settings),
        watchdog_seconds=settings.watchdog_seconds,
    )
    return SessionManager(
        settings.sessions_dir,
        spawn=lambda options, hooks: ClaudeSubprocess(
            options,
            hooks.on_status,
            on_claude_turn=hooks.on_claude_turn,
            on_control_request=hooks.on_control_request,
        ),
        base_options=base,
        personas=personas,
        idle_after=settings.idle_timeout_seconds,
        max_live=settings.max_live_sessions,
        notify=notify,
        upload_limit=int(settings.max_upload_mb * 1024 * 1024),
        prompts=PromptBoard(
            remind_after=settings.prompt_reminder_minutes * 60,
            timeout=settings.prompt_timeout_minutes * 60 if settings.prompt_timeout_minutes else None,
        ),
    )
