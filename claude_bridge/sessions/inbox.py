"""A session's durable queue on disk: an append-only, fsynced log of add / sent / done records.

Only the file: which process answers a message, and when, is the worker's business (worker.py, session.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

Content = str | list[dict[str, Any]]


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


class Inbox:
    """Records are appended one at a time under one lock, so compacting can never drop a record added meanwhile."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seq = 0
        self._lock = asyncio.Lock()

    def _append(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record) + "\n").encode("utf-8")
        with open(self.path, "ab+") as handle:
            if handle.tell() > 0:
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":
                    line = b"\n" + line  # a crash left a torn last line: never glue a record onto it
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())

    def read(self) -> list[InboxEntry]:
        """Entries in arrival order with their latest state."""
        entries: dict[str, InboxEntry] = {}
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a torn last line from a crash mid-write
            entry_id = str(record.get("id", ""))
            op = record.get("op")
            if op == InboxOp.ADD:
                entries[entry_id] = InboxEntry(entry_id, int(record["chat_id"]), record["content"], EntryState.QUEUED)
            elif entry_id in entries and op in (InboxOp.SENT, InboxOp.DONE):
                entries[entry_id].state = EntryState(op)
        return list(entries.values())

    async def add(self, chat_id: int, content: Content) -> str:
        """Durably record a new message; returns its entry id."""
        self._seq += 1
        entry_id = f"{time.time_ns()}-{self._seq}"
        record = {"op": InboxOp.ADD.value, "id": entry_id, "chat_id": chat_id, "content": content}
        async with self._lock:
            await asyncio.to_thread(self._append, record)
        return entry_id

    async def mark(self, entry_id: str, op: InboxOp) -> None:
        """Record that a message was written to Claude (SENT) or is finished (DONE)."""
        async with self._lock:
            await asyncio.to_thread(self._append, {"op": InboxOp(op).value, "id": entry_id})

    async def compact(self) -> None:
        """Drop the file once every entry is done, so it does not grow forever."""

        def _compact() -> None:
            if all(entry.state == EntryState.DONE for entry in self.read()):
                self.path.unlink(missing_ok=True)

        async with self._lock:
            await asyncio.to_thread(_compact)
