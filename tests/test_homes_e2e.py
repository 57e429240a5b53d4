"""Every session has a home, end to end (real CLI, real PTB over the fake Bot API), from the owner's private chat and
a listed group at once: neither reaches the other's session, a turn's prompts and files stay in its place, a prompt
is answered only where it is shown, and bypassPermissions is the owner's explicit choice in a private chat."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bot_harness import OWNER, RunningBot, running_bot
from fake_anthropic import FakeAnthropic, Text
from fake_anthropic import ToolUse as ScriptedTool
from fake_telegram import BotMessage, FakeBotAPI

pytestmark = pytest.mark.real_cli
SEND_FILE = "mcp__telegram__send_file"
GROUP = -100700  # "Test group": its own session is named after it
GROUP_SESSION = "test-group"


@pytest_asyncio.fixture
async def bot(tmp_path: Path, tg: FakeBotAPI, api: FakeAnthropic) -> AsyncIterator[RunningBot]:
    async with running_bot(tmp_path, tg, api, ALLOWED_CHAT_IDS=str(GROUP)) as running:
        yield running


async def say(bot: RunningBot, chat: int, text: str, expect: str) -> dict[str, Any]:
    """`text` from the owner in `chat`; the bot's reply in that chat containing `expect`."""
    since = len(bot.tg.calls)
    bot.tg.push_text(chat, text, user_id=OWNER)
    call = await bot.tg.wait_for(
        "sendMessage", lambda p: p["chat_id"] == chat and expect in p.get("text", ""), since=since, timeout=60
    )
    return call.params


async def asked_to_send(bot: RunningBot, chat: int, path: Path) -> BotMessage:
    """Claude (scripted) calls send_file for a file outside its folder from `chat`: the prompt shown there."""
    bot.api.enqueue(ScriptedTool(SEND_FILE, {"path": str(path)}))
    since = len(bot.tg.calls)
    bot.tg.push_text(chat, f"send {path.name}", user_id=OWNER)
    await bot.tg.wait_for(
        "sendMessage",
        lambda p: p["chat_id"] == chat and "send_file" in p.get("text", "") and p.get("reply_markup") is not None,
        since=since,
        timeout=60,
    )
    return next(m for m in reversed(bot.tg.messages(chat)) if m.reply_markup and "send_file" in (m.text or ""))


def button(message: BotMessage, label: str) -> str:
    rows = (message.reply_markup or {}).get("inline_keyboard", [])
    return str(next(b["callback_data"] for row in rows for b in row if label in b["text"]))


def names(listing: str) -> list[str]:
    """The session names a /sessions reply lists."""
    return [line.split()[1] for line in listing.splitlines()[1:]]


def files_in(bot: RunningBot, chat: int) -> list[BotMessage]:
    return [m for m in bot.tg.messages(chat) if m.document is not None or m.photo is not None]


@pytest.fixture
def payroll(tmp_path: Path) -> Path:
    (tmp_path / "outside").mkdir()
    path = tmp_path / "outside/payroll.csv"
    path.write_text("name,salary\nbob,100\n")
    return path


async def test_a_group_and_the_owners_private_chat_each_get_a_session_of_their_own(bot, tg, api):
    await say(bot, OWNER, "hello from private", "echo: hello from private")
    await say(bot, GROUP, "hello from the group", "echo: hello from the group")

    assert bot.manager.active_session(OWNER) == "default"
    assert bot.manager.active_session(GROUP) == GROUP_SESSION
    assert not any({"hello from private", "hello from the group"} <= set(r.user_texts) for r in api.requests)
    assert any(f"Created session “{GROUP_SESSION}” for this chat" in m.text for m in tg.messages(GROUP) if m.text)
    listed = await say(bot, GROUP, "/sessions", "Sessions:")
    assert names(listed["text"]) == [GROUP_SESSION]
    refused = await say(bot, GROUP, "/switch default", "no session named")
    assert refused["text"] == "⚠️ There is no session named “default” here. /sessions lists this chat's sessions."
    mine = await say(bot, OWNER, "/sessions", "Sessions:")
    assert names(mine["text"]) == ["default"]
    await say(bot, OWNER, f"/delete {GROUP_SESSION}", "no session named")
    assert bot.manager.active_session(GROUP) == GROUP_SESSION


async def test_a_private_turns_file_goes_to_the_private_chat_while_the_group_writes(bot, tg, api, payroll):
    await say(bot, OWNER, "hello", "echo: hello")
    prompt = await asked_to_send(bot, OWNER, payroll)

    await say(bot, GROUP, "meanwhile in the group", "echo: meanwhile in the group")
    tg.push_callback(OWNER, OWNER, button(prompt, "Allow"), prompt.message_id)
    await bot.reply_containing("tool said: Sent payroll.csv", chat_id=OWNER, timeout=60)

    [sent] = files_in(bot, OWNER)
    assert sent.document is not None and sent.document.content == payroll.read_bytes()
    assert not files_in(bot, GROUP)
    assert not any("send_file" in (m.text or "") for m in tg.messages(GROUP))


