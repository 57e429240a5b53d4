"""A session's durable queue on disk: an append-only log of add / sent / done records, one fsync per message.

Only the file: which process answers a message, and when, is the worker's business (worker.py, session.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from claude_bridge.sessions.store import INBOX_FILE, StateDamaged

logger = logging.getLogger(__name__)

Content = str | list[dict[str, Any]]
COMPACT_AT = 64 * 1024  # bytes of records (a few hundred text messages) before a finished inbox is dropped


class InboxOp(StrEnum):
    """One record of the log: a message arrived, was written to Claude, or is finished."""

    ADD = "add"
    SENT = "sent"
    DONE = "done"


class EntryState(StrEnum):
    """Where a message stands after replaying the log."""

    QUEUED = "queued"
    SENT = "sent"
    DONE = "done"


@dataclass
class InboxEntry:
    id: str
    chat_id: int
    content: Content
    state: EntryState
    thread_id: int | None = None  # the forum topic it came from


def _shape_problem(record: Any) -> str | None:
    """What is wrong with one parsed record, or None."""
    if not isinstance(record, dict):
        return f"expected a JSON object, found {type(record).__name__}"
    if record.get("op") not in tuple(InboxOp):
        return f"unknown op {record.get('op')!r}"
    if not isinstance(record.get("id"), str) or not record["id"]:
        return "'id' must be a non-empty string"
    if record["op"] == InboxOp.ADD:
        chat_id = record.get("chat_id")
        if not isinstance(chat_id, int) or isinstance(chat_id, bool):
            return "'chat_id' must be an integer"
        thread_id = record.get("thread_id")
        if thread_id is not None and (not isinstance(thread_id, int) or isinstance(thread_id, bool)):
            return "'thread_id' must be an integer"
        content = record.get("content")
        if not isinstance(content, str) and not (
            isinstance(content, list) and all(isinstance(block, dict) for block in content)
        ):
            return "'content' must be a string or a list of objects"
    return None


class Inbox:
    """Records are appended one at a time under one lock, so compacting can never drop a record added meanwhile.

    Only an add is fsynced before it returns: the user is told the message is kept. A sent or done record is
    written but not fsynced; a crash of the bot keeps it (it is in the OS), the next add's fsync makes it durable
    too, and a power cut before that can only make a finished message replay as queued or cut off, never lose one.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seq = 0
        self._lock = asyncio.Lock()
        self._appended = 0  # bytes appended since the file was last dropped (by this image)

    def _append(self, record: dict[str, Any]) -> None:
        """Append and fsync (an add)."""
        self._write(record, sync=True)

    def _note(self, record: dict[str, Any]) -> None:
        """Append without fsync (a sent or done record)."""
        self._write(record, sync=False)

    def _write(self, record: dict[str, Any], *, sync: bool) -> None:
        line = (json.dumps(record) + "\n").encode("utf-8")
        with open(self.path, "ab+") as handle:
            if handle.tell() > 0:
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":
                    line = b"\n" + line  # a crash left a torn last line: never glue a record onto it
            handle.write(line)
            handle.flush()
            self._appended += len(line)
            if sync:
                os.fsync(handle.fileno())  # also makes every earlier record of the file durable

    def read(self) -> list[InboxEntry]:
        """Entries in arrival order with their latest state; raises StateDamaged for a record of the wrong shape.

        A line that is not JSON at all is what a crash mid-write leaves (its add() never returned, so nobody was
        told it was accepted): it is skipped and logged. A JSON line of the wrong shape was written by hand.
        """
        entries: dict[str, InboxEntry] = {}
        try:
            lines = self.path.read_bytes().decode("utf-8", "replace").splitlines()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StateDamaged(INBOX_FILE, str(exc)) from exc
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                logger.warning("%s line %d is torn (a crash mid-write); skipped", self.path, number)
                continue
            problem = _shape_problem(record)
            if problem:
                raise StateDamaged(INBOX_FILE, f"line {number}: {problem}")
            entry_id, op = record["id"], record["op"]
            if op == InboxOp.ADD:
                entries[entry_id] = InboxEntry(
                    entry_id, record["chat_id"], record["content"], EntryState.QUEUED, record.get("thread_id")
                )
            elif entry_id in entries:
                entries[entry_id].state = EntryState(op)
        return list(entries.values())

    async def add(self, chat_id: int, content: Content, thread_id: int | None = None) -> str:
        """Durably record a new message; returns its entry id."""
        self._seq += 1
        entry_id = f"{time.time_ns()}-{self._seq}"
        record: dict[str, Any] = {"op": InboxOp.ADD.value, "id": entry_id, "chat_id": chat_id, "content": content}
        if thread_id is not None:
            record["thread_id"] = thread_id
        async with self._lock:
            await asyncio.to_thread(self._append, record)
        return entry_id

    async def requeue(self, entry_id: str, chat_id: int, content: Content, thread_id: int | None = None) -> None:
        """Queue a sent message again, in its old place (the usage limit refused it): its `add` record once more,
        which read() takes as the entry back in QUEUED state, so a restart re-delivers it."""
        record: dict[str, Any] = {"op": InboxOp.ADD.value, "id": entry_id, "chat_id": chat_id, "content": content}
        if thread_id is not None:
            record["thread_id"] = thread_id
        async with self._lock:
            await asyncio.to_thread(self._append, record)

    async def mark(self, entry_id: str, op: InboxOp) -> None:
        """Record that a message was written to Claude (SENT) or is finished (DONE).

        Written here, not in a thread: an append without fsync only reaches the page cache (tens of µs), less than a
        thread's hand-over and back, and a DONE record lies on the answer's way to the chat."""
        async with self._lock:
            self._note({"op": InboxOp(op).value, "id": entry_id})

    async def compact(self, *, at_least: int = 0) -> None:
        """Drop the file once every entry is done, so it does not grow forever; with `at_least`, only once this image
        appended that many bytes to it.

        After each message the bot passes COMPACT_AT: a file dropped and made anew per message made the next add's
        fsync commit a file creation too (measured 2026-12-06 on a 2-core VM: that fsync 2.1–2.8 ms, 1.2–1.3 ms
        without; it lies on the message's way to Claude)."""

        def _compact() -> None:
            if all(entry.state == EntryState.DONE for entry in self.read()):
                self.path.unlink(missing_ok=True)
                self._appended = 0

        if self._appended < at_least:
            return
        async with self._lock:
            await asyncio.to_thread(_compact)
