"""Named sessions: directories, metadata, personas, models, the durable per-session queue and the idle policy.

It knows sessions, not Telegram and not the CLI's JSON: front ends (bot.py, console.py) call it, and it drives
one process per live session through the factory it is given, so tests can pass a fake process and a fake clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from claude_bridge.errors import BridgeError, SessionError
from claude_bridge.process.argv import ProcessOptions
from claude_bridge.process.reaping import reap_leftover
from claude_bridge.process.subprocess import ClaudeSubprocess
from claude_bridge.process.turns import Turn, TurnTimings
from claude_bridge.protocol.events import CANCELLED, START_FAILED, Event, ProcessStatus, TurnResult
from claude_bridge.sessions.store import (
    DEFAULT_PERSONA,
    NAME_RE,
    Content,
    Inbox,
    Metadata,
    Persona,
    load_personas,
    validate_model,
    validate_name,
    write_json_atomic,
)
from claude_bridge.settings import Settings, cli_environment

logger = logging.getLogger(__name__)

MODEL_ALIASES = ("sonnet", "opus", "haiku")
DEFAULT_SESSION = "default"


# ---- what callers see ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Notice:
    """A sentence from the manager for the chat (a session was created, resumed, is waiting, …)."""

    text: str


@dataclass(frozen=True)
class SessionInfo:
    """A session as /sessions and /status show it."""

    name: str
    state: str  # live | busy | suspended | failed
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

    def line(self, active: bool, now: float) -> str:
        """One line of /sessions."""
        queued = f", {self.queued} queued" if self.queued else ""
        return (
            f"{'▶️' if active else '•'} {self.name} — {self.state}{queued}; {self.persona}, {self.model}; "
            f"{self.turns} turns, ${self.total_cost_usd:.4f}; active {ago(now - self.last_active)}"
        )

    def describe(self, now: float) -> str:
        """What /status shows."""
        timings = self.last_timings
        lines = [
            f"Session: {self.name} ({self.state}{', pid ' + str(self.pid) if self.pid else ''})",
            f"Persona: {self.persona} · permissions: {self.permission_mode}",
            f"Model: {self.model}{' (override)' if self.model_override else ''}",
            f"Queued: {self.queued}",
            f"Turns: {self.turns} · cost: ${self.total_cost_usd:.4f}",
            f"Last active: {ago(now - self.last_active)}",
            "Last turn: start {} · first text {} · answer {}".format(
                *(_seconds(timings.get(key)) for key in ("spawn_to_init", "send_to_first_text", "send_to_result"))
            ),
        ]
        if self.claude_session_id:
            lines.append(f"Claude session: {self.claude_session_id}")
        return "\n".join(lines)


def ago(seconds: float) -> str:
    """A short human duration in the past: "40 s ago", "5 min ago", "3 h ago", "2 d ago"."""
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 129600:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86400:.0f} d ago"


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f} s"


class Delivery:
    """One accepted message: notices first, then its turn's events, ending with one TurnResult."""

    def __init__(self, session: str, chat_id: int, content: Content, entry_id: str, position: int) -> None:
        self.session = session
        self.chat_id = chat_id
        self.content = content
        self.entry_id = entry_id
        self.position = position
        self.result: TurnResult | None = None
        self._queue: asyncio.Queue[Event | Notice | Turn] = asyncio.Queue()
        self.done = asyncio.Event()

    def notice(self, text: str) -> None:
        self._queue.put_nowait(Notice(text))

    def attach(self, turn: Turn) -> None:
        self._queue.put_nowait(turn)

    def finish(self, result: TurnResult) -> None:
        self._queue.put_nowait(result)

    async def events(self) -> AsyncIterator[Event | Notice]:
        """Yield notices and the turn's events, up to and including its TurnResult."""
        while True:
            item = await self._queue.get()
            if isinstance(item, Turn):
                async for event in item.events():
                    if isinstance(event, TurnResult):
                        # Bookkeeping (inbox, metadata) is finished before anyone sees the end of the turn.
                        await self.done.wait()
                    yield event
                return
            if isinstance(item, TurnResult):
                await self.done.wait()
                yield item
                return
            yield item


