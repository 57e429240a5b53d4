"""Claude asks the human in Telegram: tool approvals, questions and plans as buttons (real CLI, real PTB, fake APIs).

The shipped default persona asks first, so a Write prompts; read-only commands (`echo`) would not.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bot_harness import OWNER, STRANGER, RunningBot, running_bot
from fake_anthropic import FakeAnthropic
from fake_anthropic import ToolUse as ScriptedTool
from fake_telegram import BotMessage, FakeBotAPI

pytestmark = pytest.mark.real_cli


@pytest_asyncio.fixture
async def bot(tmp_path: Path, tg: FakeBotAPI, api: FakeAnthropic) -> AsyncIterator[RunningBot]:
    async with running_bot(tmp_path, tg, api) as running:
        yield running


async def warm_up(bot: RunningBot) -> Path:
    """The first message creates the session; returns Claude's working folder."""
    bot.tg.push_text(OWNER, "hello")
    await bot.reply_containing("echo: hello", timeout=60)
    return bot.settings.sessions_dir / "default"


def buttons(message: BotMessage) -> dict[str, str]:
    """label → callback_data of a message's inline keyboard."""
    rows = (message.reply_markup or {}).get("inline_keyboard", [])
    return {button["text"]: button["callback_data"] for row in rows for button in row}


async def prompt(bot: RunningBot, needle: str) -> BotMessage:
    """Wait for the prompt message containing `needle` (with its buttons) and return it."""
    await bot.reply_containing(needle, timeout=60)
    [message] = [m for m in bot.tg.messages(OWNER) if needle in (m.text or "") and m.reply_markup]
    return message


async def press(bot: RunningBot, message: BotMessage, label: str, user: int = OWNER) -> str:
    data = next(d for text, d in buttons(message).items() if label in text)
    assert len(data.encode()) <= 64
    return bot.tg.push_callback(OWNER, user, data, message.message_id)


async def edited_to(bot: RunningBot, needle: str) -> dict[str, Any]:
    call = await bot.tg.wait_for("editMessageText", lambda p: needle in str(p.get("text", "")), timeout=60)
    return call.params


def write(path: Path, content: str = "hello file") -> ScriptedTool:
    return ScriptedTool("Write", {"file_path": str(path), "content": content})


async def test_allow_runs_the_write_and_the_prompt_says_so(bot, tg, api):
    workspace = await warm_up(bot)
    api.enqueue(write(workspace / "a.txt"))
    tg.push_text(OWNER, "write a.txt")
    message = await prompt(bot, "Claude wants to use Write")
    assert str(workspace / "a.txt") in (message.text or "") and "hello file" in (message.text or "")

    await press(bot, message, "Allow")
    edit = await edited_to(bot, "✅ Allowed")
    await bot.reply_containing("tool said:", timeout=60)

    assert (workspace / "a.txt").read_text() == "hello file"
    assert not edit.get("reply_markup")
    assert not api.requests[-1].tool_results[0].is_error


async def test_deny_keeps_the_file_unwritten_and_claude_is_told(bot, tg, api):
    workspace = await warm_up(bot)
    api.enqueue(write(workspace / "b.txt"))
    tg.push_text(OWNER, "write b.txt")
    await press(bot, await prompt(bot, "Claude wants to use Write"), "Deny")
    await edited_to(bot, "🚫 Denied")
    await bot.reply_containing("tool said:", timeout=60)

    result = api.requests[-1].tool_results[0]
    assert result.is_error and "denied" in result.content
    assert not (workspace / "b.txt").exists()


async def test_allow_all_edits_means_the_second_write_is_not_asked_and_mode_says_so(bot, tg, api):
    workspace = await warm_up(bot)
    api.enqueue(write(workspace / "one.txt"))
    tg.push_text(OWNER, "write one")
    message = await prompt(bot, "Claude wants to use Write")
    assert not [label for label in buttons(message) if "Always" in label]  # a Write brings no rule to keep
    await press(bot, message, "Allow all edits for this session")
    await edited_to(bot, "file edits run unasked")
    await bot.reply_containing("tool said:", timeout=60)
    tg.push_text(OWNER, "/mode")
    await bot.reply_containing("Permission mode of “default”: acceptEdits.")

    api.enqueue(write(workspace / "two.txt", "second"))
    since = len(tg.calls)
    tg.push_text(OWNER, "write two")
    await tg.wait_for("sendMessage", lambda p: "tool said:" in str(p.get("text")), since=since, timeout=60)

    assert (workspace / "two.txt").read_text() == "second"
    assert len([m for m in tg.messages(OWNER) if "Claude wants to use" in (m.text or "")]) == 1


