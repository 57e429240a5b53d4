"""`SIGHUP`: the bot replaces its own code and keeps its Claude processes, its turns on screen and its prompts.

The order matters: the new code is checked first (a refusal changes nothing); then no more updates are taken and
those already fetched reach the durable inbox; then each live session's process is detached, which ends each turn's
stream here with a `handed_over` status, so its view stops with everything it showed; the outboxes send what they
hold; the hand-over file records it all; and the process execs itself. The next image reads the file in post_init
(before it reaps leftover processes) and goes on: `resume` below.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from telegram import Chat, Message
from telegram.ext import Application

from claude_bridge.errors import BridgeError
from claude_bridge.process.handover import HandoverError
from claude_bridge.reload import check_new_code, reexec
from claude_bridge.sessions.handover import SessionHandover
from claude_bridge.sessions.worker import Delivery
from claude_bridge.telegram.streaming import Sender

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1  # a hand-over of another version is not read: the next image restarts as today
HANDOVER_FILE = Path(".bot") / "handover.json"
SETTLE_TIMEOUT = 20.0  # seconds for fetched updates, views and outboxes to settle before the exec
POLL = 0.05  # PTB and the outboxes offer no event for "all done": these waits poll, bounded by SETTLE_TIMEOUT

App = Application[Any, Any, Any, Any, Any, Any]


@dataclass
class Handover:
    """What crosses the exec besides the processes themselves (their fds are inherited)."""

    sessions: list[SessionHandover] = field(default_factory=list)
    views: dict[str, dict[str, Any]] = field(default_factory=dict)  # inbox entry → its TurnView's snapshot
    queued: dict[str, int | None] = field(default_factory=dict)  # inbox entry still queued → the message it answers
    prompts: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "pid": os.getpid(),
            "sessions": [record.to_json() for record in self.sessions],
            "views": self.views,
            "queued": self.queued,
            "prompts": self.prompts,
        }

    @classmethod
    def from_json(cls, raw: Any) -> Handover:
        """HandoverError for another version, another process's file, or anything unreadable."""
        if not isinstance(raw, dict) or raw.get("version") != FORMAT_VERSION:
            version = raw.get("version") if isinstance(raw, dict) else None
            raise HandoverError(f"hand-over format {version!r}, this code reads {FORMAT_VERSION}")
        if raw.get("pid") != os.getpid():
            raise HandoverError(f"the hand-over was written by pid {raw.get('pid')}, not by this process")
        try:
            return cls(
                [SessionHandover.from_json(record) for record in raw["sessions"]],
                {str(k): dict(v) for k, v in raw["views"].items()},
                {str(k): None if v is None else int(v) for k, v in raw["queued"].items()},
                [dict(prompt) for prompt in raw["prompts"]],
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise HandoverError(f"unreadable hand-over: {exc!r}") from exc


def write_handover(path: Path, handover: Handover) -> None:
    """Atomically, readable by the bot's user only (it names pipe fds and chats)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = path.with_suffix(".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(handover.to_json(), handle)
        handle.flush()
        os.fsync(handle.fileno())
    partial.replace(path)


def take_handover(sessions_dir: Path) -> Handover | None:
    """The hand-over the previous image of this process left (the file is removed); None if there is none or it
    cannot be read here (logged: the bot then starts as after a restart)."""
    path = sessions_dir / HANDOVER_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    finally:
        path.unlink(missing_ok=True)
    try:
        return Handover.from_json(json.loads(text))
    except (HandoverError, ValueError) as exc:
        logger.error("the reload's hand-over cannot be read (%s); starting as after a restart", exc)
        return None


class Reloader:
    """Reloads the bot on SIGHUP (systemd's ExecReload, `make reload`)."""

    def __init__(self, app: App, project_dir: Path) -> None:
        self.app = app
        self.project_dir = project_dir
        self._task: asyncio.Task[None] | None = None

    def install(self) -> None:
        """Handle SIGHUP from now on; one that came during startup (blocked across the exec) is delivered now."""
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.request)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})

    def request(self) -> None:
        if self._task is not None and not self._task.done():
            logger.info("a reload is already under way")
            return
        self._task = asyncio.create_task(self.reload(), name="reload")

    async def reload(self) -> None:
        """Check the new code; refused: say why and go on. Else hand everything over and exec."""
        state = self.app.bot_data["state"]
        logger.info("reload requested: checking the new code in %s", self.project_dir)
        check = await check_new_code(self.project_dir, settings_dir=Path.cwd())
        if not check.ok:
            logger.error("reload refused; the bot goes on with the code it runs:\n%s", check.reason)
            await self._tell_owner(f"⚠️ Reload refused; the bot goes on with the code it runs.\n{check.reason}")
            return
        if state.schedules is not None:  # none fires into the hand-over; the next image catches up on a missed one
            await state.schedules.shutdown()
        if self.app.updater is not None:
            await self.app.updater.stop()  # PTB confirms what it fetched: those updates must reach the inbox now
        await self._settle_updates()
        prompts = self._prompts(state)  # before the hand-over: its cancels must not close the prompts
        handover = Handover(await state.manager.hand_over(), prompts=prompts)
        await self._freeze_views(state, handover)
        for task in list(state.views):
            task.cancel()  # the views of queued messages: the next image shows those messages' answers
        await self._settle_outboxes(state)
        for entry_id, view in state.turn_views.items():
            if view.handed_over.is_set():
                handover.views[entry_id] = view.snapshot()
        path = state.settings.sessions_dir / HANDOVER_FILE
        write_handover(path, handover)
        logger.info("reloading: %d session(s) handed over; exec %s", len(handover.sessions), sys.orig_argv)
        reexec([sys.executable, *sys.orig_argv[1:]])

    async def _tell_owner(self, text: str) -> None:
        owner = self.app.bot_data["state"].settings.owner_id
        if owner is None:
            return
        try:
            await Sender(self.app.bot, self.app.bot_data["state"].outboxes(owner)).text(text)
        except BridgeError as exc:
            logger.warning("could not tell the owner the reload was refused: %s", exc)

    async def _settle_updates(self) -> None:
        """Wait until every fetched update has been handled (a message reached its session's durable inbox)."""
        deadline = time.monotonic() + SETTLE_TIMEOUT
        processor = self.app.update_processor
        while not self.app.update_queue.empty() or processor.current_concurrent_updates:
            if time.monotonic() > deadline:
                logger.warning("updates still being handled after %g s; reloading anyway", SETTLE_TIMEOUT)
                return
            await asyncio.sleep(POLL)

    async def _freeze_views(self, state: Any, handover: Handover) -> None:
        """Each handed-over turn's view stops at its `handed_over` status; the queued messages' views are noted."""
        answering = {record.entry_id for record in handover.sessions if record.entry_id}
        views = [view for entry_id, view in state.turn_views.items() if entry_id in answering]
        waits = [asyncio.ensure_future(view.handed_over.wait()) for view in views]
        if waits:
            _, late = await asyncio.wait(waits, timeout=SETTLE_TIMEOUT)
            for wait in late:
                wait.cancel()
        for entry_id, view in state.turn_views.items():
            if entry_id not in answering and not view.handed_over.is_set():
                handover.queued[entry_id] = view.reply_to

    def _prompts(self, state: Any) -> list[dict[str, Any]]:
        shown = []
        for prompt in state.manager.prompts.freeze():
            sent = state.front_end.prompt_messages.sent(prompt.id)
            if sent is None or not sent.done() or sent.cancelled() or sent.exception() is not None:
                continue
            message = sent.result()
            shown.append(
                {
                    "id": prompt.id,
                    "request_id": prompt.request.request_id,
                    "chat_id": prompt.chat_id,
                    "thread_id": prompt.thread_id,
                    "message_id": message.message_id,
                }
            )
        return shown

    async def _settle_outboxes(self, state: Any) -> None:
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while not state.outboxes.idle:
            if time.monotonic() > deadline:
                logger.warning("Telegram calls still queued after %g s; reloading anyway", SETTLE_TIMEOUT)
                return
            await asyncio.sleep(POLL)


