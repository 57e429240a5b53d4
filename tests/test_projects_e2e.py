"""Project folders and earlier conversations, end to end: real PTB over the fake Bot API, the real CLI over the fake
Messages API. Claude works in the project folder, leaves nothing of the bot's there, and /resume really resumes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bot_harness import OWNER, RunningBot, running_bot
from claude_bridge.sessions.transcripts import find
from fake_anthropic import FakeAnthropic, Request
from fake_anthropic import ToolUse as ScriptedTool
from fake_telegram import FakeBotAPI
from processes import eventually  # the CLI writes its transcript a moment after the result

pytestmark = pytest.mark.real_cli


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "code/app/src").mkdir(parents=True)
    (tmp_path / "code/app/README.md").write_text("the user's own project\n")
    (tmp_path / "outside").mkdir()
    return tmp_path / "code"


@pytest_asyncio.fixture
async def bot(tmp_path: Path, tg: FakeBotAPI, api: FakeAnthropic, root: Path) -> AsyncIterator[RunningBot]:
    async with running_bot(tmp_path, tg, api, PROJECT_ROOTS=str(root)) as running:
        yield running


async def command(bot: RunningBot, text: str, expect: str) -> dict[str, Any]:
    """Send a message and wait for the reply that contains `expect`."""
    since = len(bot.tg.calls)
    bot.tg.push_text(OWNER, text, user_id=OWNER)
    call = await bot.tg.wait_for(
        "sendMessage", lambda p: p["chat_id"] == OWNER and expect in p.get("text", ""), since=since, timeout=60
    )
    return call.params


def environment(request: Request) -> str:
    """The CLI's environment notes: in the system prompt (2.1.197), or a text block of the first message (2.1.332)."""
    return request.system_text + json.dumps(request.messages)


def config(tmp_path: Path) -> Path:
    return tmp_path / "claude-config"


async def test_claude_works_in_an_absolute_project_folder_and_the_bot_leaves_nothing_there(bot, tg, api, root):
    folder = (root / "app").resolve()
    await command(bot, f"/new app {folder}", "New session “app”")
    api.enqueue(ScriptedTool("Bash", {"command": "pwd", "description": "where am I"}))

    await command(bot, "where are you?", "tool said:")
    tg.push_document(OWNER, OWNER, "notes.txt", b"my notes")
    await bot.reply_containing("echo: [The user sent a file")

    assert api.requests[-2].tool_results[0].content.strip() == str(folder)
    assert f"Primary working directory: {folder}" in environment(api.requests[0])
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "src"]
    [upload] = (bot.settings.sessions_dir / ".bot/sessions/app/files").glob("*-notes.txt")
    assert upload.read_bytes() == b"my notes" and str(upload) in api.requests[-1].last_user_text
    assert f"📁 {folder}" in (await command(bot, "/sessions", "Sessions:"))["text"]
    assert f"Folder: {folder}" in (await command(bot, "/status", "Session: app"))["text"]


async def test_a_relative_folder_lies_under_the_first_root(bot, api, root):
    await command(bot, "/new sub ./app/src", "New session “sub”")

    await command(bot, "hello from src", "echo: hello from src")

    assert f"Primary working directory: {(root / 'app/src').resolve()}" in environment(api.requests[-1])


async def test_folders_outside_the_roots_are_refused_with_the_reason(bot, api, root, tmp_path):
    (root / "escape").symlink_to(tmp_path / "outside")

    await command(bot, f"/new out {tmp_path / 'outside'}", "outside the project folders")
    await command(bot, "/new link ./escape", "outside the project folders")
    await command(bot, "/new up ./app/../../outside", "outside the project folders")
    await command(bot, "/new missing ./nowhere", "There is no folder")

    assert not any(bot.manager.exists(name) for name in ("out", "link", "up", "missing")) and not api.requests


async def test_resume_picks_an_older_conversation_of_the_folder(bot, tg, api, root, tmp_path):
    folder = (root / "app").resolve()
    await command(bot, "/new one ./app", "New session “one”")
    await command(bot, "remember apple", "echo: remember apple")
    await command(bot, "/new two ./app", "New session “two”")
    await command(bot, "remember banana", "echo: remember banana")
    assert api.requests[-1].user_texts == ["remember banana"]  # a new session starts a fresh conversation
    apple, banana = bot.manager.status("one").claude_session_id, bot.manager.status("two").claude_session_id
    await eventually(lambda: all(find(config(tmp_path), folder, conv) for conv in (apple, banana)))

    listing = await command(bot, "/resume", "newest first")
    buttons = [b for row in listing["reply_markup"]["inline_keyboard"] for b in row]
    pick = next(b for b in buttons if "remember apple" in b["text"])
    assert listing["text"].index("▶️ remember banana") < listing["text"].index("2. remember apple")
    message = next(m for m in tg.messages(OWNER) if m.text and "newest first" in m.text)
    since = len(tg.calls)
    tg.push_callback(OWNER, OWNER, pick["callback_data"], message.message_id)
    await tg.wait_for("sendMessage", lambda p: "continues conversation" in p.get("text", ""), since=since)

    await command(bot, "which fruit?", "echo: which fruit?")
    assert api.requests[-1].user_texts == ["remember apple", "which fruit?"]
    assert bot.manager.status("two").claude_session_id == apple


async def test_a_conversation_that_vanished_starts_a_fresh_one_and_says_so(bot, api, root, tmp_path):
    folder = (root / "app").resolve()
    await command(bot, "/new gone ./app", "New session “gone”")
    await command(bot, "remember cherry", "echo: remember cherry")
    old = bot.manager.status("gone").claude_session_id
    await eventually(lambda: find(config(tmp_path), folder, old) is not None)
    transcript = find(config(tmp_path), folder, old)
    assert transcript is not None
    await command(bot, "/persona brainstorm", "Persona of “gone” is now brainstorm")  # restarts before the next turn
    transcript.unlink()

    await command(bot, "still there?", "was not found")
    await command(bot, "hello again", "echo: hello again")

    assert "remember cherry" not in api.requests[-1].user_texts
    assert bot.manager.status("gone").claude_session_id not in ("", old)
