"""A reload that comes while a message's answer has been read but its books are still being written: the old image
writes them and shows the answer before it execs, so the next image does not take the message for one the reload
cut off; a group's session, answered before, crosses as it is (real CLI, real PTB, in process; the exec itself is
left out: the test reads what would cross it)."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
from asyncio.base_subprocess import BaseSubprocessTransport
from pathlib import Path
from typing import Any

import psutil
import pytest

from bot_harness import OWNER, running_bot
from claude_bridge.process.handover import SubprocessHandover
from claude_bridge.process.subprocess import ClaudeSubprocess
from claude_bridge.reload import ReloadCheck
from claude_bridge.sessions.inbox import EntryState, Inbox, InboxOp
from claude_bridge.telegram import reloading
from claude_bridge.telegram.reloading import HANDOVER_FILE, Reloader
from fake_anthropic import Text
from processes import eventually

pytestmark = pytest.mark.real_cli

GROUP = -100600


class Exec:
    """Stands in for the exec: records what the chats had been sent by then, and what the private chat's inbox said
    (what the next image reads)."""

    def __init__(self, inbox: Path) -> None:
        self.inbox = inbox
        self.texts_then: list[str] | None = None
        self.entries_then: list[EntryState] = []

    def __call__(self, tg: Any) -> Any:
        def reexec(argv: list[str]) -> None:
            self.texts_then = [str(c.params.get("text", "")) for c in tg.calls_to("sendMessage") if c.ok]
            self.entries_then = [entry.state for entry in Inbox(self.inbox).read()]

        return reexec


async def passed(*args: Any, **kwargs: Any) -> ReloadCheck:
    return ReloadCheck(ok=True)


async def end_handed_over(sessions_dir: Path) -> list[dict[str, Any]]:
    """The records that would cross the exec. With no exec, what would cross is ended here: the detached CLIs (still
    running), the fds duplicated for the next image, and this image's transports of those CLIs."""
    records = json.loads((sessions_dir / HANDOVER_FILE).read_text())["sessions"]
    pids = set()
    for record in records:
        crossing = record["process"]["process"]
        pids.add(crossing["pid"])
        for process in [*psutil.Process(crossing["pid"]).children(recursive=True), psutil.Process(crossing["pid"])]:
            process.send_signal(signal.SIGKILL)
        for fd in crossing["fds"]:
            os.close(fd)
    await eventually(lambda: not any(psutil.pid_exists(pid) for pid in pids))
    for transport in [t for t in gc.get_objects() if isinstance(t, BaseSubprocessTransport)]:
        if transport.get_pid() in pids:
            transport.close()
    await asyncio.sleep(0)
    return records


async def test_an_answer_read_before_the_hand_over_is_booked_and_shown_before_the_exec(
    tmp_path, tg, api, monkeypatch
):
    sessions = tmp_path / "sessions"
    release, booking = asyncio.Event(), asyncio.Event()
    mark = Inbox.mark

    async def slow_done(inbox: Inbox, entry_id: str, op: InboxOp) -> None:
        if op is InboxOp.DONE and "/default/" in str(inbox.path) and not release.is_set():
            booking.set()
            await release.wait()  # the private chat's answer is read; its books wait here until the hand-over
        await mark(inbox, entry_id, op)

    async def handing_over(process: ClaudeSubprocess) -> SubprocessHandover:
        record = await hand_over(process)
        if process.options.cwd.name == "default":  # its books go on 2 s after its CLI is detached: the race
            asyncio.get_running_loop().call_later(2.0, release.set)
        return record

    exec_ = Exec(sessions / ".bot/sessions/default/inbox.jsonl")
    hand_over = ClaudeSubprocess.hand_over
    monkeypatch.setattr(ClaudeSubprocess, "hand_over", handing_over)
    monkeypatch.setattr(Inbox, "mark", slow_done)
    monkeypatch.setattr(reloading, "reexec", exec_(tg))
    monkeypatch.setattr(reloading, "check_new_code", passed)
    async with running_bot(tmp_path, tg, api, ALLOWED_CHAT_IDS=str(GROUP)) as bot:
        api.enqueue(Text("the group's answer"))
        tg.push_text(GROUP, "a group question", user_id=OWNER, chat_type="group")
        await bot.reply_containing("the group's answer", chat_id=GROUP)
        api.enqueue(Text("the quick answer"))
        tg.push_text(OWNER, "a quick one")
        await asyncio.wait_for(booking.wait(), 60)

        await asyncio.wait_for(Reloader(bot.app, tmp_path).reload(), 60)

        records = await end_handed_over(sessions)
    assert exec_.texts_then is not None and "the quick answer" in exec_.texts_then  # shown before the exec
    assert EntryState.SENT not in exec_.entries_then  # the next image finds it answered, not cut off
    crossing = {record["name"]: record["entry_id"] for record in records}
    # Both sessions cross idle: nothing of either message for the next image to go on with or to call cut off.
    assert crossing == {bot.manager.active_session(OWNER): "", bot.manager.active_session(GROUP): ""}