async def test_a_typed_reply_denies_with_that_text_reaching_claude(bot, tg, api):
    workspace = await warm_up(bot)
    api.enqueue(write(workspace / "c.txt"))
    tg.push_text(OWNER, "write c.txt")
    await prompt(bot, "Claude wants to use Write")
    tg.push_text(OWNER, "no, put it in notes.md instead")
    await edited_to(bot, "🚫 Denied: no, put it in notes.md instead")
    await bot.reply_containing("tool said:", timeout=60)

    result = api.requests[-1].tool_results[0]
    assert result.is_error and "no, put it in notes.md instead" in result.content
    assert not (workspace / "c.txt").exists()


async def test_stop_cancels_a_waiting_prompt_a_late_press_does_nothing_and_the_next_message_works(bot, tg, api):
    workspace = await warm_up(bot)
    api.enqueue(write(workspace / "d.txt"))
    tg.push_text(OWNER, "write d.txt")
    message = await prompt(bot, "Claude wants to use Write")
    allow = buttons(message)["✅ Allow"]  # the button as the user still sees it on an old screen
    tg.push_text(OWNER, "/stop")
    edit = await edited_to(bot, "Cancelled")
    assert not edit.get("reply_markup")

    tg.push_callback(OWNER, OWNER, allow, message.message_id)
    toast = await tg.wait_for("answerCallbackQuery", timeout=30)
    assert "no longer waiting" in str(toast.params.get("text"))
    since = len(tg.calls)
    tg.push_text(OWNER, "hello again")
    # The fake answers a message that carries a tool result with "tool said:"; here, the interrupted Write's.
    await tg.wait_for("sendMessage", lambda p: "tool said:" in str(p.get("text")), since=since, timeout=60)
    assert "hello again" in api.requests[-1].last_user_text
    assert not (workspace / "d.txt").exists()


async def test_a_strangers_press_on_the_owners_prompt_does_nothing(bot, tg, api):
    workspace = await warm_up(bot)
    api.enqueue(write(workspace / "e.txt"))
    tg.push_text(OWNER, "write e.txt")
    message = await prompt(bot, "Claude wants to use Write")
    await press(bot, message, "Allow", user=STRANGER)
    await tg.wait_for("answerCallbackQuery", timeout=30)  # the gate's refusal
    assert not any("Allowed" in str(call.params.get("text")) for call in tg.calls_to("editMessageText"))
    assert not (workspace / "e.txt").exists()
    assert bot.manager.prompts.waiting("default")

    await press(bot, message, "Deny")
    await edited_to(bot, "🚫 Denied")


QUESTION = {
    "question": "Which color?",
    "header": "Color",
    "options": [{"label": "Red", "description": "warm"}, {"label": "Blue", "description": "cool"}],
    "multiSelect": False,
}


async def test_a_single_choice_question_answered_with_a_button(bot, tg, api):
    await warm_up(bot)
    api.enqueue(ScriptedTool("AskUserQuestion", {"questions": [QUESTION]}))
    tg.push_text(OWNER, "ask me")
    await press(bot, await prompt(bot, "Which color?"), "Blue")
    await edited_to(bot, "Which color? → Blue")
    await bot.reply_containing("tool said:", timeout=60)
    assert '"Which color?"="Blue"' in api.requests[-1].tool_results[0].content


