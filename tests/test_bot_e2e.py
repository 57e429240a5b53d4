"""The Telegram experience end to end: fake Bot API ↔ real PTB ↔ SessionManager ↔ real CLI ↔ fake Messages API."""

from __future__ import annotations

import asyncio
import os
import signal
import struct
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import pytest_asyncio

from bot_harness import OWNER, STRANGER, RunningBot, running_bot
from fake_anthropic import FakeAnthropic, Hang, HttpError, Text
from fake_anthropic import ToolUse as ScriptedTool
from fake_telegram import FakeBotAPI, TelegramLimits, utf16_len
from processes import eventually, transcript_text

pytestmark = pytest.mark.real_cli
GROUP = -100500




@pytest_asyncio.fixture
async def bot(tmp_path: Path, tg: FakeBotAPI, api: FakeAnthropic) -> AsyncIterator[RunningBot]:
    async with running_bot(tmp_path, tg, api, ALLOWED_CHAT_IDS=str(GROUP)) as running:
        yield running


def tiny_png() -> bytes:
    """A real 2×2 PNG, so the CLI accepts it as an image."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    pixels = b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(2))
    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(pixels)) + chunk(b"IEND", b"")


def sent_texts(tg: FakeBotAPI, chat_id: int = OWNER) -> list[str]:
    calls = tg.calls_to("sendMessage")
    return [str(c.params.get("text", "")) for c in calls if c.ok and c.params["chat_id"] == chat_id]


async def command(bot: RunningBot, text: str, expect: str, chat_id: int = OWNER) -> dict[str, Any]:
    """Send a command and wait for the reply that contains `expect`."""
    since = len(bot.tg.calls)
    bot.tg.push_text(chat_id, text, user_id=OWNER)
    call = await bot.tg.wait_for(
        "sendMessage", lambda p: p["chat_id"] == chat_id and expect in p.get("text", ""), since=since, timeout=30
    )
    return call.params


async def test_a_stranger_is_refused_for_every_kind_of_update_and_claude_sees_nothing(tmp_path, tg, api):
    async with running_bot(tmp_path, tg, api) as bot:
        tg.push_text(STRANGER, "hello", user_id=STRANGER)
        await bot.reply_containing("private bot", chat_id=STRANGER)
        tg.push_text(STRANGER, "/new sneaky", user_id=STRANGER)
        tg.push_callback(STRANGER, STRANGER, "/delete default confirm", message_id=1)
        tg.push_document(STRANGER, STRANGER, "evil.sh", b"rm -rf /")
        tg.push_photo(STRANGER, STRANGER, b"\xff\xd8fakejpeg")
        await command(bot, "hi from the owner", "echo: hi from the owner")

    assert api.requests and all(r.last_user_text == "hi from the owner" for r in api.requests)
    assert len(sent_texts(tg, STRANGER)) == 1  # one refusal a minute, however many updates
    assert not (tmp_path / "sessions/sneaky").exists()
    assert not any(p.name.endswith("evil.sh") for p in (tmp_path / "sessions").rglob("*"))


async def test_sessions_are_created_switched_by_name_and_by_button_and_listed(bot, tg):
    await command(bot, "/new alpha", "New session “alpha”")
    await command(bot, "first in alpha", "echo: first in alpha")
    await command(bot, "/new beta brainstorm", "persona brainstorm")
    await command(bot, "/switch alpha", "Active session: “alpha”")

    buttons = await command(bot, "/switch", "Switch to which session?")
    keyboard = buttons["reply_markup"]["inline_keyboard"]
    assert {button["callback_data"] for row in keyboard for button in row} == {"/switch alpha", "/switch beta"}
    message = next(m for m in tg.messages(OWNER) if m.text == "Switch to which session?")
    since = len(tg.calls)
    tg.push_callback(OWNER, OWNER, "/switch beta", message.message_id)
    await tg.wait_for("sendMessage", lambda p: "Active session: “beta”" in p.get("text", ""), since=since)

    listing = (await command(bot, "/sessions", "Sessions:"))["text"]
    assert "alpha — live" in listing and "beta — suspended" in listing and "▶️ beta" in listing
    await command(bot, "/switch nope", "no session named “nope” here")
    await command(bot, "/new Bad_Name", "1–32 characters")


async def test_model_and_persona_commands_reach_the_api_request(bot, tg, api):
    await command(bot, "warm up", "echo: warm up")
    shown = await command(bot, "/model", "Model of “default”")
    assert [b["text"] for b in shown["reply_markup"]["inline_keyboard"][0]][:3] == ["sonnet", "opus", "haiku"]

    await command(bot, "/model haiku", "is now haiku")
    await command(bot, "which model?", "echo: which model?")
    assert "haiku" in api.requests[-1].model

    await command(bot, "/persona planner", "is now planner")
    await command(bot, "plan it", "echo: plan it")
    assert "careful planner" in api.requests[-1].system_text
    assert "warm up" in api.requests[-1].user_texts  # same conversation after the restart
    await command(bot, "/model -rf", "Invalid model")
    await command(bot, "/persona nobody", "Unknown persona")

    status = (await command(bot, "/status", "Session: default"))["text"]
    assert "planner" in status and "haiku" in status and "Turns: 3" in status and "Last turn:" in status


async def test_a_model_button_sets_the_model_the_next_answer_uses(bot, tg, api):
    await command(bot, "warm up", "echo: warm up")
    shown = await command(bot, "/model", "Model of “default”")
    haiku = next(b for row in shown["reply_markup"]["inline_keyboard"] for b in row if b["text"] == "haiku")
    message = next(m for m in tg.messages(OWNER) if m.text and m.text.startswith("Model of"))

    since = len(tg.calls)
    tg.push_callback(OWNER, OWNER, haiku["callback_data"], message.message_id)
    await tg.wait_for("sendMessage", lambda p: "Model of “default” is now haiku" in p.get("text", ""), since=since)
    await command(bot, "which model now?", "echo: which model now?")

    assert haiku["callback_data"] == "/model haiku"
    assert "haiku" in api.requests[-1].model
    assert [c.params["message_id"] for c in tg.calls_to("editMessageReplyMarkup")] == [message.message_id]


async def test_stop_interrupts_a_slow_answer_and_the_session_lives_on(bot, tg, api):
    api.enqueue(Text("word " * 2000, chunk_size=20, delay=0.05))
    tg.push_text(OWNER, "talk slowly")
    await api.wait_for_requests(1)
    await tg.wait_for("sendMessageDraft", lambda p: p.get("text", "").startswith("word"), timeout=30)

    await command(bot, "/stop", "Stopped")
    status = (await command(bot, "/status", "Session: default"))["text"]
    assert "(live" in status
    await command(bot, "still there?", "still there?")  # the echo also shows the interrupt marker


async def test_a_long_answer_arrives_complete_in_valid_parts_and_code_stays_code(bot, tg, api):
    code = "\n".join(f"    List<String> row{i} = fetch({i}); // 🚀" for i in range(130))
    prose = " ".join(f"Step {i}: keep List<String> and 👍🏽 intact." for i in range(150))
    answer = f"{prose}\n\n```java\n{code}\n```\n\nThe end 🎉"
    assert len(answer) > 10_000
    api.enqueue(Text(answer, chunk_size=4000))

    await command(bot, "write a lot", "The end 🎉")

    answer_calls = [c for c in tg.calls_to("sendMessage") if c.ok and c.params["chat_id"] == OWNER]
    parts = [c.params for c in answer_calls if "Step" in c.params["text"] or "fetch(" in c.params["text"]]
    assert len(parts) >= 3
    assert all(utf16_len(p["text"]) <= 4096 for p in parts)
    joined = "".join(p["text"] for p in parts)
    for i in (0, 60, 129):
        assert f"List<String> row{i} = fetch({i});" in joined
    assert "Step 149: keep List<String> and 👍🏽 intact." in joined
    code_parts = [p for p in parts if any(e["type"] == "pre" for e in p.get("entities", []))]
    assert len(code_parts) >= 2  # the block was split and continued as code
    assert all(e.get("language") == "java" for p in code_parts for e in p["entities"] if e["type"] == "pre")


async def test_messages_sent_while_busy_are_acknowledged_then_answered_in_order(bot, tg, api):
    api.enqueue(Text("slow " * 300, chunk_size=10, delay=0.03))
    api.enqueue(Text("answer one"), Text("answer two"), Text("answer three"))
    tg.push_text(OWNER, "keep busy")
    await api.wait_for_requests(1)
    for word in ("one", "two", "three"):
        tg.push_text(OWNER, f"queued {word}")

    await bot.reply_containing("answer three", timeout=60)

    texts = sent_texts(tg)
    assert sum("Queued" in t for t in texts) == 3
    order = [i for word in ("one", "two", "three") for i, t in enumerate(texts) if t == f"answer {word}"]
    assert order == sorted(order)
    assert [r.last_user_text for r in api.requests[1:]] == ["queued one", "queued two", "queued three"]


async def test_a_private_chat_sees_drafts_before_the_final_message(bot, tg, api):
    api.enqueue(Text("streaming words " * 200, chunk_size=50, delay=0.02))

    await command(bot, "stream to me", "streaming words")

    drafts = [d for d in tg.drafts(OWNER) if d.text]
    assert drafts, "no draft frame was shown"
    assert len({d.draft_id for d in tg.drafts(OWNER)}) == 1
    assert all(d.params.get("can_stop") is True for d in tg.drafts(OWNER))
    order = [c.method for c in tg.calls if c.ok and "streaming words" in str(c.params.get("text"))]
    first_final = order.index("sendMessage")
    assert "sendMessageDraft" in order[:first_final] and "sendMessageDraft" not in order[first_final:]


async def test_typing_and_the_draft_never_hold_a_message_back_from_claude(bot, tg, api):
    """The feedback calls go out while Claude works: with Telegram sitting on them, both messages reach Claude."""
    telegram_answers = asyncio.Event()
    for method in ("sendChatAction", "sendMessageDraft"):
        tg.hold(method, telegram_answers)
    before = len(api.requests)

    tg.push_text(OWNER, "from the private chat")
    tg.push_text(GROUP, "from the group", user_id=OWNER, chat_type="group")
    await api.wait_for_requests(before + 2)
    held = [c for c in tg.calls if c.method in ("sendChatAction", "sendMessageDraft")]
    telegram_answers.set()
    await bot.reply_containing("echo: from the private chat")
    await bot.reply_containing("echo: from the group", chat_id=GROUP)

    assert held == []  # Claude had both messages while Telegram had answered none of them
    shown = {c.params["chat_id"] for c in tg.calls if c.method in ("sendChatAction", "sendMessageDraft") and c.ok}
    assert shown == {OWNER, GROUP}  # …and the feedback still showed in both places


async def test_quick_follow_ups_and_a_three_part_answer_draw_no_429(bot, tg, api):
    await command(bot, "warm up", "echo: warm up")
    tg.enforce_telegram_limits()  # Telegram's documented limits (fake_telegram.TelegramLimits)

    for i in range(3):
        await command(bot, f"follow-up {i}", f"echo: follow-up {i}")
    api.enqueue(Text("\n\n".join(f"Part {i}: " + "words " * 600 for i in range(3))))
    await command(bot, "a long one", "Part 2:")
    for i in range(3):
        tg.push_text(OWNER, f"burst {i}")
    await bot.reply_containing("echo: burst 2")

    assert tg.flood_rejections == 0
    assert sum(t.startswith("Part ") for t in sent_texts(tg)) == 3


async def test_a_group_sees_an_edited_preview_and_flood_limits_never_lose_the_answer(bot, tg, api):
    tg.enforce_telegram_limits(TelegramLimits(chat_burst=1))  # stricter than Telegram: 429s happen
    words = " ".join(f"w{i}" for i in range(1500))
    api.enqueue(Text(words, chunk_size=30, delay=0.03))  # ~9 s: long enough for edits at 20/min

    tg.push_text(GROUP, "stream in the group", user_id=OWNER, chat_type="group")
    await bot.reply_containing("w1499", chat_id=GROUP, timeout=60)
    await tg.wait_for("deleteMessage", lambda p: p["chat_id"] == GROUP, timeout=30)  # the preview goes away

    edits = [c for c in tg.calls_to("editMessageText") if c.ok and c.params["chat_id"] == GROUP]
    assert edits, "the group saw no live preview"
    typing = [c for c in tg.calls_to("sendChatAction") if c.params["chat_id"] == GROUP]
    assert len(typing) >= 2  # "typing…" lasts 5 s, so a ~9 s answer refreshes it
    answer_parts = [m.text for m in bot.visible(GROUP) if m.text and m.text.startswith("w")]
    assert " ".join(answer_parts).split() == words.split()  # complete, in order, nothing lost to 429s
    assert not any(m.text and m.text.startswith("…") for m in bot.visible(GROUP))  # the preview was removed


async def test_an_api_error_is_shown_once_and_briefly(bot, tg, api):
    # Not a 400: 2.1.332 retries a 400 once without its newest beta header, so one 400 would go unseen.
    api.enqueue(HttpError(403, "the fake rejects this request"))

    await command(bot, "break it", "the fake rejects this request")
    await command(bot, "after the error", "after the error")

    assert sum("the fake rejects this request" in t for t in sent_texts(tg)) == 1


async def test_a_document_and_a_photo_are_saved_and_referenced_in_the_request(tmp_path, bot, tg, api):
    await command(bot, "hello", "echo: hello")
    since = len(tg.calls)
    tg.push_document(OWNER, OWNER, "../../notes.txt", b"remember the milk", caption="read this")
    await tg.wait_for("sendMessage", lambda p: "echo:" in p.get("text", "") and "notes.txt" in p["text"], since=since)
    since = len(tg.calls)
    tg.push_photo(OWNER, OWNER, tiny_png(), caption="what is this?")
    await tg.wait_for("sendMessage", lambda p: "what is this?" in p.get("text", ""), since=since)

    # Saved names start with the time to the second; two uploads within a second sort by chance, so by mtime.
    files = sorted((tmp_path / "sessions/default/files").iterdir(), key=lambda f: f.stat().st_mtime_ns)
    assert [f.read_bytes() for f in files] == [b"remember the milk", tiny_png()]
    assert files[0].name.endswith("notes.txt") and files[0].parent.name == "files"
    document_request = next(r for r in api.requests if "notes.txt" in r.last_user_text)
    assert "read this" in document_request.last_user_text and str(files[0]) in document_request.last_user_text
    photo_request = api.requests[-1]
    assert "[image]" in photo_request.last_user_text and files[1].name in photo_request.last_user_text


async def test_an_upload_over_the_limit_gets_a_clear_message(bot, tg, api):
    tg.push_document(OWNER, OWNER, "huge.bin", b"x" * (20 * 1024 * 1024 + 1))
    await bot.reply_containing("at most 20 MB")
    assert not api.requests


async def test_an_upload_without_a_size_is_streamed_and_stopped_at_the_limit(tmp_path, tg, api):
    async with running_bot(tmp_path, tg, api, MAX_DOWNLOAD_MB="0.01") as bot:  # 10 KiB
        await command(bot, "/new work", "New session")
        tg.push_document(OWNER, OWNER, "big.bin", b"x" * 20_000, report_size=False)
        await bot.reply_containing("too big")
        tg.push_document(OWNER, OWNER, "small.txt", b"y" * 5_000, report_size=False)
        await bot.reply_containing("small.txt")
        files = list((tmp_path / "sessions/work/files").iterdir())
        assert [f.read_bytes() for f in files] == [b"y" * 5_000]  # the partial big one was deleted
        assert sum("big.bin" in r.last_user_text for r in api.requests) == 0


async def test_unknown_commands_and_bad_arguments_get_short_hints(bot):
    await command(bot, "/frobnicate", "/help")
    await command(bot, "/delete", "Usage: /delete <name>")
    await command(bot, "/new a b c", "Usage: /new [name] [folder] [persona]")


async def test_delete_asks_first_and_removes_the_session(tmp_path, bot, tg):
    await command(bot, "/new scratch", "New session")
    prompt = await command(bot, "/delete scratch", "cannot be undone")
    message = next(m for m in tg.messages(OWNER) if m.text and "cannot be undone" in m.text)
    confirm = f"/delete scratch confirm {bot.manager.status('scratch').instance}"
    assert prompt["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == confirm

    tg.push_callback(OWNER, OWNER, confirm, message.message_id)
    await bot.reply_containing("Deleted session “scratch”")
    assert not (tmp_path / "sessions/scratch").exists()


async def test_the_drafts_stop_button_interrupts_the_turn(bot, tg, api):
    api.enqueue(Text("tick " * 3000, chunk_size=10, delay=0.05))
    tg.push_text(OWNER, "go on and on")
    draft = await tg.wait_for("sendMessageDraft", lambda p: "tick" in p.get("text", ""), timeout=30)

    tg.push_update(
        {"stopped_message_generation": {"chat": {"id": OWNER, "type": "private"}, "draft_id": draft.params["draft_id"]}}
    )

    await bot.reply_containing("Stopped", timeout=15)


async def test_commands_answer_while_a_turn_streams(bot, tg, api):
    api.enqueue(Text("slow " * 2000, chunk_size=10, delay=0.05))
    tg.push_text(OWNER, "long answer")
    await api.wait_for_requests(1)

    started = asyncio.get_running_loop().time()
    await command(bot, "/status", "busy")
    await command(bot, "/sessions", "Sessions:")
    assert asyncio.get_running_loop().time() - started < 5
    await command(bot, "/stop", "Stopped")


async def test_tool_use_shows_one_compact_progress_message(bot, tg, api):
    await command(bot, "/mode bypassPermissions confirm", "is now bypassPermissions")  # tools run unasked
    api.enqueue(
        ScriptedTool("Bash", {"command": "echo one > a.txt", "description": "first"}),
        ScriptedTool("Read", {"file_path": "a.txt"}),
        Text("all done"),
    )

    await command(bot, "use tools", "all done")

    progress = [m for m in tg.messages(OWNER) if m.text and "🖥 Bash" in m.text]
    assert len(progress) == 1
    await tg.wait_for("editMessageText", lambda p: "📖 Read" in p.get("text", ""), timeout=15)
    text = next(m.text for m in tg.messages(OWNER) if m.message_id == progress[0].message_id)
    assert text is not None and "echo one > a.txt" in text and "a.txt" in text.split("📖 Read", 1)[1]


async def test_commands_claude_runs_never_see_the_bot_token(tmp_path, bot, tg, api):
    await command(bot, "/mode bypassPermissions confirm", "is now bypassPermissions")  # tools run unasked
    api.enqueue(ScriptedTool("Bash", {"command": "env > env.txt", "description": "dump env"}), Text("dumped"))

    await command(bot, "show me your environment", "dumped")

    environment = (tmp_path / "sessions/default/env.txt").read_text()
    assert "ANTHROPIC_BASE_URL" in environment  # everything else reaches the CLI unchanged
    assert tg.token not in environment


async def test_a_crash_mid_turn_is_told_once_and_the_conversation_carries_on(tmp_path, bot, tg, api):
    await command(bot, "remember the word kiwi", "echo: remember the word kiwi")
    await eventually(lambda: "kiwi" in transcript_text(tmp_path))  # written a moment after the result
    api.enqueue(Hang())
    tg.push_text(OWNER, "this one will crash")
    await api.wait_for_requests(2)

    os.kill(bot.manager.status("default").pid or 0, signal.SIGKILL)

    await bot.reply_containing("cut off")
    await bot.reply_containing("Claude restarted")
    await command(bot, "do you still know the word?", "do you still know the word?")
    assert "remember the word kiwi" in api.requests[-1].user_texts
    assert sum("exited unexpectedly" in t for t in sent_texts(tg)) == 1


async def test_a_part_telegram_rejects_is_resent_as_plain_text(bot, tg, api):
    await command(bot, "hello", "echo: hello")
    api.enqueue(Text("Some **bold** words and `code`."))
    tg.fail_next("sendMessage", 400, "Bad Request: can't parse entities: unsupported start tag")

    tg.push_text(OWNER, "format this")
    plain = await tg.wait_for("sendMessage", lambda p: p["text"] == "Some bold words and code." and "entities" not in p)

    rejected = [c for c in tg.calls_to("sendMessage") if not c.ok]
    assert plain.ok and rejected and rejected[0].params["text"] == plain.params["text"]
    assert rejected[0].params.get("entities")


async def test_a_very_long_answer_arrives_as_a_markdown_document_with_a_preview(bot, tg, api):
    answer = "\n\n".join(f"## Part {i}\n" + "All work and no play. " * 40 for i in range(60))
    api.enqueue(Text(answer))

    tg.push_text(OWNER, "write a book")
    upload = await tg.wait_for("sendDocument", timeout=30)

    document = next(m.document for m in tg.messages(OWNER) if m.document is not None)
    assert document.file_name == "answer.md" and document.content.decode().strip() == answer.strip()
    assert upload.ok
    assert any(text.startswith("🔹 Part 0\nAll work") for text in sent_texts(tg))  # the preview


async def test_the_idle_timer_suspends_a_session_and_the_next_message_resumes_it(tmp_path, tg, api):
    async with running_bot(tmp_path, tg, api, IDLE_TIMEOUT_SECONDS="1") as bot:
        await command(bot, "remember plum", "echo: remember plum")
        first_pid = bot.manager.status("default").pid

        # the APScheduler job runs every 5 s at the shortest
        await eventually(lambda: bot.manager.status("default").state == "suspended", timeout=20)
        assert first_pid is not None
        await eventually(lambda: not psutil.pid_exists(first_pid), timeout=15)  # stopping takes a moment
        await command(bot, "what fruit?", "echo: what fruit?")
        assert api.requests[-1].user_texts == ["remember plum", "what fruit?"]
