"""The fake Bot API, driven by the real PTB Application and Bot over HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from telegram import BotCommand, BotCommandScopeChat, InlineKeyboardButton, InlineKeyboardMarkup, MessageEntity, Update
from telegram.error import BadRequest, NetworkError, RetryAfter
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    ExtBot,
    MessageHandler,
    TypeHandler,
    filters,
)

from fake_telegram import FakeBotAPI, TelegramLimits

CHAT = 1001
OTHER_CHAT = 1002
GROUP = -100123
KEYBOARD = InlineKeyboardMarkup([[InlineKeyboardButton("Yes", callback_data="yes")]])


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
async def api() -> AsyncIterator[FakeBotAPI]:
    async with FakeBotAPI() as fake:
        yield fake


def build_app(api: FakeBotAPI) -> Application[Any, Any, Any, Any, Any, Any]:
    return (
        ApplicationBuilder()
        .token(api.token)
        .base_url(f"{api.url}/bot")
        .base_file_url(f"{api.url}/file/bot")
        .build()
    )


@asynccontextmanager
async def polling(
    app: Application[Any, Any, Any, Any, Any, Any], timeout: int = 1, **kwargs: Any
) -> AsyncIterator[None]:
    async with app:
        await app.start()
        await app.updater.start_polling(poll_interval=0, timeout=timeout, **kwargs)  # type: ignore[union-attr]
        try:
            yield
        finally:
            await app.updater.stop()  # type: ignore[union-attr]
            await app.stop()


@asynccontextmanager
async def connected(api: FakeBotAPI) -> AsyncIterator[ExtBot[Any]]:
    async with build_app(api) as app:
        yield app.bot


@pytest.fixture
async def bot(api: FakeBotAPI) -> AsyncIterator[ExtBot[Any]]:
    async with connected(api) as bot:
        yield bot


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.message and update.message.text
    await update.message.reply_text(f"echo: {update.message.text}")


async def test_pushed_text_reaches_the_handler_and_the_reply_is_recorded(api: FakeBotAPI) -> None:
    app = build_app(api)
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))

    async with polling(app):
        api.push_text(CHAT, "hello <world>")
        reply = await api.wait_for("sendMessage")

    assert reply.params["chat_id"] == CHAT
    assert [m.text for m in api.messages(CHAT)] == ["echo: hello <world>"]
    assert api.calls_to("deleteWebhook")


async def test_an_edited_user_message_arrives_as_edited_message(api: FakeBotAPI) -> None:
    async def on_edit(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.edited_message
        await context.bot.send_message(CHAT, f"now: {update.edited_message.text}")

    app = build_app(api)
    app.add_handler(MessageHandler(filters.UpdateType.EDITED_MESSAGE, on_edit))

    async with polling(app):
        message_id = api.push_text(CHAT, "frist")
        api.push_edited_text(CHAT, message_id, "first")
        reply = await api.wait_for("sendMessage")

    assert reply.params["text"] == "now: first"


async def test_a_command_is_routed_to_its_command_handler(api: FakeBotAPI) -> None:
    async def new(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message
        await update.message.reply_text(f"new session {context.args}")

    app = build_app(api)
    app.add_handler(CommandHandler("new", new))
    app.add_handler(MessageHandler(filters.ALL, echo))

    async with polling(app):
        api.push_text(CHAT, "/new work")
        api.push_text(GROUP, f"/new@{api.username} team", user_id=7)
        private = await api.wait_for("sendMessage", lambda p: p["chat_id"] == CHAT)
        group = await api.wait_for("sendMessage", lambda p: p["chat_id"] == GROUP)

    assert private.params["text"] == "new session ['work']"
    assert group.params["text"] == "new session ['team']"


async def test_a_callback_query_is_answered_and_its_message_edited(api: FakeBotAPI) -> None:
    async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query
        await query.answer("noted")
        await query.edit_message_text(f"you said {query.data}")

    app = build_app(api)
    app.add_handler(CallbackQueryHandler(on_button))

    async with polling(app):
        question = await app.bot.send_message(CHAT, "proceed?", reply_markup=KEYBOARD)
        query_id = api.push_callback(CHAT, CHAT, "yes", question.message_id)
        answer = await api.wait_for("answerCallbackQuery")
        await api.wait_for("editMessageText")

    assert answer.params == {"callback_query_id": query_id, "text": "noted"}
    [message] = api.messages(CHAT)
    assert (message.text, message.reply_markup, message.edited) == ("you said yes", None, True)


async def test_a_user_document_downloads_byte_exact(api: FakeBotAPI, tmp_path: Path) -> None:
    content = bytes(range(256)) * 1000  # not UTF-8, 256 KB
    received: list[bytes] = []

    async def save(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message and update.message.document
        file = await update.message.document.get_file()
        received.append(bytes(await file.download_as_bytearray()))
        await file.download_to_drive(tmp_path / "saved.bin")
        await update.message.reply_text(f"saved {update.message.document.file_size} bytes")

    app = build_app(api)
    app.add_handler(MessageHandler(filters.Document.ALL, save))

    async with polling(app):
        api.push_document(CHAT, CHAT, "data.bin", content, caption="keep this")
        reply = await api.wait_for("sendMessage")

    assert reply.params["text"] == f"saved {len(content)} bytes"
    assert received == [content]
    assert (tmp_path / "saved.bin").read_bytes() == content


async def test_the_largest_photo_size_is_the_original(api: FakeBotAPI, bot: ExtBot[Any]) -> None:
    content = b"\x89PNG" + bytes(5000)
    api.push_photo(CHAT, CHAT, content)

    [update] = await bot.get_updates(timeout=0)
    assert update.message
    photo = update.message.photo

    assert len(photo) == 2
    assert bytes(await (await photo[-1].get_file()).download_as_bytearray()) == content
    assert bytes(await (await photo[0].get_file()).download_as_bytearray()) != content


async def test_get_file_refuses_files_over_the_size_limit(api: FakeBotAPI, bot: ExtBot[Any]) -> None:
    api.file_size_limit = 1000
    api.push_document(CHAT, CHAT, "big.log", b"x" * 1001)
    [update] = await bot.get_updates(timeout=0)
    assert update.message and update.message.document

    with pytest.raises(BadRequest, match="File is too big"):
        await update.message.document.get_file()


async def test_an_injected_429_surfaces_as_retry_after_once(api: FakeBotAPI, bot: ExtBot[Any]) -> None:
    api.fail_next("sendMessage", 429, retry_after=1)

    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(CHAT, "flooded")
    await bot.send_message(CHAT, "fine again")

    assert caught.value.retry_after in (1, timedelta(seconds=1))
    assert [c.status for c in api.calls_to("sendMessage")] == [429, 200]
    assert [m.text for m in api.messages(CHAT)] == ["fine again"]


async def test_editing_to_identical_content_is_not_modified(api: FakeBotAPI, bot: ExtBot[Any]) -> None:
    sent = await bot.send_message(CHAT, "same", reply_markup=KEYBOARD)

    with pytest.raises(BadRequest, match="Message is not modified: specified new message content"):
        await bot.edit_message_text("same", CHAT, sent.message_id, reply_markup=KEYBOARD)
    await bot.edit_message_text("same", CHAT, sent.message_id)  # dropping the keyboard is a change
    with pytest.raises(BadRequest, match="Message to edit not found"):
        await bot.edit_message_text("new", CHAT, sent.message_id + 1)

    [message] = api.messages(CHAT)
    assert (message.text, message.reply_markup) == ("same", None)


async def test_text_longer_than_4096_utf16_units_is_rejected(bot: ExtBot[Any]) -> None:
    with pytest.raises(BadRequest, match="Message is too long"):
        await bot.send_message(CHAT, "x" * 5000)
    with pytest.raises(BadRequest, match="Message is too long"):
        await bot.send_message(CHAT, "😀" * 2049)  # 4098 UTF-16 units, though only 2049 code points
    with pytest.raises(BadRequest, match="Message text is empty"):
        await bot.send_message(CHAT, " \n")

    assert await bot.send_message(CHAT, "😀" * 2048)
    assert await bot.send_message(CHAT, f"<b>{'x' * 4096}</b>", parse_mode="HTML")  # length counts after parsing


async def test_parse_mode_wins_over_entities(api: FakeBotAPI, bot: ExtBot[Any]) -> None:
    sent = await bot.send_message(
        CHAT, "<b>bold</b> &lt;plain&gt;", parse_mode="HTML", entities=[MessageEntity("italic", 5, 5)]
    )

    assert sent.text == "bold <plain>"
    assert [(e.type, e.offset, e.length) for e in sent.entities] == [("bold", 0, 4)]
    assert api.messages(CHAT)[0].entities == [{"type": "bold", "offset": 0, "length": 4}]


async def test_html_tags_become_the_entities_telegram_shows(bot: ExtBot[Any]) -> None:
    html = "<a href='https://example.org'>site</a> <pre><code class=\"language-py\">x = 1</code></pre>"

    sent = await bot.send_message(CHAT, html, parse_mode="HTML")

    assert sent.text == "site x = 1"
    assert [(e.type, e.offset, e.length, e.url, e.language) for e in sent.entities] == [
        ("text_link", 0, 4, "https://example.org", None),
        ("pre", 5, 5, None, "py"),
    ]


@pytest.mark.parametrize("html", ["<div>x</div>", "<b>x</i>", "<b>open", "a < b", '<span class="x">s</span>'])
async def test_html_outside_telegrams_subset_cannot_be_parsed(bot: ExtBot[Any], html: str) -> None:
    with pytest.raises(BadRequest, match="Can't parse entities"):
        await bot.send_message(CHAT, html, parse_mode="HTML")


async def test_entities_are_measured_in_utf16_units(bot: ExtBot[Any]) -> None:
    assert await bot.send_message(CHAT, "😀ab", entities=[MessageEntity("bold", 2, 2)])

    with pytest.raises(BadRequest, match="Can't parse entities"):
        await bot.send_message(CHAT, "😀ab", entities=[MessageEntity("bold", 3, 2)])


async def test_markdown_v2_reserved_characters_must_be_escaped(bot: ExtBot[Any]) -> None:
    sent = await bot.send_message(CHAT, r"*done* in 3\.5s", parse_mode="MarkdownV2")
    assert sent.text == "done in 3.5s"

    with pytest.raises(BadRequest, match=r"character '\.' is reserved"):
        await bot.send_message(CHAT, "done in 3.5s", parse_mode="MarkdownV2")


async def test_invalid_utf8_is_rejected(api: FakeBotAPI) -> None:
    body = b"chat_id=1001&text=%ED%A0%BD"  # a UTF-8-encoded lone surrogate
    headers = {"Content-Type": "application/x-www-form-urlencoded"}

    async with aiohttp.ClientSession() as http:
        response = await http.post(f"{api.url}/bot{api.token}/sendMessage", data=body, headers=headers)
        answer = await response.json()

    assert response.status == 400
    assert answer == {"ok": False, "error_code": 400, "description": "Bad Request: strings must be encoded in UTF-8"}


async def test_an_unknown_method_is_a_bad_request_not_an_invalid_token(bot: ExtBot[Any]) -> None:
    with pytest.raises(BadRequest, match="Method not found"):
        await bot.do_api_request("bogusMethod")


async def test_a_draft_records_bot_api_10_3_extras(api: FakeBotAPI, bot: ExtBot[Any]) -> None:
    assert await bot.send_message_draft(CHAT, 7, "thinking", api_kwargs={"can_stop": True, "keep_on_stop": True})
    assert await bot.send_message_draft(CHAT, 7)  # empty text shows "Thinking…"

    first, second = api.drafts(CHAT)
    assert (first.draft_id, first.text, first.params["can_stop"], first.params["keep_on_stop"]) == (
        7, "thinking", True, True)
    assert second.text == ""


async def test_drafts_are_private_only_and_need_a_draft_id(bot: ExtBot[Any]) -> None:
    with pytest.raises(BadRequest, match="private chats"):
        await bot.send_message_draft(GROUP, 7, "x")
    with pytest.raises(BadRequest, match="Draft_id must be non-zero"):
        await bot.send_message_draft(CHAT, 0, "x")


async def test_a_stopped_generation_update_reaches_a_type_handler() -> None:
    stopped: list[dict[str, Any]] = []

    async def on_any(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if "stopped_message_generation" in update.api_kwargs:
            stopped.append(update.api_kwargs["stopped_message_generation"])
            await context.bot.send_message(CHAT, "stopped")

    async with FakeBotAPI() as api:
        app = build_app(api)
        app.add_handler(TypeHandler(Update, on_any))
        async with polling(app, allowed_updates=[*Update.ALL_TYPES, "stopped_message_generation"]):
            api.push_update({"stopped_message_generation": {"chat": {"id": CHAT, "type": "private"}, "draft_id": 7}})
            await api.wait_for("sendMessage")

    assert stopped == [{"chat": {"id": CHAT, "type": "private"}, "draft_id": 7}]


async def test_a_chat_may_send_a_short_burst_then_one_message_a_second() -> None:
    clock = FakeClock()
    async with FakeBotAPI(clock=clock) as api, connected(api) as bot:
        api.enforce_telegram_limits()
        for n in range(3):
            await bot.send_message(CHAT, f"burst {n}")
        with pytest.raises(RetryAfter):
            await bot.send_message(CHAT, "fourth at once")
        await bot.send_message(OTHER_CHAT, "another chat has its own budget")
        await bot.send_message_draft(CHAT, 1, "a draft is not counted")
        clock.advance(1.0)
        await bot.edit_message_text("an edit counts", CHAT, 1)
        with pytest.raises(RetryAfter):
            await bot.send_message(CHAT, "and another at once")

    assert api.flood_rejections == 2 and api.flood_by_rule == {"chat": 2}
    assert api.calls_to("sendMessage")[3].error == "Too Many Requests: retry after 1"


async def test_a_group_gets_20_messages_a_minute() -> None:
    clock = FakeClock()
    async with FakeBotAPI(clock=clock) as api, connected(api) as bot:
        api.enforce_telegram_limits(TelegramLimits(chat_burst=100))  # only the group rule binds
        for n in range(20):
            await bot.send_message(GROUP, f"group {n}")
        with pytest.raises(RetryAfter) as refused:
            await bot.send_message(GROUP, "the 21st within a minute")
        clock.advance(60.0)
        await bot.send_message(GROUP, "a minute later")

    assert refused.value.retry_after in (60, timedelta(seconds=60)) and api.flood_by_rule == {"group": 1}


async def test_all_chats_together_get_30_messages_a_second() -> None:
    clock = FakeClock()
    async with FakeBotAPI(clock=clock) as api, connected(api) as bot:
        api.enforce_telegram_limits()
        for chat in range(1, 31):
            await bot.send_message(chat, "one each")
        with pytest.raises(RetryAfter):
            await bot.send_message(31, "the 31st in one second")
        clock.advance(1.0)
        await bot.send_message(31, "a second later")

    assert api.flood_by_rule == {"overall": 1}


async def test_down_answers_502_to_everything_until_the_time_is_up() -> None:
    clock = FakeClock()
    async with FakeBotAPI(clock=clock) as api, connected(api) as bot:
        api.down(10)
        with pytest.raises(NetworkError):
            await bot.send_message(CHAT, "lost in the outage")
        clock.advance(10)
        await bot.send_message(CHAT, "back")

    assert [(c.method, c.status) for c in api.calls[-2:]] == [("sendMessage", 502), ("sendMessage", 200)]
    assert [m.text for m in api.messages(CHAT)] == ["back"]


async def test_updates_below_the_offset_are_dropped(api: FakeBotAPI, bot: ExtBot[Any]) -> None:
    api.push_text(CHAT, "one")
    api.push_text(CHAT, "two")

    first = await bot.get_updates(timeout=0)
    confirmed = await bot.get_updates(offset=first[-1].update_id + 1, timeout=0)

    assert [u.message.text for u in first if u.message] == ["one", "two"]
    assert confirmed == ()
    assert await bot.get_updates(timeout=0) == ()


async def test_a_long_poll_returns_as_soon_as_an_update_arrives(api: FakeBotAPI, bot: ExtBot[Any]) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=30))
    await api.wait_polling()
    api.push_text(CHAT, "late")

    updates = await asyncio.wait_for(poll, timeout=5)

    assert [u.message.text for u in updates if u.message] == ["late"]


async def test_an_empty_long_poll_waits_for_its_timeout(bot: ExtBot[Any]) -> None:
    started = time.monotonic()
    assert await bot.get_updates(timeout=1) == ()
    assert time.monotonic() - started >= 0.9


async def test_stop_returns_promptly_while_ptb_is_long_polling(api: FakeBotAPI) -> None:
    app = build_app(api)
    async with polling(app, timeout=30):
        await api.wait_polling()
        started = time.monotonic()
        await api.stop()
        assert time.monotonic() - started < 2


async def test_send_document_records_the_upload(api: FakeBotAPI, bot: ExtBot[Any]) -> None:
    await bot.send_document(CHAT, b"print('hi')\n", filename="hi.py", caption="<b>script</b>", parse_mode="HTML")

    call = await api.wait_for("sendDocument")
    [message] = api.messages(CHAT)
    assert (call.params["document"].filename, call.params["document"].content) == ("hi.py", b"print('hi')\n")
    assert (message.caption, message.entities) == ("script", [{"type": "bold", "offset": 0, "length": 6}])
    assert message.document and message.document.content == b"print('hi')\n"


async def test_deleted_messages_stay_in_the_model_flagged(api: FakeBotAPI, bot: ExtBot[Any]) -> None:
    sent = await bot.send_message(CHAT, "temporary")
    await bot.delete_message(CHAT, sent.message_id)

    with pytest.raises(BadRequest, match="Message to delete not found"):
        await bot.delete_message(CHAT, sent.message_id)
    assert [(m.text, m.deleted) for m in api.messages(CHAT)] == [("temporary", True)]


async def test_commands_menu_round_trips_and_is_validated(api: FakeBotAPI, bot: ExtBot[Any]) -> None:
    await bot.set_my_commands([BotCommand("new", "start a session"), BotCommand("switch", "switch session")])

    assert [c.command for c in await bot.get_my_commands()] == ["new", "switch"]
    await bot.set_my_commands([BotCommand("hello_world", "a chat's own")], scope=BotCommandScopeChat(5))
    assert [c.command for c in await bot.get_my_commands(scope=BotCommandScopeChat(5))] == ["hello_world"]
    assert [c.command for c in await bot.get_my_commands()] == ["new", "switch"]  # the default menu is untouched
    with pytest.raises(BadRequest):
        await bot.set_my_commands([BotCommand("Bad-Name", "nope")])


async def test_a_forum_topic_message_carries_its_thread_and_name_and_sends_record_the_thread(api: FakeBotAPI) -> None:
    api.make_forum(GROUP)
    thread = api.open_topic(GROUP, "Bugs")
    seen: list[tuple[int | None, bool | None, str, bool | None]] = []

    async def remember(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        assert message and message.reply_to_message and message.reply_to_message.forum_topic_created
        name = message.reply_to_message.forum_topic_created.name
        seen.append((message.message_thread_id, message.is_topic_message, name, message.chat.is_forum))
        await context.bot.send_message(GROUP, "in the topic", message_thread_id=message.message_thread_id)
        await context.bot.send_chat_action(GROUP, "typing", message_thread_id=message.message_thread_id)

    app = build_app(api)
    app.add_handler(MessageHandler(filters.TEXT, remember))
    async with polling(app):
        api.push_text(GROUP, "hello", user_id=7, thread_id=thread)
        await api.wait_for("sendChatAction")

    assert seen == [(thread, True, "Bugs", True)]
    [message] = api.messages(GROUP)
    assert message.thread_id == thread
    assert api.calls_to("sendChatAction")[0].params["message_thread_id"] == thread


async def test_create_forum_topic_works_in_forums_only_and_unknown_threads_are_refused(
    api: FakeBotAPI, bot: ExtBot[Any]
) -> None:
    api.make_forum(GROUP)

    topic = await bot.create_forum_topic(GROUP, "Research")

    assert api.topics[(GROUP, topic.message_thread_id)] == "Research"
    with pytest.raises(BadRequest, match="not a forum"):
        await bot.create_forum_topic(-100999, "Nope")
    with pytest.raises(BadRequest, match="not a forum"):
        await bot.create_forum_topic(CHAT, "private without topics")
    with pytest.raises(BadRequest, match="thread not found"):
        await bot.send_message(GROUP, "lost", message_thread_id=topic.message_thread_id + 50)
    api.topics_enabled = True
    assert (await bot.create_forum_topic(CHAT, "private with topics")).message_thread_id