class ProcessLike(Protocol):
    """What the manager needs of a Claude process (ClaudeSubprocess, or a fake in tests)."""

    session_id: str
    last_timings: TurnTimings

    @property
    def alive(self) -> bool: ...
    @property
    def busy(self) -> bool: ...
    @property
    def pid(self) -> int | None: ...
    @property
    def failed(self) -> bool: ...
    async def start(self) -> None: ...
    def submit(self, content: Content) -> Turn: ...
    async def interrupt(self) -> bool: ...
    async def set_model(self, model: str | None) -> None: ...
    async def stop(self) -> None: ...


Spawner = Callable[[ProcessOptions, Callable[[ProcessStatus], None]], ProcessLike]
Notifier = Callable[[int, str], Awaitable[None]]


@dataclass
class _Session:
    meta: Metadata
    directory: Path
    inbox: Inbox
    process: ProcessLike | None = None
    waiting: asyncio.Queue[Delivery] = field(default_factory=asyncio.Queue)
    current: Delivery | None = None
    worker: asyncio.Task[None] | None = None
    restart_pending: bool = False
    last_chat_id: int | None = None
    accepting: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def busy(self) -> bool:
        return self.current is not None or not self.waiting.empty()

    @property
    def live(self) -> bool:
        # A process that is restarting after a crash still counts: it keeps its queue and comes back.
        return self.process is not None and not self.process.failed


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
    ) -> None:
        self.sessions_dir = sessions_dir
        self.sessions_dir.mkdir(parents=True, exist_ok=True)
        self._root = self.sessions_dir.resolve()
        self.personas = personas if personas is not None else {DEFAULT_PERSONA: Persona(DEFAULT_PERSONA, "", "")}
        self._spawn = spawn
        self._base = base_options
        self._clock = clock
        self.idle_after = idle_after
        self.max_live = max_live
        self.notify = notify
        self._sessions: dict[str, _Session] = {}
        self._chats_path = self.sessions_dir / "chats.json"
        self._chats: dict[str, str] = self._load_chats()
        self._capacity = asyncio.Condition()
        self._spawn_lock = asyncio.Lock()
        self._scheduler: Any = None
        self._closed = False
        self._notices: set[asyncio.Task[None]] = set()

    # -- lifecycle --

    def start_scheduler(self, interval: float | None = None) -> None:
        """Run suspend_idle() periodically on an APScheduler job owned by the manager."""
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        self._scheduler = AsyncIOScheduler()
        every = interval or max(5.0, min(60.0, self.idle_after / 4))
        self._scheduler.add_job(self.suspend_idle, "interval", seconds=every, id="suspend-idle", coalesce=True)
        self._scheduler.start()

    def reap_leftovers(self) -> list[int]:
        """Stop CLI processes a previous run left behind (a pid file per live session)."""
        stopped = []
        for pid_file in self.sessions_dir.glob("*/claude.pid"):
            with contextlib.suppress(ValueError, OSError):
                pid = int(pid_file.read_text().strip())
                if reap_leftover(pid, self._base.claude_bin):
                    stopped.append(pid)
            pid_file.unlink(missing_ok=True)
        return stopped

    async def recover(self) -> list[Delivery]:
        """After a restart: re-deliver messages never sent, in order; report the ones a restart cut off."""
        deliveries: list[Delivery] = []
        for directory in sorted(p for p in self.sessions_dir.iterdir() if p.is_dir() and NAME_RE.fullmatch(p.name)):
            session = self._get(directory.name)
            entries = session.inbox.read()
            for entry in entries:
                if entry.state == "sent":
                    await self._tell(
                        entry.chat_id,
                        f"⚠️ The bot restarted while Claude was working on your message “{_excerpt(entry.content)}” "
                        f"in session {directory.name}. It was cut off and not re-sent (its tools may have run).",
                    )
                    await session.inbox.mark(entry.id, "done")
            pending = [entry for entry in entries if entry.state == "queued"]
            for chat_id in dict.fromkeys(entry.chat_id for entry in pending):
                count = sum(1 for entry in pending if entry.chat_id == chat_id)
                await self._tell(
                    chat_id,
                    f"↻ Delivering {count} message(s) to session {directory.name} that arrived before the restart.",
                )
            for entry in pending:
                delivery = Delivery(directory.name, entry.chat_id, entry.content, entry.id, session.waiting.qsize())
                self._enqueue(session, delivery)
                deliveries.append(delivery)
            if not pending:
                await session.inbox.compact()
        return deliveries

    async def close_all(self, timeout: float = 20.0) -> None:
        """Stop every live session in parallel (bounded), flush metadata."""
        self._closed = True
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        sessions = list(self._sessions.values())
        for session in sessions:
            if session.worker is not None:
                session.worker.cancel()
        stops = [self._stop_process(session, "stopped") for session in sessions if session.process is not None]
        if stops:
            _, pending = await asyncio.wait([asyncio.ensure_future(s) for s in stops], timeout=timeout)
            for task in pending:
                task.cancel()
        for session in sessions:
            if session.worker is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await session.worker
                session.worker = None
            for delivery in [session.current, *_drain(session.waiting)]:
                if delivery is not None and not delivery.done.is_set():
                    delivery.finish(
                        TurnResult(
                            subtype=CANCELLED,
                            is_error=True,
                            text="The bot is shutting down; this message will be delivered after it restarts.",
                        )
                    )
                    delivery.done.set()
            self._save(session)
        for task in list(self._notices):
            task.cancel()
        logger.info("all sessions closed")

    # -- chats --

    def _load_chats(self) -> dict[str, str]:
        try:
            raw = json.loads(self._chats_path.read_text(encoding="utf-8"))
            return {str(k): str(v) for k, v in raw.items() if NAME_RE.fullmatch(str(v))}
        except FileNotFoundError:
            return {}
        except (ValueError, AttributeError, OSError) as exc:
            logger.error("chats.json is unreadable (%s); chats start without an active session", exc)
            return {}

    def active_session(self, chat_id: int) -> str | None:
        """The chat's active session name, if it has one that still exists."""
        name = self._chats.get(str(chat_id))
        if name and (self.sessions_dir / name).is_dir():
            return name
        return None

    def _set_active(self, chat_id: int, name: str) -> None:
        self._chats[str(chat_id)] = name
        write_json_atomic(self._chats_path, self._chats)

    # -- sessions on disk --

    def _session_dir(self, name: str) -> Path:
        validate_name(name)
        path = self.sessions_dir / name
        if path.is_symlink() or (path.exists() and path.resolve().parent != self._root):
            raise SessionError(f"Session {name!r} is not a plain directory inside the sessions directory.")
        return path

    def exists(self, name: str) -> bool:
        return self._session_dir(name).is_dir()

    def _get(self, name: str) -> _Session:
        session = self._sessions.get(name)
        if session is not None:
            return session
        directory = self._session_dir(name)
        if not directory.is_dir():
            raise SessionError(f"No session named {name!r}. /sessions lists them; /new {name} creates it.")
        meta = self._load_meta(directory)
        session = _Session(meta=meta, directory=directory, inbox=Inbox(directory / "inbox.jsonl"))
        self._sessions[name] = session
        return session

    def _load_meta(self, directory: Path) -> Metadata:
        path = directory / "metadata.json"
        try:
            meta = Metadata.from_dict(json.loads(path.read_text(encoding="utf-8")), directory.name)
            if meta.persona not in self.personas:
                logger.warning("session %s: persona %r is gone; using default", directory.name, meta.persona)
                meta.persona = DEFAULT_PERSONA
            if meta.status in ("live", "busy"):
                meta.status = "suspended"  # the previous run ended without suspending it
            return meta
        except (FileNotFoundError, ValueError, TypeError, OSError) as exc:
            logger.error("session %s: metadata.json missing or corrupt (%s); rebuilding it", directory.name, exc)
            created = directory.stat().st_mtime
            meta = Metadata(name=directory.name, created=created, last_active=created, status="suspended")
            # A conversation may exist: --continue in a directory without one simply starts fresh.
            meta.claude_session_id = "unknown"
            write_json_atomic(path, asdict(meta))
            return meta

    def _save(self, session: _Session) -> None:
        write_json_atomic(session.directory / "metadata.json", asdict(session.meta))

    # -- operations --

    def create(self, name: str, persona: str = DEFAULT_PERSONA) -> SessionInfo:
        """Create a session directory with metadata and files/."""
        directory = self._session_dir(name)
        if persona not in self.personas:
            raise SessionError(f"Unknown persona {persona!r}. Personas: {', '.join(sorted(self.personas))}.")
        if directory.exists():
            raise SessionError(f"Session {name!r} already exists; /switch {name} to use it.")
        (directory / "files").mkdir(parents=True)
        now = self._clock()
        meta = Metadata(name=name, created=now, last_active=now, persona=persona)
        write_json_atomic(directory / "metadata.json", asdict(meta))
        logger.info("created session %s (persona %s)", name, persona)
        return self.status(name)

    def switch(self, chat_id: int, name: str) -> SessionInfo:
        """Make `name` the chat's active session."""
        self._get(name)
        self._set_active(chat_id, name)
        return self.status(name)

    def list_sessions(self) -> list[SessionInfo]:
        """Every session, most recently active first."""
        infos = []
        for directory in self.sessions_dir.iterdir():
            if directory.is_dir() and not directory.is_symlink() and NAME_RE.fullmatch(directory.name):
                infos.append(self.status(directory.name))
        return sorted(infos, key=lambda info: info.last_active, reverse=True)

    def files_dir(self, name: str) -> Path:
        """Where uploads for this session are saved."""
        path = self._get(name).directory / "files"
        path.mkdir(exist_ok=True)
        return path

    def status(self, name: str) -> SessionInfo:
        session = self._get(name)
        meta = session.meta
        if session.busy:
            state = "busy"
        elif session.live:
            state = "live"
        else:
            state = "failed" if meta.status == "failed" else "suspended"
        queued = session.waiting.qsize()
        persona = self.personas.get(meta.persona)
        return SessionInfo(
            name=name,
            state=state,
            queued=queued,
            persona=meta.persona,
            model=self.effective_model(name) or "CLI default",
            model_override=meta.model,
            permission_mode=self._permission_mode(meta, persona),
            last_active=meta.last_active,
            turns=meta.turns,
            total_cost_usd=meta.total_cost_usd,
            claude_session_id=meta.claude_session_id if meta.claude_session_id != "unknown" else "",
            last_timings=dict(meta.last_timings),
            pid=session.process.pid if session.process is not None and session.live else None,
        )

    def effective_model(self, name: str) -> str | None:
        """Session override > persona > CLI default (None)."""
        meta = self._get(name).meta
        persona = self.personas.get(meta.persona)
        return meta.model or (persona.model if persona else None)

    async def set_model(self, name: str, model: str | None) -> SessionInfo:
        """Override the session's model (None clears it); applied at once to a live process."""
        session = self._get(name)
        if model is not None:
            validate_model(model)
        session.meta.model = model
        self._save(session)
        if session.live and session.process is not None:
            try:
                await session.process.set_model(self.effective_model(name))
            except BridgeError as exc:
                logger.warning("session %s: set_model failed (%s); restarting before the next turn", name, exc)
                session.restart_pending = True
        return self.status(name)

    async def set_persona(self, name: str, persona: str) -> SessionInfo:
        """Change the persona; a live process restarts with the new prompt before the next turn."""
        session = self._get(name)
        if persona not in self.personas:
            raise SessionError(f"Unknown persona {persona!r}. Personas: {', '.join(sorted(self.personas))}.")
        session.meta.persona = persona
        self._save(session)
        if session.process is not None:
            session.restart_pending = True
        return self.status(name)

    async def interrupt(self, name: str) -> bool:
        """Stop the running turn of a session; queued messages continue. False if nothing was running."""
        session = self._get(name)
        if session.process is None or not session.process.busy:
            return False
        return await session.process.interrupt()

    async def delete(self, name: str) -> None:
        """Delete a session (refused while busy); the directory goes only after its process stopped."""
        session = self._get(name)
        if session.busy:
            raise SessionError(f"Session {name!r} is busy; /stop it first, then delete it.")
        await self._stop_process(session, "deleted")
        if session.worker is not None:
            session.worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await session.worker
        self._sessions.pop(name, None)
        shutil.rmtree(session.directory)
        self._chats = {chat: active for chat, active in self._chats.items() if active != name}
        write_json_atomic(self._chats_path, self._chats)
        logger.info("deleted session %s", name)

    async def send(self, chat_id: int, content: Content) -> Delivery:
        """Accept a message for the chat's active session: durably queued before this returns."""
        if self._closed:
            raise SessionError("The bot is shutting down; send your message again in a moment.")
        notice = ""
        name = self.active_session(chat_id)
        if name is None:
            name = DEFAULT_SESSION
            if self._session_dir(name).is_dir():
                notice = f"Using session “{name}”. /sessions lists all, /new makes another."
            else:
                self.create(name)
                notice = f"Created session “{name}” and made it active. /new makes another, /switch changes."
            self._set_active(chat_id, name)
        session = self._get(name)
        session.last_chat_id = chat_id
        session.meta.last_active = self._clock()
        # The inbox order is the delivery order: concurrent sends must not overtake each other here.
        async with session.accepting:
            ahead = session.waiting.qsize() + (1 if session.current is not None else 0)
            entry_id = await session.inbox.add(chat_id, content)
            delivery = Delivery(name, chat_id, content, entry_id, ahead)
            if notice:
                delivery.notice(notice)
            self._enqueue(session, delivery)
        return delivery

    def _enqueue(self, session: _Session, delivery: Delivery) -> None:
        session.waiting.put_nowait(delivery)
        if session.worker is None or session.worker.done():
            session.worker = asyncio.create_task(self._work(session), name=f"session-{session.meta.name}")

    # -- the per-session worker: strictly one message at a time, in arrival order --

    async def _work(self, session: _Session) -> None:
        while True:
            delivery = await session.waiting.get()
            session.current = delivery
            try:
                await self._deliver(session, delivery)
            finally:
                session.current = None
                delivery.done.set()
                async with self._capacity:
                    self._capacity.notify_all()

    async def _deliver(self, session: _Session, delivery: Delivery) -> None:
        try:
            process = await self._ensure_live(session, delivery)
        except BridgeError as exc:
            logger.error("session %s: could not start Claude: %s", session.meta.name, exc)
            session.meta.status = "failed"
            self._save(session)
            result = TurnResult(subtype=START_FAILED, is_error=True, text=str(exc))
            delivery.result = result
            delivery.finish(result)
            await session.inbox.mark(delivery.entry_id, "done")
            return
        turn = process.submit(delivery.content)
        delivery.attach(turn)
        await turn.written.wait()
        await session.inbox.mark(delivery.entry_id, "sent")
        result = await turn.wait()
        delivery.result = result
        await session.inbox.mark(delivery.entry_id, "done")
        meta = session.meta
        meta.turns += 1
        meta.total_cost_usd = round(meta.total_cost_usd + result.cost_usd, 6)
        meta.claude_session_id = process.session_id or result.session_id or meta.claude_session_id
        meta.last_active = self._clock()
        meta.last_timings = {
            "spawn_to_init": turn.timings.spawn_to_init,
            "send_to_first_text": turn.timings.send_to_first_text,
            "send_to_result": turn.timings.send_to_result,
        }
        meta.status = "live" if process.alive else "suspended"
        self._save(session)
        if session.waiting.empty():
            await session.inbox.compact()

    async def _ensure_live(self, session: _Session, delivery: Delivery) -> ProcessLike:
        name = session.meta.name
        if session.process is not None and session.restart_pending:
            delivery.notice(f"Restarting session “{name}” with its new settings…")
            await self._stop_process(session, "suspended")
        if session.process is not None and not session.process.failed:
            return session.process
        if session.process is not None:
            await self._stop_process(session, "suspended")  # it gave up after crashes: start afresh
        async with self._spawn_lock:
            told = False
            while self._live_count() >= self.max_live:
                victim = self._least_recently_used_idle(exclude=session)
                if victim is not None:
                    logger.info("live-session cap %d reached: suspending %s", self.max_live, victim.meta.name)
                    await self._stop_process(victim, "suspended")
                    continue
                if not told:
                    delivery.notice(
                        f"All {self.max_live} live sessions are busy; your message starts as soon as one finishes."
                    )
                    told = True
                async with self._capacity:
                    await self._capacity.wait()
            resuming = bool(session.meta.claude_session_id)
            if resuming and session.meta.status == "suspended":
                logger.info("resuming session %s with --continue", name)
            process = self._spawn(self._options_for(session, resuming), self._status_handler(session))
            session.process = process
            session.restart_pending = False
            try:
                await process.start()
            except BridgeError:
                session.process = None
                raise
            session.meta.status = "live"
            self._save(session)
            return process

    def _options_for(self, session: _Session, resuming: bool) -> ProcessOptions:
        meta = session.meta
        persona = self.personas.get(meta.persona) or self.personas[DEFAULT_PERSONA]
        return replace(
            self._base,
            cwd=session.directory,
            model=self.effective_model(meta.name),
            append_system_prompt=persona.system_prompt or None,
            max_turns=persona.max_turns,
            permission_mode=self._permission_mode(meta, persona),
            continue_conversation=resuming,
            label=meta.name,
            pid_file=session.directory / "claude.pid",
        )

    def _permission_mode(self, meta: Metadata, persona: Persona | None) -> str:
        return meta.permission_mode or (persona.permission_mode if persona else None) or "default"

    def _status_handler(self, session: _Session) -> Callable[[ProcessStatus], None]:
        def handle(status: ProcessStatus) -> None:
            logger.info("session %s: %s", session.meta.name, status.message)
            if status.kind == "gave_up":
                session.meta.status = "failed"
                self._save(session)
            chat_id = session.current.chat_id if session.current else session.last_chat_id
            # A crash mid-turn is already told by that turn's own error; say it here only for an idle session.
            told_by_turn = status.kind == "crashed" and session.current is not None
            if chat_id is not None and not told_by_turn and status.kind in ("crashed", "gave_up", "recovered"):
                task = asyncio.get_running_loop().create_task(
                    self._tell(chat_id, f"⚙️ {session.meta.name}: {status.message}")
                )
                self._notices.add(task)
                task.add_done_callback(self._notices.discard)

        return handle

    def _live_count(self) -> int:
        return sum(1 for session in self._sessions.values() if session.live)

    def _least_recently_used_idle(self, exclude: _Session) -> _Session | None:
        idle = [s for s in self._sessions.values() if s is not exclude and s.live and not s.busy]
        return min(idle, key=lambda s: s.meta.last_active, default=None)

    async def _stop_process(self, session: _Session, status: str) -> None:
        process, session.process = session.process, None
        if process is not None:
            await process.stop()
            logger.info("session %s %s", session.meta.name, status)
        session.meta.status = status
        self._save(session)
        async with self._capacity:
            self._capacity.notify_all()

    async def suspend_idle(self) -> list[str]:
        """Suspend every live session idle longer than idle_after; the next message resumes it."""
        now = self._clock()
        suspended = []
        for session in list(self._sessions.values()):
            if session.live and not session.busy and now - session.meta.last_active > self.idle_after:
                await self._stop_process(session, "suspended")
                suspended.append(session.meta.name)
        return suspended

    async def _tell(self, chat_id: int, text: str) -> None:
        if self.notify is None:
            logger.info("notice for chat %s: %s", chat_id, text)
            return
        try:
            await self.notify(chat_id, text)
        except Exception:
            logger.exception("could not notify chat %s", chat_id)


def _drain(queue: asyncio.Queue[Delivery]) -> Iterable[Delivery]:
    while not queue.empty():
        yield queue.get_nowait()


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
        spawn=lambda options, on_status: ClaudeSubprocess(options, on_status),
        base_options=base,
        personas=personas,
        idle_after=settings.idle_timeout_seconds,
        max_live=settings.max_live_sessions,
        notify=notify,
    )