async def test_a_prompt_is_answered_only_in_the_chat_it_is_shown_in(bot, tg, api, payroll):
    await say(bot, OWNER, "hello", "echo: hello")
    prompt = await asked_to_send(bot, OWNER, payroll)
    prompt_id = button(prompt, "Allow").split()[1]

    # Typed in the group: an ordinary message of the group's own session, not an answer (nor a denial) elsewhere.
    await say(bot, GROUP, "no, do not send it", "echo: no, do not send it")
    # /answer from the group for the private chat's prompt: refused.
    refused = await say(bot, GROUP, f"/answer {prompt_id} allow", "another chat")
    assert "answered only there" in refused["text"]
    assert bot.manager.prompts.get(prompt_id) is not None and not files_in(bot, OWNER) and not files_in(bot, GROUP)

    tg.push_callback(OWNER, OWNER, button(prompt, "Deny"), prompt.message_id)
    await bot.reply_containing("tool said: The user did not allow sending", chat_id=OWNER, timeout=60)
    results = [result.content for request in api.requests for result in request.tool_results]
    assert results and not any("do not send it" in content for content in results)
    assert not files_in(bot, OWNER)


async def test_the_drafts_stop_button_stops_the_turn_it_is_on_not_the_chats_active_session(bot, tg, api):
    api.enqueue(Text("tick " * 3000, chunk_size=10, delay=0.05))
    tg.push_text(OWNER, "go on and on", user_id=OWNER)
    draft = await tg.wait_for("sendMessageDraft", lambda p: "tick" in p.get("text", ""), timeout=60)
    await say(bot, OWNER, "/new other", "New session")  # the chat's active session is another one now

    stopped = {"chat": {"id": OWNER, "type": "private"}, "draft_id": draft.params["draft_id"]}
    tg.push_update({"stopped_message_generation": stopped})

    await bot.reply_containing("Stopped", timeout=30)
    assert bot.manager.status("default").state != "busy"


async def test_bypass_permissions_is_refused_in_a_group_and_asked_for_in_private(bot, tg, api):
    await say(bot, GROUP, "hello", "echo: hello")
    refused = await say(bot, GROUP, "/mode bypassPermissions", "only from a private chat")
    offered = await say(bot, GROUP, "/mode", "Permission mode of")
    assert "bypassPermissions" in refused["text"] and bot.manager.status(GROUP_SESSION).permission_mode == "default"
    labels = [b["text"] for row in offered["reply_markup"]["inline_keyboard"] for b in row]
    assert "bypassPermissions" not in labels and "acceptEdits" in labels
    # A confirming button pressed in the group is refused too.
    await say(bot, GROUP, "/mode bypassPermissions confirm", "only from a private chat")

    await say(bot, OWNER, "hello", "echo: hello")
    question = await say(bot, OWNER, "/mode bypassPermissions", "Skip every permission prompt")
    assert "without asking" in question["text"] and bot.manager.status("default").permission_mode == "default"
    message = next(m for m in reversed(tg.messages(OWNER)) if m.text and "Skip every" in m.text)
    tg.push_callback(OWNER, OWNER, button(message, "Yes, skip"), message.message_id)
    await bot.reply_containing("is now bypassPermissions", chat_id=OWNER, timeout=30)
    status = await say(bot, OWNER, "/status", "Session: default")
    assert "Every tool runs unasked" in status["text"]


async def test_a_session_in_bypass_mode_says_so_when_it_resumes_after_a_restart(tmp_path, tg, api):
    async with running_bot(tmp_path, tg, api, ALLOWED_CHAT_IDS=str(GROUP)) as bot:
        await say(bot, OWNER, "hello", "echo: hello")
        await say(bot, OWNER, "/mode bypassPermissions confirm", "is now bypassPermissions")
        await say(bot, GROUP, "hello", "echo: hello")
    async with running_bot(tmp_path, tg, api, ALLOWED_CHAT_IDS=str(GROUP)) as bot:
        since = len(tg.calls)
        await say(bot, OWNER, "again", "echo: again")
        await say(bot, GROUP, "again", "echo: again")
        said = [c.params for c in tg.calls[since:] if c.method == "sendMessage"]
        warned = [p["chat_id"] for p in said if "runs in bypassPermissions" in p.get("text", "")]
        assert warned == [OWNER]  # the group's session asks as before, and is not told otherwise


async def test_a_session_that_never_had_a_home_is_listed_only_to_the_owner(tmp_path, tg, api):
    """Another allowed person and a group never see or reach a session from before homes; the owner does."""
    other = OWNER + 1
    async with running_bot(tmp_path, tg, api, ALLOWED_USER_IDS=f"{OWNER},{other}", ALLOWED_CHAT_IDS=str(GROUP)) as bot:
        bot.manager.create("old-work")  # as a session from before homes: no home, never used

        since = len(tg.calls)
        tg.push_text(other, "/sessions", user_id=other)
        theirs = await tg.wait_for("sendMessage", lambda p: p["chat_id"] == other, since=since, timeout=60)
        assert "old-work" not in theirs.params["text"]
        since = len(tg.calls)
        tg.push_text(other, "/switch old-work", user_id=other)
        refused = await tg.wait_for("sendMessage", lambda p: p["chat_id"] == other, since=since, timeout=60)
        assert "no session named “old-work”" in refused.params["text"]
        group = await say(bot, GROUP, "/sessions", "Sessions:")
        assert "old-work" not in group["text"]
        mine = await say(bot, OWNER, "/sessions", "Sessions:")
        assert "old-work" in names(mine["text"].split("\n", 1)[1])  # after the "Created session …" line
