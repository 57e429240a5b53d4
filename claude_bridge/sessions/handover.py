"""A reload as the sessions see it: each live session's process and the message it is answering cross the bot's
own exec, and the next image goes on with them.

The process part is the process layer's (process/handover.py); here: which session, which inbox entry the turn in
flight answers and where. What a chat shows of the turn is the front end's part of the hand-over.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from claude_bridge.process.handover import HandoverError, SubprocessHandover
from claude_bridge.process.turns import Turn
from claude_bridge.sessions.place import Place
from claude_bridge.sessions.session import Session
from claude_bridge.sessions.worker import Delivery

logger = logging.getLogger(__name__)

BOOKS_TIMEOUT = 5.0  # seconds a reload waits for an answered message's books (milliseconds, as a rule)


@runtime_checkable
class Reloadable(Protocol):
    """A process that can cross the exec (ClaudeSubprocess; the fakes of the in-process tests cannot)."""

    async def hand_over(self) -> SubprocessHandover: ...
    async def adopt(self, record: SubprocessHandover) -> Turn | None: ...
    def restart_key(self) -> str: ...


@dataclass(frozen=True)
class SessionHandover:
    """One live session crossing the exec: its process, and the inbox entry (and place) its turn in flight answers."""

    name: str
    process: SubprocessHandover
    entry_id: str = ""  # "" when no message of ours is being answered (idle, or Claude's own turn)
    chat_id: int = 0
    thread_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "process": self.process.to_json(),
            "entry_id": self.entry_id,
            "chat_id": self.chat_id,
            "thread_id": self.thread_id,
        }

    @classmethod
    def from_json(cls, raw: Any) -> SessionHandover:
        try:
            thread = raw["thread_id"]
            return cls(
                name=str(raw["name"]),
                process=SubprocessHandover.from_json(raw["process"]),
                entry_id=str(raw["entry_id"]),
                chat_id=int(raw["chat_id"]),
                thread_id=None if thread is None else int(thread),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise HandoverError(f"unreadable session hand-over: {exc!r}") from exc


async def hand_over_session(session: Session) -> SessionHandover | None:
    """Detach the session's live process (it keeps running) and say what its turn in flight answers; None if the
    session has no process that can cross. HandoverError if detaching failed (the process is still served here)."""
    process = session.process
    if process is None or not process.alive or not isinstance(process, Reloadable):
        return None
    record = await process.hand_over()
    await _books_kept(session)
    current = session.worker.current
    if record.turn_header == "" and current is not None and not current.by_claude:
        return SessionHandover(session.name, record, current.entry_id, current.chat_id, current.thread_id)
    # Claude's own turn in flight: the delivery that shows it (its relay has not finished; at most one runs).
    shown = session.claude_turns.in_flight
    if record.turn_header and shown:
        claude = shown[-1]
        return SessionHandover(session.name, record, claude.entry_id, claude.chat_id, claude.thread_id)
    return SessionHandover(session.name, record)


async def _books_kept(session: Session) -> None:
    """A message answered just before the hand-over has its books written here and its answer shown, not cut by the
    exec (the next image would take it for a message the reload cut off). The worker's next message meanwhile meets
    the handed-over process, which writes nothing: it stays queued in the inbox for the next image."""
    answered = session.answered_unbooked()
    if answered is None:
        return
    try:
        await asyncio.wait_for(answered.done.wait(), BOOKS_TIMEOUT)
    except TimeoutError:
        logger.warning("session %s: the books of an answered message were not written in time", session.name)


async def adopt_session(session: Session, record: SessionHandover) -> Delivery | None:
    """Serve the handed-over process in this image; the delivery that goes on answering its message (queued first
    in the session's worker) or showing Claude's own turn, or None. HandoverError if the process cannot be adopted."""
    process = session.new_process()
    if not isinstance(process, Reloadable):
        raise HandoverError(f"session {session.name}: its process cannot be adopted")
    session.process = process
    try:
        turn = await process.adopt(record.process)
    except HandoverError:
        session.process = None
        raise
    session.now_live()
    if process.restart_key() != record.process.restart_key:
        # New settings need a new CLI: the session restarts at its next message, never cutting this turn.
        logger.info("session %s: its CLI settings changed; it restarts at its next message", session.name)
        session.restart_later()
    if turn is not None and turn.started_by_claude:
        return _go_on_with_claudes_turn(session, record, turn)
    if turn is None or not record.entry_id:
        return None
    session.resumed[record.entry_id] = (process, turn)
    delivery = Delivery(session.name, record.chat_id, "", record.entry_id, 0, thread_id=record.thread_id)
    session.worker.accept(delivery)
    return delivery


def _go_on_with_claudes_turn(session: Session, record: SessionHandover, turn: Turn) -> Delivery | None:
    """Claude's own turn in flight goes on in the same place under the same entry (so the front end continues the
    message it was shown in); one the previous image did not show goes to the session's home, as a new one would."""
    place = Place(record.chat_id, record.thread_id) if record.entry_id else session.home
    delivery = session.claude_delivery(turn, place, record.entry_id)
    session.relay_claude_turn(turn, delivery)
    return delivery if place is not None else None