async def test_a_multi_select_question_toggles_then_done(bot, tg, api):
    await warm_up(bot)
    multi = QUESTION | {"question": "Which ones?", "multiSelect": True}
    api.enqueue(ScriptedTool("AskUserQuestion", {"questions": [multi]}))
    tg.push_text(OWNER, "ask me")
    message = await prompt(bot, "Which ones?")
    await press(bot, message, "Red")
    await edited_to(bot, "Which ones?")
    await tg.wait_for("editMessageText", lambda p: "☑ Red" in str(p.get("reply_markup")), timeout=30)
    await press(bot, message, "Blue")
    await tg.wait_for("editMessageText", lambda p: "☑ Blue" in str(p.get("reply_markup")), timeout=30)
    await press(bot, message, "Done")
    await edited_to(bot, "Which ones? → Red, Blue")
    await bot.reply_containing("tool said:", timeout=60)
    assert '"Which ones?"="Red, Blue"' in api.requests[-1].tool_results[0].content


PLAN = "# The plan\n\n1. Read the code\n2. **Fix** the bug"


async def plan_prompt(bot: RunningBot) -> BotMessage:
    await warm_up(bot)
    bot.tg.push_text(OWNER, "/mode plan")
    await bot.reply_containing("is now plan")
    bot.api.enqueue(ScriptedTool("ExitPlanMode", {"plan": PLAN}))
    bot.tg.push_text(OWNER, "plan it")
    message = await prompt(bot, "Claude's plan")
    assert any("Fix the bug" in text for text in bot.texts())  # the plan, rendered (no ** left)
    return message


async def test_a_plan_approved(bot, tg, api):
    await press(bot, await plan_prompt(bot), "Approve")
    await edited_to(bot, "Plan approved")
    await bot.reply_containing("tool said:", timeout=60)
    result = api.requests[-1].tool_results[0]
    assert not result.is_error and "approved" in result.content
    assert bot.manager.status("default").permission_mode == "default"  # the CLI left plan mode; so do we


async def test_a_plan_sent_back_with_feedback(bot, tg, api):
    await plan_prompt(bot)
    tg.push_text(OWNER, "also write tests first")
    await edited_to(bot, "Sent back with feedback: also write tests first")
    await bot.reply_containing("tool said:", timeout=60)
    result = api.requests[-1].tool_results[0]
    assert result.is_error and "also write tests first" in result.content


async def test_the_bots_own_send_file_runs_without_a_prompt_in_ask_first_mode(bot, tg, api):
    workspace = await warm_up(bot)
    (workspace / "r.txt").write_text("report")
    api.enqueue(ScriptedTool("mcp__telegram__send_file", {"path": "r.txt"}))
    tg.push_text(OWNER, "send it")
    await bot.reply_containing("tool said: Sent r.txt", timeout=60)
    assert bot.manager.status("default").permission_mode == "default"
    assert not any("Claude wants to use" in text for text in bot.texts())


async def test_mode_accept_edits_applies_live_and_bypass_restarts_keeping_the_history(bot, tg, api, caplog):
    workspace = await warm_up(bot)
    pid = bot.manager.status("default").pid
    tg.push_text(OWNER, "/mode acceptEdits")
    await bot.reply_containing("is now acceptEdits")
    api.enqueue(write(workspace / "live.txt"))
    tg.push_text(OWNER, "write live.txt")
    await bot.reply_containing("tool said:", timeout=60)
    assert (workspace / "live.txt").exists() and bot.manager.status("default").pid == pid  # no prompt, no restart

    caplog.set_level("INFO", logger="claude_bridge.sessions.session")
    tg.push_text(OWNER, "/mode bypassPermissions confirm")
    await bot.reply_containing("is now bypassPermissions")
    refusal = next(r.getMessage() for r in caplog.records if "set_permission_mode refused" in r.getMessage())
    print("CLI refusal:", refusal)
    assert "dangerously-skip-permissions" in refusal
    api.enqueue(ScriptedTool("Bash", {"command": "touch made-by-bash", "description": "touch"}))
    since = len(tg.calls)
    tg.push_text(OWNER, "touch it")
    await bot.reply_containing("Restarting session", timeout=60)
    await tg.wait_for("sendMessage", lambda p: "tool said:" in str(p.get("text")), since=since, timeout=60)
    assert (workspace / "made-by-bash").exists() and bot.manager.status("default").pid != pid
    assert "hello" in api.requests[-1].user_texts  # the history survived the restart
    assert not any("Claude wants to use" in text for text in bot.texts())