def prompt_message(prompt: dict[str, Any]) -> Message:
    """The message a handed-over prompt is shown in, as much of it as its edits need."""
    chat_id = int(prompt["chat_id"])
    chat = Chat(chat_id, Chat.PRIVATE if chat_id > 0 else Chat.SUPERGROUP)
    thread = prompt["thread_id"]
    return Message(
        int(prompt["message_id"]),
        datetime.now(UTC),
        chat,
        message_thread_id=None if thread is None else int(thread),
    )


async def resume(app: App, handover: Handover) -> tuple[list[tuple[Delivery, dict[str, Any]]], set[int]]:
    """In the new image, before leftovers are reaped: prompts re-attached, sessions adopted. Returns each delivery
    that goes on with the view snapshot it continues, and the adopted pids."""
    state = app.bot_data["state"]
    for prompt in handover.prompts:
        state.manager.prompts.reattach(str(prompt["request_id"]), str(prompt["id"]))
        state.front_end.prompt_messages.reattach(str(prompt["id"]), prompt_message(prompt))
    deliveries, pids = await state.manager.adopt(handover.sessions)
    resumed = []
    for delivery in deliveries:
        snapshot = handover.views.get(delivery.entry_id)
        if snapshot is None:
            logger.warning("session %s: no view was handed over for its turn; showing it anew", delivery.session)
            snapshot = {}
        resumed.append((delivery, snapshot))
    return resumed, pids
