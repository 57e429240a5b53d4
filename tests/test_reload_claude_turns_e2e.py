"""`SIGHUP` while Claude's own turns stream, in a private chat and in a group at once, and while a background task
still runs: the real bot (`python bot.py` in a copy of the tree), the real CLI, the fake Bot API and Messages API.

Each background command waits for a flag file of the test's, so the test says when each task ends: two end before
the reload (their follow-up turns stream across it), one after (its report must still reach its place).
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import pytest
from test_reload_check import tree_copy
from test_reload_e2e import GROUP, start

from bot_harness import OWNER
from fake_anthropic import Text
from fake_anthropic import ToolUse as ScriptedTool
from fake_telegram import FakeBotAPI
from processes import claude_processes, eventually

pytestmark = pytest.mark.real_cli

MINE = "".join(f"mine{n:02d} " for n in range(50))  # the private chat's follow-up, streamed slowly
OURS = "".join(f"ours{n:02d} " for n in range(50))  # the group's


def gated(flag: Path, description: str) -> ScriptedTool:
    """A background Bash task that ends when `flag` exists (no `sleep`: newer CLIs refuse it in the foreground)."""
    command = f"python3 -c 'import os, time\nwhile not os.path.exists(\"{flag}\"): time.sleep(0.2)'"
    return ScriptedTool("Bash", {"command": command, "description": description, "run_in_background": True})


def slowly(text: str, hold: asyncio.Event) -> Text:
    """A follow-up that streams, stops at its 10th part until `hold` is set (the reload is done), streams on."""
    return Text(text, chunk_size=len("mine00 "), delay=0.1, hold=hold, hold_after=10)


def texts(tg: FakeBotAPI, chat_id: int) -> list[str]:
    """What the chat shows now (deleted messages left out)."""
    return [m.text or "" for m in tg.messages(chat_id) if not m.deleted]


async def in_chat(tg: FakeBotAPI, chat_id: int, text: str, timeout: float = 60) -> dict[str, Any]:
    call = await tg.wait_for(
        "sendMessage", lambda p: p["chat_id"] == chat_id and text in p.get("text", ""), timeout=timeout
    )
    return call.params


async def test_claudes_own_turns_stream_on_in_the_same_messages_and_a_later_task_reports_in_its_place(
    tmp_path, tg, api
):
    tree = tree_copy(tmp_path)
    flag = {name: tmp_path / f"go-{name}" for name in ("private", "group", "late")}
    reloaded = asyncio.Event()
    bot = await start(tree, tmp_path, tg, api)
    try:
        await tg.wait_polling(timeout=60)
        # The group: a session of its own with two background tasks.
        tg.push_text(GROUP, "/new teamwork unasked", OWNER, "supergroup")  # tools run unasked (its persona)
        await in_chat(tg, GROUP, "teamwork")
        api.enqueue(gated(flag["group"], "group nap"), gated(flag["late"], "late nap"), Text("started in the group"))
        tg.push_text(GROUP, "nap twice", OWNER, "supergroup")
        await in_chat(tg, GROUP, "started in the group", timeout=90)
        # The private chat: one background task.
        tg.push_text(OWNER, "/mode bypassPermissions confirm")
        await in_chat(tg, OWNER, "is now bypassPermissions")
        api.enqueue(gated(flag["private"], "private nap"), Text("started privately"))
        tg.push_text(OWNER, "nap once")
        await in_chat(tg, OWNER, "started privately", timeout=90)

        # Two tasks end; Claude's follow-ups stream slowly, one after the other (the fake API answers in order).
        asked = len(api.requests)
        api.enqueue(slowly(MINE, reloaded))
        flag["private"].touch()
        await api.wait_for_requests(asked + 1, timeout=60)
        first = await tg.wait_for("sendMessageDraft", lambda p: "mine05" in p.get("text", ""), timeout=60)
        api.enqueue(slowly(OURS, reloaded))
        flag["group"].touch()
        await api.wait_for_requests(asked + 2, timeout=60)
        await tg.wait_for(
            "editMessageText", lambda p: p["chat_id"] == GROUP and "ours05" in p.get("text", ""), timeout=60
        )
        clis = sorted(p.pid for p in claude_processes(tmp_path / "sessions"))
        assert len(clis) == 2

        with (tree / "claude_bridge" / "telegram" / "app.py").open("a") as source:
            source.write("\n# a harmless change for the reload test\n")
        reload_at = len(tg.calls)
        bot.process.send_signal(signal.SIGHUP)
        await eventually(lambda: "reloaded: 2 session(s) adopted" in bot.log, timeout=60)
        reloaded.set()
        mine = await in_chat(tg, OWNER, "mine49")
        ours = await in_chat(tg, GROUP, "ours49")

        # The private chat: the same live draft went on after the reload; one title, one answer with every part.
        assert mine["text"].strip() == MINE.strip()
        drafts = [c for c in tg.calls_to("sendMessageDraft") if c.params["chat_id"] == OWNER]
        going_on = [c.params for c in drafts[drafts.index(first) :] if c.params.get("text")]
        assert any(tg.calls.index(c) > reload_at for c in drafts)
        assert {d["draft_id"] for d in going_on} == {first.params["draft_id"]}
        assert sum("Background task finished: private nap" in t for t in texts(tg, OWNER)) == 1
        assert sum("mine00" in t for t in texts(tg, OWNER)) == 1
        # The group: its preview was edited on after the reload and deleted at the end; one title, one answer.
        preview = next(m for m in tg.messages(GROUP) if "ours00" in (m.text or ""))  # the first: the live preview
        await tg.wait_for("deleteMessage", lambda p: p["chat_id"] == GROUP and p["message_id"] == preview.message_id)
        assert any(
            c.method == "editMessageText" and c.params.get("message_id") == preview.message_id
            for c in tg.calls[reload_at:]
        )
        assert ours["text"].strip() == OURS.strip()
        assert sum("Background task finished: group nap" in t for t in texts(tg, GROUP)) == 1
        assert sum("ours00" in t for t in texts(tg, GROUP)) == 1

        # The task still running across the reload ends now: its report goes to its group, as before a reload.
        api.enqueue(Text("the late nap is over"))
        flag["late"].touch()
        late = await in_chat(tg, GROUP, "the late nap is over")
        title = await in_chat(tg, GROUP, "Background task finished: late nap")
        assert tg.calls.index(next(c for c in tg.calls if c.params is title)) > reload_at
        assert late["chat_id"] == GROUP
        assert not [t for t in texts(tg, OWNER) if "late nap" in t]

        assert "2 turn(s) going on" in bot.log
        assert bot.process.returncode is None  # the same bot process (exec keeps its pid)
        assert sorted(p.pid for p in claude_processes(tmp_path / "sessions")) == clis
        assert not [t for t in texts(tg, OWNER) + texts(tg, GROUP) if "cut off" in t or "Delivering" in t]
    finally:
        code = await bot.stop()
        (tmp_path / "bot.log").write_text(bot.log)
        sent = [f"{c.params['chat_id']}: {c.params.get('text')}" for c in tg.calls_to("sendMessage")]
        (tmp_path / "sent.txt").write_text("\n---\n".join(sent))
    assert code == 0, bot.log
    assert not claude_processes(tmp_path / "sessions")
