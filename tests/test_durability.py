"""What one message costs on disk: a single fsync (the inbox's add), and what that still guarantees."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from test_session_manager import make_manager

from claude_bridge.sessions.inbox import EntryState, Inbox, InboxOp
from fake_process import drain


async def test_once_a_session_exists_a_message_costs_one_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manager, _spawner, _clock = make_manager(tmp_path)
    await drain(await manager.send(1, "hello"))  # creating the session writes its metadata durably
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])

    await drain(await manager.send(1, "again"))
    per_message = len(synced)
    await manager.close_all()

    assert per_message == 1
    meta = json.loads((tmp_path / "sessions/.bot/sessions/default/metadata.json").read_text())
    assert meta["turns"] == 2  # the statistics are still written, only not fsynced


async def test_a_changed_setting_is_still_written_durably(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manager, _spawner, _clock = make_manager(tmp_path)
    await drain(await manager.send(1, "hello"))
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])

    await manager.set_model("default", "opus")
    await manager.close_all()

    assert len(synced) >= 2  # metadata.json and its folder


async def test_sent_and_done_records_written_without_fsync_are_read_back(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path / "inbox.jsonl")
    first = await inbox.add(1, "first")
    second = await inbox.add(1, "second")
    await inbox.mark(first, InboxOp.SENT)
    await inbox.mark(first, InboxOp.DONE)
    await inbox.mark(second, InboxOp.SENT)

    assert [e.state for e in Inbox(inbox.path).read()] == [EntryState.DONE, EntryState.SENT]
