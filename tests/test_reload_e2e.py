"""`SIGHUP` reloads the real bot (`python bot.py` in a copy of the tree) mid-answer without cutting anything.

The real CLI and the real PTB Application over the fake Bot API and the fake Messages API; three places at once: a
private chat streams an answer and has a message queued behind it, a group has a permission prompt open, another
group streams an answer (a preview message edited, not a draft). The answers stop streaming at a part of theirs until
the reload is done, so they surely cross it.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from test_reload_check import tree_copy

from bot_harness import OWNER, bot_env
from fake_anthropic import FakeAnthropic, Text
from fake_anthropic import ToolUse as ScriptedTool
from fake_telegram import FakeBotAPI
from processes import claude_processes, eventually

pytestmark = pytest.mark.real_cli

GROUP = -100777
CHORUS = -100778  # the group whose answer streams across the reload
PARTS = [f"part{n:02d} " for n in range(40)]
ANSWER = "".join(PARTS).strip()
SUNG = "".join(f"sung{n:02d} " for n in range(40)).strip()


@pytest_asyncio.fixture
async def fakes() -> AsyncIterator[tuple[FakeBotAPI, FakeAnthropic]]:
    async with FakeBotAPI() as tg, FakeAnthropic() as api:
        yield tg, api


class Bot:
    """`python <tree>/bot.py` as a child of the test, its output collected as it comes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.output: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            self.output.append(line.decode(errors="replace"))

    @property
    def log(self) -> str:
        return "".join(self.output)

    async def stop(self) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.process.wait(), 60)
        await self._reader
        return code


# A group cannot switch to bypassPermissions (/mode is refused there); a persona the owner wrote may run it so.
UNASKED = {"name": "unasked", "system_prompt": "", "settings": {"permission_mode": "bypassPermissions"}}


