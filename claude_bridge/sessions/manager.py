"""The sessions façade: SessionManager routes messages to sessions and names topics' sessions, reaps leftover
CLIs, replays the inbox after a restart and takes messages; the parts do the rest, each owning one job:

store.py (sessions on disk, personas), inbox.py (the durable queue), routes.py (chat → active session, topic names),
pool.py (the live-process cap, LRU and idle suspension), worker.py (a session's one line of messages, Delivery),
session.py (one session's process, notices and books; its one state in lifecycle.py), claude_requests.py (what the
CLI asks of a session), claude_turns.py (Claude's own turns), info.py (what front ends read), factory.py (real
processes), handover.py (a reload), limit_keeper.py (the usage limit). It knows sessions, not Telegram and not the
CLI's JSON. It is over 500 lines because it has one method per thing a front end can ask (send, create, switch,
/model, /mode, /resume, /tasks, delete, …), each a few lines delegating to the parts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from claude_bridge.errors import BridgeError, SessionError
from claude_bridge.process.argv import ProcessOptions
from claude_bridge.process.handover import HandoverError
from claude_bridge.process.reaping import reap_adopted, reap_leftovers
from claude_bridge.protocol.events import TaskInfo, TurnResult
from claude_bridge.runtime import cannot_write
from claude_bridge.sessions.file_policy import Protected, bot_folder
from claude_bridge.sessions.frontend import ClaudeCommands, FrontEnd, Unattended
from claude_bridge.sessions.handover import SessionHandover, adopt_session, hand_over_session
from claude_bridge.sessions.homes import DEFAULT_SESSION, belongs, is_private, place_name
from claude_bridge.sessions.inbox import Content, EntryState, InboxOp
from claude_bridge.sessions.info import SessionInfo, info_of
from claude_bridge.sessions.limit_keeper import LimitKeeper
from claude_bridge.sessions.limits import RESUME_MARGIN
from claude_bridge.sessions.place import Place, Where
from claude_bridge.sessions.pool import LivePool
from claude_bridge.sessions.projects import project_folder
from claude_bridge.sessions.prompts import PromptBoard
from claude_bridge.sessions.routes import ChatRoutes
from claude_bridge.sessions.rules import project_rules, remove_rule
from claude_bridge.sessions.session import Runtime, Session, Spawner
from claude_bridge.sessions.store import (
    DEFAULT_PERSONA,
    PID_FILE,
    Metadata,
    Persona,
    SessionStore,
    StateDamaged,
    validate_model,
)
from claude_bridge.sessions.transcripts import Conversation, config_dir, list_conversations
from claude_bridge.sessions.transcripts import find as find_transcript
from claude_bridge.sessions.usage import UsageBook
from claude_bridge.sessions.worker import Delivery

logger = logging.getLogger(__name__)

MODEL_ALIASES = ("sonnet", "opus", "haiku")
# The permission modes /mode offers: ask first (default), accept edits, plan only, skip every prompt.
USER_MODES = ("default", "acceptEdits", "plan", "bypassPermissions")
PROMPT_ANSWER = "prompt_answer"  # the result subtype of a typed message that answered a waiting prompt


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
        max_queued: int = 20,
        max_sessions: int = 50,
        front_end: FrontEnd | None = None,
        upload_limit: int = 50 * 1024 * 1024,
        project_roots: tuple[Path, ...] = (),
        prompt_reminder: float = 600.0,
        prompt_timeout: float | None = None,
        time_zone: tzinfo = UTC,
        limit_margin: float = RESUME_MARGIN,
        protected: Protected | None = None,
        owner: int | None = None,
    ) -> None:
        self.sessions_dir = sessions_dir
        self.owner = owner  # the owner's private chat takes the sessions that never had a home (homes.belongs)
        self.personas = personas if personas is not None else {DEFAULT_PERSONA: Persona(DEFAULT_PERSONA, "", "")}
        self.front_end: FrontEnd = front_end or Unattended()
        self._clock = clock
        self.max_queued = max_queued
        self.max_sessions = max_sessions
        self.project_roots = project_roots
        # Claude's questions waiting for the human; the front end shows them.
        self.prompts = PromptBoard(self.front_end.show_prompt, remind_after=prompt_reminder, timeout=prompt_timeout)
        self._store = SessionStore(sessions_dir, self.personas)
        self._routes = ChatRoutes(self._store.chats_file, self._store.exists)
        self._sessions: dict[str, Session] = {}
        self._pool = LivePool(
            lambda: list(self._sessions.values()), max_live=max_live, idle_after=idle_after, clock=clock
        )
        # The account's usage limit (one plan for all sessions) and what /usage reports.
        usage = UsageBook(time_zone)  # each session's line is kept in its metadata: today's totals survive a restart
        self.limits = LimitKeeper(sessions_dir, self.front_end, usage, clock, limit_margin)
        self._runtime = Runtime(
            self._store,
            self._pool,
            spawn,
            base_options,
            clock,
            self._tell_soon,
            self.front_end,
            upload_limit=upload_limit,
            prompts=self.prompts,
            limits=self.limits,
            protected=protected or Protected.of(sessions_dir=sessions_dir, env=base_options.env, secrets=()),
        )
        self._scheduler: Any = None
        self._closed = False
        self._notices: set[asyncio.Task[None]] = set()
        self._keeping: asyncio.Task[None] | None = None  # starts the sessions whose Claude crons must keep firing

    @property
    def idle_after(self) -> float:
        return self._pool.idle_after

    @property
    def max_live(self) -> int:
        return self._pool.max_live

    # -- lifecycle --

    def start_scheduler(self, interval: float | None = None) -> None:
        """Run suspend_idle() periodically on an APScheduler job owned by the manager."""
        self._scheduler = AsyncIOScheduler()
        every = interval or max(5.0, min(60.0, self.idle_after / 4))
        self._scheduler.add_job(self.suspend_idle, "interval", seconds=every, id="suspend-idle", coalesce=True)
        self._scheduler.start()

    async def suspend_idle(self) -> list[str]:
        """Suspend every live session idle longer than idle_after; the next message resumes it.

        Also reaps the orphans re-parented to the bot (a subreaper) that exited meanwhile, so none stays a zombie.
        """
        await asyncio.to_thread(reap_adopted)
        return await self._pool.suspend_idle()

    def reap_leftovers(self, keep: Collection[int] = ()) -> list[int]:
        """Stop CLI processes a previous run left behind (a pid file per live session); a reused pid is left alone,
        and so are the processes in `keep` (adopted by a reload)."""
        pid_files = self._store.sessions_state.glob(f"*/{PID_FILE}")
        return reap_leftovers(pid_files, self._runtime.base.claude_bin, keep)

    async def hand_over(self) -> list[SessionHandover]:
        """A reload: no more idle suspensions; every live session's process detached for the next image (each keeps
        running). A session that cannot be detached is left out: the next image stops it as after a restart."""
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        records = []
        for session in list(self._sessions.values()):
            try:
                record = await hand_over_session(session)
            except HandoverError as exc:
                logger.error("session %s cannot cross the reload: %s", session.name, exc)
                continue
            if record is not None:
                records.append(record)
        return records

    async def adopt(self, records: Iterable[SessionHandover]) -> tuple[list[Delivery], set[int]]:
        """After a reload, before recover(): each handed-over session goes on; the deliveries answering messages from
        before it, and the pids adopted (they are no leftovers)."""
        deliveries, pids = [], set()
        for record in records:
            try:
                delivery = await adopt_session(self._get(record.name), record)
            except (HandoverError, SessionError) as exc:
                logger.error("session %s could not be adopted after the reload: %s", record.name, exc)
                continue
            pids.add(record.process.process.pid)
            if delivery is not None:
                deliveries.append(delivery)
        return deliveries, pids

    async def recover(
        self, allowed: Callable[[Place], bool] = lambda place: True, *, announce: bool = True
    ) -> list[Delivery]:
        """After a restart: re-deliver messages never sent, in order; report the ones a restart cut off; start again
        (in the background) each session whose own Claude crons must keep firing.

        Only places `allowed` (the front end's gate as it is today) are answered; the rest are dropped.
        After a reload (`announce` False) the re-delivered messages are not announced: their chats saw them queued.
        """
        deliveries: list[Delivery] = []
        for name in self._store.names():
            session = self._get(name)
            if session.damage:
                logger.error("session %s is %s; its inbox is left as it is", name, session.damage)
                continue
            entries = []
            for entry in session.inbox.read():
                if entry.state != EntryState.DONE and not allowed(Place(entry.chat_id, entry.thread_id)):
                    logger.warning("session %s: dropped a message for chat %s, not allowed now", name, entry.chat_id)
                    await session.inbox.mark(entry.id, InboxOp.DONE)
                else:
                    entries.append(entry)
            for entry in entries:
                if entry.state == EntryState.SENT and entry.id not in session.resumed:
                    await self._tell(
                        Place(entry.chat_id, entry.thread_id),
                        f"⚠️ The bot restarted while Claude was working on your message “{_excerpt(entry.content)}” "
                        f"in session {name}. It was cut off and not re-sent (its tools may have run).",
                    )
                    await session.inbox.mark(entry.id, InboxOp.DONE)
            pending = [entry for entry in entries if entry.state == EntryState.QUEUED]
            for place in dict.fromkeys(Place(entry.chat_id, entry.thread_id) for entry in pending if announce):
                count = sum(1 for entry in pending if Place(entry.chat_id, entry.thread_id) == place)
                await self._tell(
                    place, f"↻ Delivering {count} message(s) to session {name} that arrived before the restart."
                )
            for entry in pending:
                delivery = Delivery(
                    name, entry.chat_id, entry.content, entry.id, session.ahead(), thread_id=entry.thread_id
                )
                session.worker.accept(delivery)
                deliveries.append(delivery)
            if not pending:
                await session.inbox.compact()
        self.limits.start()  # a usage-limit hold from before the restart: its held messages are among `pending`
        self._keeping = asyncio.get_running_loop().create_task(self._keep_claude_schedules(), name="claude-schedules")
        return deliveries

    async def claude_schedules_kept(self) -> None:
        """Until the sessions recover() starts again for Claude's own crons are started (or could not be)."""
        if self._keeping is not None:
            await asyncio.shield(self._keeping)

    async def _keep_claude_schedules(self) -> None:
        """Claude's own crons fire only while their CLI runs: start each session (not adopted by a reload) whose
        schedules a --resume brings back, one after another; each tells its home what could not come back."""
        for name in self._store.names():
            session = self._get(name)
            try:
                await session.keep_schedules_firing()
            except BridgeError as exc:
                logger.error("session %s: could not start it again for Claude's own schedules: %s", name, exc)
                if session.home is not None:
                    await self._tell(
                        session.home,
                        f"⚠️ {name}: Claude could not be started again, so its own schedules wait for your next "
                        f"message: {exc}",
                    )

    async def close_all(self, timeout: float = 20.0) -> None:
        """End every delivery with a result, stop every live session in parallel (bounded), flush metadata."""
        self._closed = True
        if self._keeping is not None:
            self._keeping.cancel()
            await asyncio.gather(self._keeping, return_exceptions=True)
        await self.limits.close()
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        # In parallel, each bounded: one session that does not stop must not hold the others.
        await asyncio.gather(*(session.close(timeout) for session in self._sessions.values()))
        # The notices (e.g. which background tasks were stopped) still go out.
        if self._notices:
            await asyncio.wait(list(self._notices), timeout=5.0)
        leftovers = list(self._notices)
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)
        logger.info("all sessions closed")

    # -- chats --

    def active_session(self, where: Where) -> str | None:
        """The chat's (or forum topic's) active session name, if it has one that still exists and is its own."""
        name = self._routes.get(where)
        return name if name is not None and self.belongs(name, where) else None

    def usage_book(self) -> UsageBook:
        """/usage's accounts, with the kept line of every session in them (each session's metadata holds its line:
        one not used since the start is loaded for it)."""
        for name in self._store.names():
            self._get(name)
        return self.limits.book

    def belongs(self, name: str, where: Where) -> bool:
        """Whether the place may see and reach the session (homes.py: a session belongs to its home)."""
        return self._store.exists(name) and belongs(self._get(name).home, Place.of(where), self.owner)

    def own(self, where: Where, name: str) -> str:
        """`name` if it is the place's session; SessionError "no session named … here" otherwise."""
        if not self.belongs(name, where):
            raise SessionError(f"There is no session named “{name}” here. /sessions lists this chat's sessions.")
        return name

    def ensure_active(self, where: Where, *, topic: str = "") -> tuple[str, str | None]:
        """The active session, made as a first message does (+ the notice, or None): the first private chat keeps
        "default"; any other place (another person's chat, a group, a topic) gets a new session named after it
        (`topic`: the topic's or chat's title). Never another place's session."""
        place = Place.of(where)
        name = self.active_session(place)
        if name is not None:
            return name, None
        name, notice = self._first_session(place, topic)
        self._take(name, place)
        self._routes.set(place, name)
        return name, notice

    def _first_session(self, place: Place, title: str) -> tuple[str, str]:
        """The session a place without an active one gets: its newest own, "default" for the first private chat, or
        a new one named after the place; and the notice saying which."""
        own = [info for info in self.list_sessions(place) if self._get(info.name).home == place]
        if own:
            return own[0].name, f"Using session “{own[0].name}”. /sessions lists this chat's, /new makes another."
        if is_private(place) and (not self._store.exists(DEFAULT_SESSION) or self.belongs(DEFAULT_SESSION, place)):
            if self._store.exists(DEFAULT_SESSION):
                return DEFAULT_SESSION, f"Using session “{DEFAULT_SESSION}”. /sessions lists all, /new makes another."
            self.create(DEFAULT_SESSION, home=place)
            return DEFAULT_SESSION, (
                f"Created session “{DEFAULT_SESSION}” and made it active. /new makes another, /switch changes."
            )
        name = place_name(place, title, self._store.exists, self.max_sessions)
        self.create(name, home=place)
        return (
            name,
            f"Created session “{name}” for {'this topic' if place.thread_id else 'this chat'}; messages here go to it.",
        )

    def _take(self, name: str, place: Place) -> None:
        """A session with no home yet (from before homes) that a place uses is that place's from now on."""
        session = self._get(name)
        if session.home is None and not session.damage:
            session.home = place
            try:
                session.save()
            except OSError as exc:  # it is this place's for now; the next save that works keeps it
                logger.error("session %s: could not save its home: %s", name, cannot_write(exc))

    def switch(self, where: Where, name: str) -> SessionInfo:
        """Make `name` the active session of the chat (or forum topic): only one of the place's own; the place's menu
        becomes its commands."""
        self._take(self.own(where, name), Place.of(where))
        session = self._get(name)
        self._routes.set(where, name)
        self.front_end.show_commands(Place.of(where), name, session.claude_commands or ClaudeCommands())
        return self.status(name)

    def claude_commands(self, name: str) -> ClaudeCommands | None:
        """The commands and skills the session's last `init` listed; None before its first since the bot started."""
        return self._get(name).claude_commands

    # -- sessions --

    def exists(self, name: str) -> bool:
        return self._store.exists(name)

    def _get(self, name: str) -> Session:
        session = self._sessions.get(name)
        if session is None:
            session = self._load(name)
            self._sessions[name] = session
        return session

    def _load(self, name: str) -> Session:
        """The session from its state; damaged state gives a session that says what is wrong and refuses messages."""
        try:
            session = Session(self._store.load(name), self._runtime)
            session.inbox.read()
        except StateDamaged as exc:
            logger.error("session %s is %s", name, exc)
            placeholder = Metadata(name, 0.0, 0.0, workspace=str(self._store.directory(name)), instance="damaged")
            return Session(placeholder, self._runtime, damage=str(exc))
        return session

    def _repaired(self, name: str) -> Session:
        """The session, read again if it was damaged (its files may have been fixed by hand since)."""
        session = self._get(name)
        if session.damage and not session.busy:
            self._sessions.pop(name, None)
            session = self._get(name)
        return session

    def create(
        self, name: str, persona: str = DEFAULT_PERSONA, folder: str | None = None, *, home: Where | None = None
    ) -> SessionInfo:
        """Create a session: its state, and its workspace (with files/) or, with `folder`, a project folder; it
        belongs to `home`, the place that made it (None: the first private chat that takes it).

        Refused past max_sessions, and for a folder outside PROJECT_ROOTS (SessionError says why).
        """
        if len(self._store.names()) >= self.max_sessions:
            raise SessionError(
                f"There are already {self.max_sessions} sessions (MAX_SESSIONS); /delete one before making another."
            )
        project = None if folder is None else self._project(folder)
        self._store.create(name, persona, self._clock(), project)
        if home is not None:
            session = self._get(name)
            session.home = Place.of(home)
            session.save()
        return self.status(name)

    def _project(self, folder: str) -> Path:
        home = Path(self._runtime.base.env.get("HOME") or Path.home())
        forbidden = {bot_folder(): "the bot's own folder", self._store.root: "the sessions folder (SESSIONS_DIR)"}
        return project_folder(folder, self.project_roots, home, forbidden=forbidden)

    async def conversations(self, name: str, limit: int = 10) -> list[Conversation]:
        """The earlier Claude conversations of the session's folder, newest first (read in a thread: files are big)."""
        session = self._get(name)
        config = config_dir(self._runtime.base.env)
        return await asyncio.to_thread(list_conversations, config, session.directory, limit)

    async def resume(self, name: str, claude_session_id: str) -> SessionInfo:
        """Make the session continue an earlier conversation of its folder; a live process restarts with it."""
        session = self._repaired(name)
        if session.damage:
            raise SessionError(f"Session “{name}” is {session.damage}; fix or /delete it.")
        if find_transcript(config_dir(self._runtime.base.env), session.directory, claude_session_id) is None:
            raise SessionError(f"There is no conversation {claude_session_id!r} in {session.directory}.")
        if claude_session_id.lower() == session.meta.claude_session_id:
            return self.status(name)
        if session.busy or (session.process is not None and session.process.busy):
            raise SessionError(f"Session “{name}” is busy; /stop it first, then pick the conversation.")
        session.meta.claude_session_id = claude_session_id.lower()
        session.save()
        if session.process is not None:
            await session.suspend()  # the next message starts it with --resume=<id>
        return self.status(name)

    def list_sessions(self, where: Where | None = None) -> list[SessionInfo]:
        """Every session (with `where`: that place's own), most recently active first."""
        names = self._store.names()
        infos = [self.status(name) for name in names if where is None or self.belongs(name, where)]
        return sorted(infos, key=lambda info: info.last_active, reverse=True)

    def files_dir(self, name: str) -> Path:
        """Where uploads for this session are saved."""
        session = self._repaired(name)
        if session.damage:
            raise SessionError(f"Session “{name}” is {session.damage}. Nothing was saved.")
        # A project folder holds nothing of the bot's: its uploads go to the session's state folder.
        path = (session.directory if session.meta.created_workspace else session.state_dir) / "files"
        path.mkdir(exist_ok=True)
        return path

    def status(self, name: str) -> SessionInfo:
        return info_of(self._get(name))

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
                session.restart_later()
        return self.status(name)

    async def set_persona(self, name: str, persona: str) -> SessionInfo:
        """Change the persona; a live process restarts with the new prompt before the next turn."""
        session = self._get(name)
        self._store.check_persona(persona)
        session.meta.persona = persona
        session.save()
        session.restart_later()
        return self.status(name)

    async def set_permission_mode(self, name: str, mode: str) -> SessionInfo:
        """Set and keep the session's permission mode: live if the CLI takes it, else by a restart keeping history."""
        if mode not in USER_MODES:
            raise SessionError(f"Unknown permission mode {mode!r}; one of {', '.join(USER_MODES)}.")
        await self._get(name).keep_mode(mode)
        return self.status(name)

    async def interrupt(self, name: str) -> bool:
        """Stop the running turn of a session and cancel its waiting prompts; queued messages continue.

        False if nothing was running.
        """
        session = self._get(name)
        # A waiting prompt is denied with interrupt: that alone ends the CLI's turn, and the next message is written
        # only after that turn's result. A separate interrupt would race the denial (#21, measured on both CLIs).
        if self.prompts.cancel_session(name, "stopped with /stop"):
            return True
        if session.process is None or not session.process.busy:
            return False
        return await session.process.interrupt()

    def rules(self, name: str) -> tuple[str, ...]:
        """The permission rules kept for the session's project folder (its `.claude/settings.local.json`)."""
        return project_rules(self._get(name).directory)

    async def remove_rule(self, name: str, rule: str) -> bool:
        """Forget a kept rule; the session's process restarts with its history so the next call is asked again."""
        session = self._get(name)
        if not remove_rule(session.directory, rule):
            return False
        await session.reread_settings()
        return True

    async def interrupt_turn(self, delivery: Delivery) -> bool:
        """Stop this very turn (a draft's Stop button) if it is the one running; a queued or finished one is left.

        Claude's own turn is stopped only while the process runs no message of ours."""
        session = self._sessions.get(delivery.session)
        if session is None or delivery.done.is_set():
            return False
        running = session.worker.current is delivery or (delivery.by_claude and session.worker.current is None)
        return running and await self.interrupt(delivery.session)

    async def stop_task(self, name: str, task_id: str) -> TaskInfo:
        """Stop one background task of a session (by id or a unique prefix); SessionError if it is not running."""
        return await self._get(name).stop_task(task_id)

    async def delete(self, name: str, instance: str | None = None) -> None:
        """Delete a session (refused while a message is accepted); the folder goes only after its process stopped.

        Its state always goes; its workspace only if the bot created it. With `instance`, only that very session
        is deleted: an earlier session's button cannot delete a newer one of the same name.
        """
        session = self._get(name)
        async with session.lock:
            if instance is not None and instance != session.meta.instance:
                raise SessionError(f"This button is for an earlier session named {name}; nothing was deleted.")
            if session.worker.busy or self.prompts.waiting(name):
                raise SessionError(f"Session {name!r} is busy; /stop it first, then delete it.")
            damaged = session.damage is not None
            session.mark_deleted()
            try:
                await session.close()
                self._store.remove(name, None if damaged else session.meta)
            finally:
                self._sessions.pop(name, None)
            self._routes.forget(name)
            self.limits.forget(name)
        logger.info("deleted session %s", name)

    def reserve(self, where: Where, *, topic: str = "", session_name: str = "") -> Delivery:
        """A message's place in its session's line (the chat's or forum topic's active session, or `session_name`'s),
        taken as it arrives; its content follows (`accept`), after a download or a transcription, or the place is
        given up (`withdraw`).

        Synchronous on purpose: messages take their places in the order their handlers start.
        """
        if self._closed:
            raise SessionError("The bot is shutting down; send your message again in a moment.")
        place = Place.of(where)
        name, notice = (session_name, None) if session_name else self.ensure_active(place, topic=topic)
        session = self._repaired(name)
        if session.damage:
            raise SessionError(f"Session “{name}” is {session.damage}. Your message was not sent; fix or /delete it.")
        if session.worker.queued >= self.max_queued:
            raise SessionError(
                f"The queue of session “{name}” is full ({self.max_queued} messages waiting); this message was "
                "not sent. Send it again once Claude has caught up, or /stop the running answer."
            )
        delivery = Delivery(name, place.chat_id, None, "", session.ahead(), thread_id=place.thread_id)
        if notice:
            delivery.notice(notice)
        session.worker.accept(delivery)
        return delivery

    @contextlib.contextmanager
    def in_line(self, where: Where, *, topic: str = "") -> Iterator[Delivery]:
        """`reserve`, and give the place up on leaving unless the message was accepted."""
        delivery = self.reserve(where, topic=topic)
        try:
            yield delivery
        finally:
            self.withdraw(delivery)

    def withdraw(self, delivery: Delivery) -> None:
        """Give up a reserved place whose message never came (nothing if it was accepted)."""
        session = self._sessions.get(delivery.session)
        if session is not None and not delivery.prepared:
            session.worker.withdraw(delivery)

    async def send(self, where: Where, content: Content, *, topic: str = "", session_name: str = "") -> Delivery:
        """Accept a message for the chat's (or forum topic's) active session (or `session_name`'s, for a scheduled
        prompt: it is never an answer to a waiting question): durably queued before this returns."""
        delivery = self.reserve(where, topic=topic, session_name=session_name)
        return await self.accept(delivery, content, typed=not session_name)

    async def accept(self, delivery: Delivery, content: Content, *, typed: bool = True) -> Delivery:
        """The content of a reserved message: durably queued before this returns, after the earlier messages of its
        chat; `typed` while Claude asks something, it is the answer instead. Refused (SessionError): the place goes."""
        session = self._sessions.get(delivery.session)
        try:
            if session is None or session.deleted:
                raise SessionError(
                    f"Session “{delivery.session}” was deleted while your message was on its way; it was not sent. "
                    "Send it again to use another session."
                )
            await session.worker.prepared_before(delivery)
            # Only a prompt shown in this very place takes it as its answer; elsewhere it is an ordinary message.
            text = content if typed and isinstance(content, str) else None
            prompt = self.prompts.typed(session.name, text, delivery.place) if text is not None else None
            if prompt is not None:
                session.worker.withdraw(delivery)
                return _answered_prompt(delivery, content, prompt.outcome or "✍️ Noted; answer the next question.")
            # One at a time per session: the inbox order is the delivery order, and delete cannot cut in.
            async with session.lock:
                await self._queue_durably(session, delivery, content)
        except BaseException:
            if session is not None:
                session.worker.withdraw(delivery)
            raise
        await self.limits.accepted(session.name, delivery.place)  # a hold: this place is told too
        return delivery

    async def _queue_durably(self, session: Session, delivery: Delivery, content: Content) -> None:
        if session.deleted:
            raise SessionError(
                f"Session “{session.name}” was deleted while your message was on its way; it was not sent. "
                "Send it again to use another session."
            )
        if self._closed:
            raise SessionError("The bot is shutting down; send your message again in a moment.")
        place = delivery.place
        session.last_place = place
        session.meta.last_active = self._clock()
        self.limits.user_wrote(session.name)  # after a usage-limit Cancel, this session's held messages go on now
        try:
            entry_id = await session.inbox.add(place.chat_id, content, place.thread_id)
        except OSError as exc:
            # Nothing durable was written: say so, rather than an "internal error" the user cannot act on.
            raise SessionError(
                f"Your message was not saved, so it was not sent to Claude: {cannot_write(exc)}. "
                "Send it again once that is fixed."
            ) from exc
        session.worker.ready(delivery, content, entry_id)

    # -- notices outside a delivery --

    def _tell_soon(self, where: Where, text: str) -> None:
        task = asyncio.get_running_loop().create_task(self._tell(where, text))
        self._notices.add(task)
        task.add_done_callback(self._notices.discard)

    async def _tell(self, where: Where, text: str) -> None:
        try:
            await self.front_end.notify(Place.of(where), text)
        except Exception:
            logger.exception("could not notify chat %s", Place.of(where).key)


def _answered_prompt(delivery: Delivery, content: Content, outcome: str) -> Delivery:
    """A typed message that answered a waiting prompt instead of becoming a turn: finished at once."""
    delivery.content = content
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
