"""A reload (`SIGHUP` with new code on disk) in the middle of the work: the bot replaces its code, nothing is lost."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

from test_reload_check import tree_copy
from test_reload_e2e import GROUP, has_buttons, start

from bot_harness import OWNER
from fake_anthropic import FakeAnthropic, Text
from fake_anthropic import ToolUse as ScriptedTool
from fake_telegram import FakeBotAPI
from faults.conftest import FAULTS, Case
from processes import claude_processes, eventually

pytestmark = FAULTS

ANSWER = " ".join(f"piece{n:02d}" for n in range(30))


def shown(tg: FakeBotAPI) -> list[str]:
    """Both chats as the user sees them now (the group's lines marked)."""
    private = [m.text or "" for m in tg.messages(OWNER) if not m.deleted]
    return private + [f"(group) {m.text}" for m in tg.messages(GROUP) if not m.deleted and m.text]


async def answered(tg: FakeBotAPI, words: str) -> None:
    """Wait for the bot's message with `words`; one that never comes is named by lost_work, not by a timeout."""
    with contextlib.suppress(TimeoutError):
        await tg.wait_for("sendMessage", lambda p: words in p.get("text", ""), timeout=60)


def lost_work(tg: FakeBotAPI, api: FakeAnthropic, tool_ran: bool) -> list[str]:
    """What was sent and never answered (or answered twice): the streamed answer, the queued message, the prompt."""
    private = [m.text or "" for m in tg.messages(OWNER) if not m.deleted]
    group = [m.text or "" for m in tg.messages(GROUP) if not m.deleted]
    lost = []
    answers = [t for t in private if "piece00" in t]
    if [t.strip() for t in answers] != [ANSWER]:
        lost.append(f"'stream slowly': the streamed answer arrived as {[t[:40] + '…' for t in answers]}")
    echoes = sum(t.startswith("echo:") and "queued during the reload" in t for t in private)
    if echoes != 1:
        lost.append(f"'queued during the reload': answered {echoes} times")
    if not tool_ran:
        lost.append("the group's prompt: the tool allowed after the reload never ran")
    if "crossed-the-exec" not in str([request.tool_results for request in api.requests]):
        lost.append("the group's prompt: the tool's output never reached Claude")
    if sum("the tool ran" in t for t in group) != 1:
        lost.append("the group's prompt: Claude's answer after the tool is missing or doubled")
    lost += [f"a cut-off notice: {t[:60]}" for t in private + group if "cut off" in t or "Delivering" in t]
    return lost


async def test_reload_mid_turn(tmp_path: Path, fakes: tuple[FakeBotAPI, FakeAnthropic], case: Case) -> None:
    """Reload mid-turn (SIGHUP, new code): an answer streaming, a message queued, a group's prompt open."""
    tg, api = fakes
    tree = tree_copy(tmp_path)
    bot = await start(tree, tmp_path, tg, api)
    reloaded = asyncio.Event()
    try:
        await tg.wait_polling(timeout=60)
        tg.push_text(GROUP, "/new teamwork", OWNER, "supergroup")
        await tg.wait_for("sendMessage", lambda p: p["chat_id"] == GROUP and "teamwork" in p.get("text", ""))
        api.enqueue(ScriptedTool("Bash", {"command": "touch crossed; echo crossed-the-exec", "description": "touch"}))
        tg.push_text(GROUP, "run the tool", OWNER, "supergroup")
        prompt = await tg.wait_for("sendMessage", lambda p: p["chat_id"] == GROUP and has_buttons(p), timeout=90)
        tg.push_text(OWNER, "/mode bypassPermissions confirm")  # the owner's explicit choice (#20)
        await tg.wait_for("sendMessage", lambda p: "is now bypassPermissions" in p.get("text", ""), timeout=30)
        api.enqueue(Text(ANSWER, chunk_size=len("piece00 "), delay=0.05, hold=reloaded, hold_after=10))
        tg.push_text(OWNER, "stream slowly")
        await tg.wait_for("sendMessageDraft", lambda p: "piece05" in p.get("text", ""), timeout=90)
        tg.push_text(OWNER, "queued during the reload")
        await tg.wait_for("sendMessage", lambda p: "⏳" in p.get("text", ""), timeout=30)
        clis = sorted(p.pid for p in claude_processes(tmp_path / "sessions"))

        with (tree / "claude_bridge" / "telegram" / "app.py").open("a") as source:
            source.write("\n# the new code of the reload\n")
        bot.process.send_signal(signal.SIGHUP)
        await eventually(lambda: "reloaded: " in bot.log, timeout=60)
        reloaded.set()
        allow = next(
            b["callback_data"]
            for row in prompt.params["reply_markup"]["inline_keyboard"]
            for b in row
            if "allow" in b["callback_data"]
        )
        message = next(m for m in tg.messages(GROUP) if m.text == prompt.params["text"])
        await answered(tg, "echo: queued during the reload")
        api.enqueue(Text("the tool ran"))  # after the echo: the fake answers in order
        tg.push_callback(GROUP, OWNER, allow, message.message_id)
        await answered(tg, "piece29")
        await answered(tg, "the tool ran")
        case.seen(shown(tg))
        kept = sorted(p.pid for p in claude_processes(tmp_path / "sessions")) == clis and bot.process.returncode is None
    finally:
        reloaded.set()
        code = await bot.stop()
        (tmp_path / "bot.log").write_text(bot.log)
    assert code == 0, bot.log
    lost = lost_work(tg, api, (tmp_path / "sessions" / "teamwork" / "crossed").exists())
    lost += [] if kept else ["the bot or its Claude processes were replaced: turns, tasks and prompts with them"]
    case.measured(lost, "bot.py as a process; code changed + SIGHUP while an answer streams, 1 queued, a prompt open")