async def start(tree: Path, tmp_path: Path, tg: FakeBotAPI, api: FakeAnthropic) -> Bot:
    personas = tmp_path / "personas"
    if not personas.exists():
        shutil.copytree(Path(__file__).parent.parent / "personas", personas)
        (personas / "unasked.json").write_text(json.dumps(UNASKED))
    env = bot_env(
        tmp_path, tg, api, ALLOWED_CHAT_IDS=f"{GROUP},{CHORUS}", LOG_LEVEL="INFO", PERSONAS_DIR=str(personas)
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(tree / "bot.py"),
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    return Bot(process)


def has_buttons(params: dict[str, Any]) -> bool:
    return "/answer" in str(params.get("reply_markup", ""))


def held(text: str, until: asyncio.Event) -> Text:
    """An answer that streams its first 10 parts, waits for `until` (the reload is done), then streams on."""
    return Text(text, chunk_size=len("part00 "), delay=0.05, hold=until, hold_after=10)


async def test_sighup_mid_answer_keeps_the_cli_the_message_the_queue_and_the_prompt(tmp_path, fakes):
    tg, api = fakes
    tree = tree_copy(tmp_path)
    bot = await start(tree, tmp_path, tg, api)
    reloaded = asyncio.Event()
    try:
        await tg.wait_polling(timeout=60)
        # The group has a session of its own; Claude asks there to run a tool, and the prompt stays open.
        tg.push_text(GROUP, "/new teamwork", OWNER, "supergroup")
        await tg.wait_for("sendMessage", lambda p: p["chat_id"] == GROUP and "teamwork" in p.get("text", ""))
        api.enqueue(ScriptedTool("Bash", {"command": "touch crossed; echo crossed-the-exec", "description": "touch"}))
        tg.push_text(GROUP, "run the tool", OWNER, "supergroup")
        prompt = await tg.wait_for("sendMessage", lambda p: p["chat_id"] == GROUP and has_buttons(p), timeout=90)
        # The private chat: a slow answer, and a message queued behind it.
        tg.push_text(OWNER, "/mode bypassPermissions confirm")
        await tg.wait_for("sendMessage", lambda p: "is now bypassPermissions" in p.get("text", ""), timeout=30)
        api.enqueue(held("".join(PARTS), reloaded))
        tg.push_text(OWNER, "stream slowly")
        first = await tg.wait_for("sendMessageDraft", lambda p: "part05" in p.get("text", ""), timeout=90)
        tg.push_text(OWNER, "queued during the reload")
        await tg.wait_for("sendMessage", lambda p: "⏳" in p.get("text", ""), timeout=30)
        # Another group: an answer streaming into a preview message.
        tg.push_text(CHORUS, "/new chorus", OWNER, "supergroup")
        await tg.wait_for("sendMessage", lambda p: p["chat_id"] == CHORUS and "chorus" in p.get("text", ""))
        api.enqueue(held(SUNG, reloaded))
        tg.push_text(CHORUS, "sing slowly", OWNER, "supergroup")
        await tg.wait_for(
            "editMessageText", lambda p: p["chat_id"] == CHORUS and "sung05" in p.get("text", ""), timeout=90
        )
        clis = sorted(p.pid for p in claude_processes(tmp_path / "sessions"))
        assert len(clis) == 3

        # The code changes (harmlessly) and the bot is told to reload, mid-answer.
        with (tree / "claude_bridge" / "telegram" / "app.py").open("a") as source:
            source.write("\n# a harmless change for the reload test\n")
        reload_at = len(tg.calls)
        bot.process.send_signal(signal.SIGHUP)
        await eventually(lambda: "reloaded: 3 session(s) adopted, 3 turn(s) going on" in bot.log, timeout=60)
        reloaded.set()

        answer = await tg.wait_for("sendMessage", lambda p: "part39" in p.get("text", ""), timeout=60)
        assert answer.params["text"].strip() == ANSWER  # every part, once
        drafts = [c.params for c in tg.calls_to("sendMessageDraft") if c.params["chat_id"] == OWNER]
        after = [d for d in drafts[drafts.index(first.params) :] if d.get("text")]
        assert any(tg.calls.index(c) > reload_at for c in tg.calls_to("sendMessageDraft"))
        assert {d["draft_id"] for d in after} == {first.params["draft_id"]}  # the same live message goes on
        await tg.wait_for("sendMessage", lambda p: "echo: queued during the reload" in p.get("text", ""), timeout=60)
        # The other group: its preview was edited on after the reload, then gave way to the whole answer, once.
        sung = await tg.wait_for("sendMessage", lambda p: p["chat_id"] == CHORUS and "sung39" in p.get("text", ""))
        assert sung.params["text"].strip() == SUNG
        preview = next(m for m in tg.messages(CHORUS) if "sung00" in (m.text or ""))
        await tg.wait_for("deleteMessage", lambda p: p["chat_id"] == CHORUS and p["message_id"] == preview.message_id)
        assert any(
            c.method == "editMessageText" and c.params.get("message_id") == preview.message_id
            for c in tg.calls[reload_at:]
        )
        assert sum("sung00" in (m.text or "") for m in tg.messages(CHORUS) if not m.deleted) == 1

        markup = prompt.params["reply_markup"]
        allow = next(
            b["callback_data"] for row in markup["inline_keyboard"] for b in row if "allow" in b["callback_data"]
        )
        message_id = tg.messages(GROUP)[[m.text for m in tg.messages(GROUP)].index(prompt.params["text"])].message_id
        # Scripted, not the fake's "tool said: <first 200 characters>": the CLI's shell may print warnings first
        # (pyenv's rehash lock, when other shells run at once), which once hid the tool's own output.
        api.enqueue(Text("the tool ran"))
        tg.push_callback(GROUP, OWNER, allow, message_id)
        await tg.wait_for(
            "sendMessage", lambda p: p["chat_id"] == GROUP and "the tool ran" in p.get("text", ""), timeout=60
        )
        assert "crossed-the-exec" in str(api.requests[-1].tool_results)
        assert (tmp_path / "sessions" / "teamwork" / "crossed").exists()

        assert bot.process.returncode is None  # the same bot process (its pid never changed: exec keeps it)
        assert sorted(p.pid for p in claude_processes(tmp_path / "sessions")) == clis
        texts = [c.params.get("text", "") for c in tg.calls_to("sendMessage")]
        assert sum("part00" in text for text in texts) == 1
        assert not [text for text in texts if "cut off" in text or "Delivering" in text]
        assert sum("⏳" in text for text in texts) == 1

        # New code that does not import is refused; the bot goes on answering on the code it runs.
        (tree / "claude_bridge" / "broken.py").write_text("def broken(:\n")
        bot.process.send_signal(signal.SIGHUP)
        refused = await tg.wait_for("sendMessage", lambda p: "Reload refused" in p.get("text", ""), timeout=90)
        assert refused.params["chat_id"] == OWNER and "SyntaxError" in refused.params["text"]
        tg.push_text(OWNER, "still there?")
        await tg.wait_for("sendMessage", lambda p: "echo: still there?" in p.get("text", ""), timeout=60)
        assert sorted(p.pid for p in claude_processes(tmp_path / "sessions")) == clis
    finally:
        reloaded.set()
        code = await bot.stop()
        (tmp_path / "bot.log").write_text(bot.log)
        sent = [f"{c.params['chat_id']}: {c.params.get('text')}" for c in tg.calls_to("sendMessage")]
        (tmp_path / "sent.txt").write_text("\n---\n".join(sent))
    assert code == 0, bot.log
    assert not claude_processes(tmp_path / "sessions")
