"""The Telegram front end: allowlist, routing messages and uploads to sessions, command replies as buttons, the app.

It knows Telegram only; sessions come from the sessions layer and the rendering of a turn from streaming.py.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiofiles
import httpx
from telegram import (
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
)
from telegram.error import TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from claude_bridge.commands.catalog import SPECS, menu
from claude_bridge.commands.core import Commands
from claude_bridge.commands.reply import Choice, Reply
from claude_bridge.commands.wording import claude_turn_header
from claude_bridge.errors import BridgeError
from claude_bridge.sessions.manager import Delivery, Place, SessionManager, Where
from claude_bridge.settings import Settings
from claude_bridge.telegram.files import file_sink
from claude_bridge.telegram.gate import make_gate, place_allowed
from claude_bridge.telegram.intake import InOrder
from claude_bridge.telegram.outbox import Outboxes
from claude_bridge.telegram.prompts import PromptMessages, prompt_button_handler
from claude_bridge.telegram.streaming import ChatPrefs, Sender, TurnView
from claude_bridge.telegram.topics import open_topic, place_of, topic_opened, topic_title
from claude_bridge.telegram.voice import Borrowed, voice_handler

logger = logging.getLogger(__name__)

BUTTONS_PER_ROW = 4
SHORT_LABEL = 12  # characters; longer labels get a row each so Telegram does not cut them
DOWNLOAD_CHUNK = 64 * 1024
DOWNLOAD_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class BotState:
    """What the handlers share; lives in `application.bot_data["state"]`."""

    def __init__(self, settings: Settings, manager: SessionManager) -> None:
        self.settings = settings
        self.manager = manager
        self.commands = Commands(manager)
        self.outboxes = Outboxes()
        self.prefs: dict[int, ChatPrefs] = {}
        self.views: set[asyncio.Task[None]] = set()
        self.download_limit = int(settings.max_download_mb * 1024 * 1024)
        self.intake = InOrder()  # a text sent after a voice note waits for the note's transcription


def state_of(context: ContextTypes.DEFAULT_TYPE) -> BotState:
    state: BotState = context.application.bot_data["state"]
    return state


def sender_for(context: ContextTypes.DEFAULT_TYPE, chat_id: int, thread_id: int | None = None) -> Sender:
    return Sender(context.bot, state_of(context).outboxes(chat_id), thread_id)


def sender_of(context: ContextTypes.DEFAULT_TYPE, update: Update) -> Sender:
    """A sender for the update's chat and forum topic."""
    place = place_of(update)
    return sender_for(context, place.chat_id, place.thread_id)


async def reply(update: Update, context: ContextTypes.DEFAULT_TYPE, text: str, **kwargs: Any) -> None:
    """A short plain answer to a command, through the chat's outbox, in the update's forum topic."""
    if update.effective_chat is None:
        return
    message = update.effective_message
    future = sender_of(context, update).text(text, reply_to=message.message_id if message else None, **kwargs)
    with contextlib.suppress(Exception):
        await future


# ---- messages to Claude ---------------------------------------------------------------------------


async def run_delivery(state: BotState, bot: Any, delivery: Delivery, reply_to: int | None) -> None:
    """Show one delivery's turn in its chat (and forum topic)."""
    chat_id = delivery.chat_id
    sender = Sender(bot, state.outboxes(chat_id), delivery.thread_id)
    if delivery.by_claude:
        # Claude's own turn: a message of its own (so the phone notifies) saying what started it.
        active = state.manager.active_session(delivery.place)
        elsewhere = delivery.session if active != delivery.session else None
        sender.answer(claude_turn_header(delivery.header, elsewhere))
    if delivery.position > 0:
        sender.text(
            f"⏳ Queued, #{delivery.position} — Claude answers it after the earlier message(s).", reply_to=reply_to
        )
    prefs = state.prefs.setdefault(chat_id, ChatPrefs())
    view = TurnView(sender, prefs, reply_to=reply_to, queued=delivery.position > 0)
    await view.run(delivery.events())


def start_view(state: BotState, bot: Any, delivery: Delivery, reply_to: int | None) -> None:
    task = asyncio.create_task(run_delivery(state, bot, delivery, reply_to), name=f"view-{delivery.entry_id}")
    state.views.add(task)
    task.add_done_callback(_view_done(state))


def _view_done(state: BotState) -> Any:
    def done(task: asyncio.Task[None]) -> None:
        state.views.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("showing a turn failed", exc_info=task.exception())

    return done


async def submit(update: Update, context: ContextTypes.DEFAULT_TYPE, content: str | list[dict[str, Any]]) -> None:
    """Hand a message to the active session of its chat or forum topic and show the answer as it streams."""
    state = state_of(context)
    message = update.effective_message
    assert message is not None
    place = place_of(update)
    delivery = await state.manager.send(place, content, topic=topic_title(update))
    logger.debug("%s → session %s: %r", place.key, delivery.session, content)
    start_view(state, context.bot, delivery, message.message_id)


def in_line(update: Update, context: ContextTypes.DEFAULT_TYPE) -> Any:
    """This message's place in its chat's (or topic's) line to Claude: see intake.InOrder."""
    return state_of(context).intake.place_in_line(place_of(update).key)


async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A plain text message goes to Claude (after any earlier message of the chat that is still being prepared)."""
    assert update.effective_message is not None
    text = update.effective_message.text or ""
    async with in_line(update, context) as hand_over:
        await hand_over(lambda: submit(update, context, text))


async def on_edited(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Edits are not forwarded: Claude already read the original."""
    await reply(update, context, "✏️ Edited messages are not sent to Claude; send the change as a new message.")


async def on_upload(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A document or photo is saved in the session's files/ and described to Claude (photos also as images)."""
    message = update.effective_message
    assert message is not None
    if message.photo:
        item: Any = message.photo[-1]
        original = f"photo-{message.message_id}.jpg"
    elif message.document:
        item = message.document
        original = message.document.file_name or f"file-{message.message_id}"
    else:
        return
    async with in_line(update, context) as hand_over:
        path = await download_to_files(update, context, item, original)
        if path is None:
            return
        data = await asyncio.to_thread(path.read_bytes) if message.photo else b""
        caption = message.caption or ""
        note = f"[The user sent a file, saved at {path.relative_to(path.parent.parent)} (absolute path {path}).]"
        text = f"{note}\n{caption}" if caption else note
        content: str | list[dict[str, Any]] = text
        media_type = image_type(data)
        if message.photo and media_type:
            image = {"type": "base64", "media_type": media_type, "data": base64.b64encode(data).decode()}
            content = [{"type": "image", "source": image}, {"type": "text", "text": text}]
        await hand_over(lambda: submit(update, context, content))


class TooBig(Exception):
    """The download passed the limit (Telegram gave no size, or a wrong one)."""


async def _stream(item: Any, write: Callable[[bytes], Awaitable[Any]], limit: int) -> None:
    """Fetch an attachment chunk by chunk into `write`, counting bytes: raises TooBig past `limit`."""
    telegram_file = await item.get_file()
    source = telegram_file.file_path or ""
    total = 0

    async def take(chunk: bytes) -> None:
        nonlocal total
        total += len(chunk)
        if total > limit:
            raise TooBig
        await write(chunk)

    if Path(source).is_absolute():  # a self-hosted Bot API server in local mode
        async with aiofiles.open(source, "rb") as handle:
            while chunk := await handle.read(DOWNLOAD_CHUNK):
                await take(chunk)
        return
    async with httpx.AsyncClient(timeout=DOWNLOAD_TIMEOUT) as client, client.stream("GET", source) as response:
        response.raise_for_status()
        async for chunk in response.aiter_bytes(DOWNLOAD_CHUNK):
            await take(chunk)


def _too_big_text(limit: int, size: float | None = None) -> str:
    said = f"That file is {size / 2**20:.1f} MB; " if size else "That file is too big: "
    return (
        f"⚠️ {said}the bot can download at most {limit / 2**20:.0f} MB "
        "(Telegram's limit for bots; a self-hosted Bot API server allows more, see MAX_DOWNLOAD_MB). "
        "Nothing was sent to Claude."
    )


async def _refused_by_size(update: Update, context: ContextTypes.DEFAULT_TYPE, item: Any, limit: int) -> bool:
    if item.file_size and item.file_size > limit:
        await reply(update, context, _too_big_text(limit, item.file_size))
        return True
    return False


async def download(update: Update, context: ContextTypes.DEFAULT_TYPE, item: Any) -> bytes | None:
    """An attachment's bytes (never more than the limit in memory), or None after telling the user why not."""
    limit = state_of(context).download_limit
    if await _refused_by_size(update, context, item, limit):
        return None
    data = bytearray()

    async def append(chunk: bytes) -> None:
        data.extend(chunk)

    try:
        await _stream(item, append, limit)
    except TooBig:
        await reply(update, context, _too_big_text(limit))
        return None
    except Exception as exc:
        logger.warning("download of an upload failed: %s", exc)
        await reply(update, context, f"⚠️ Could not download the file from Telegram: {exc}")
        return None
    return bytes(data)


async def download_to_files(
    update: Update, context: ContextTypes.DEFAULT_TYPE, item: Any, original: str
) -> Path | None:
    """Stream an attachment into the active session's files/ (a temp file renamed when complete), or None after
    telling the user why not; past the limit the partial file is deleted, whatever size Telegram announced."""
    state = state_of(context)
    limit = state.download_limit
    if await _refused_by_size(update, context, item, limit):
        return None
    name, notice = state.manager.ensure_active(place_of(update), topic=topic_title(update))
    if notice:
        await reply(update, context, f"ℹ️ {notice}")
    final = state.manager.files_dir(name) / unique_name(original)
    partial = final.with_name(f".{final.name}.part")
    try:
        async with aiofiles.open(partial, "wb") as handle:
            await _stream(item, handle.write, limit)
        partial.replace(final)
    except TooBig:
        partial.unlink(missing_ok=True)
        await reply(update, context, _too_big_text(limit))
        return None
    except Exception as exc:
        partial.unlink(missing_ok=True)
        logger.warning("download of an upload failed: %s", exc)
        await reply(update, context, f"⚠️ Could not download the file from Telegram: {exc}")
        return None
    return final


async def save_upload(update: Update, context: ContextTypes.DEFAULT_TYPE, original: str, data: bytes) -> Path:
    """Save an attachment in the active session's files/ (creating the default session first if there is none)."""
    state = state_of(context)
    # The first message creates the default session (or the topic's); do that now so the file has a home.
    name, notice = state.manager.ensure_active(place_of(update), topic=topic_title(update))
    if notice:
        await reply(update, context, f"ℹ️ {notice}")
    path = state.manager.files_dir(name) / unique_name(original)
    async with aiofiles.open(path, "wb") as handle:
        await handle.write(data)
    return path


def image_type(data: bytes) -> str | None:
    """The media type of an image Claude accepts, from its first bytes."""
    signatures = {b"\xff\xd8\xff": "image/jpeg", b"\x89PNG\r\n\x1a\n": "image/png", b"GIF8": "image/gif"}
    for magic, media_type in signatures.items():
        if data.startswith(magic):
            return media_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def unique_name(original: str) -> str:
    """A safe file name: no path parts, only [A-Za-z0-9._-], prefixed with a timestamp to be unique."""
    base = SAFE_NAME.sub("_", Path(original).name).strip("._") or "file"
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 1_000_000:06d}-{base[-100:]}"


# ---- commands: run by the command layer, shown here --------------------------------------------------


def keyboard(choices: tuple[Choice, ...]) -> InlineKeyboardMarkup | None:
    """A reply's choices as inline buttons whose callback_data is the command; short labels share a row."""
    if not choices:
        return None
    per_row = BUTTONS_PER_ROW if all(len(choice.label) <= SHORT_LABEL for choice in choices) else 1
    buttons = [InlineKeyboardButton(choice.label, callback_data=choice.command) for choice in choices]
    return InlineKeyboardMarkup([buttons[i : i + per_row] for i in range(0, len(buttons), per_row)])


async def show(update: Update, context: ContextTypes.DEFAULT_TYPE, answer: Reply) -> None:
    """A command's reply, its choices as buttons."""
    await reply(update, context, answer.text, markup=keyboard(answer.choices))


async def on_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Any /command (known or not): the command layer answers it."""
    message = update.effective_message
    assert message is not None
    line = message.text or ""
    place = await _new_topic(update, context, line) or place_of(update)
    try:
        answer = await state_of(context).commands.run(place, line)
    except BridgeError:
        if place != place_of(update):  # the new session was refused: its topic goes too
            with contextlib.suppress(TelegramError):
                await context.bot.delete_forum_topic(place.chat_id, place.thread_id or 0)
        raise
    if place != place_of(update):  # /new opened a topic: the answer goes there, and here a pointer to it
        with contextlib.suppress(Exception):
            await sender_for(context, place.chat_id, place.thread_id).text(answer.text)
        answer = Reply(topic_opened(line))
    await show(update, context, answer)


async def _new_topic(update: Update, context: ContextTypes.DEFAULT_TYPE, line: str) -> Place | None:
    """/new in a forum's General topic opens a topic for the new session; None where it cannot (and says why)."""
    try:
        return await open_topic(context.bot, update, line)
    except TelegramError as exc:
        logger.info("%s: could not create a topic for /new (%s)", place_of(update).key, exc)
        await reply(update, context, f"ℹ️ Could not open a topic for the new session ({exc}); it is this chat's.")
        return None


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """An inline button: its callback_data is the command to run; the buttons go away once one is pressed."""
    query = update.callback_query
    assert query is not None
    with contextlib.suppress(Exception):
        await query.answer()
    with contextlib.suppress(Exception):
        if isinstance(query.message, Message):
            await query.message.edit_reply_markup(None)
    await show(update, context, await state_of(context).commands.run(place_of(update), query.data or ""))


async def on_raw_update(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Bot API 10.3 `stopped_message_generation` (the draft's Stop button) interrupts the turn."""
    stopped = update.api_kwargs.get("stopped_message_generation") if update.api_kwargs else None
    if not isinstance(stopped, dict):
        return
    chat_id, thread_id = (stopped.get("chat") or {}).get("id"), stopped.get("message_thread_id")
    if not isinstance(chat_id, int):
        return
    manager = state_of(context).manager
    name = manager.active_session(Place(chat_id, thread_id if isinstance(thread_id, int) else None))
    if name is not None:
        await manager.interrupt(name)


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A BridgeError becomes its short reply; anything else is logged with its traceback and reported."""
    error = context.error
    if not isinstance(update, Update) or update.effective_chat is None:
        logger.error("error outside an update", exc_info=error)
        return
    if isinstance(error, BridgeError):
        logger.info("refused in chat %s: %s", update.effective_chat.id, error)
        await reply(update, context, f"⚠️ {error}")
        return
    logger.error("error while handling an update", exc_info=error)
    with contextlib.suppress(Exception):
        sender_of(context, update).text(f"⚠️ Internal error: {error}")


# ---- wiring --------------------------------------------------------------------------------------


def build_application(settings: Settings, manager: SessionManager) -> Application[Any, Any, Any, Any, Any, Any]:
    """The PTB Application with every handler; no network until it is started."""
    app = (
        ApplicationBuilder()
        .token(settings.telegram_token)
        .base_url(settings.bot_base_url)
        .base_file_url(settings.bot_file_base_url)
        .concurrent_updates(True)
        # Global 30/s and group 20/min pacing; RetryAfter reaches our per-chat outbox (max_retries=0).
        .rate_limiter(AIORateLimiter(max_retries=0))
        .connect_timeout(10)
        .read_timeout(30)
        .write_timeout(30)
        .media_write_timeout(120)
        .get_updates_read_timeout(30)
        .post_init(post_init)
        .post_stop(post_stop)
        .post_shutdown(post_shutdown)
        .build()
    )
    state = BotState(settings, manager)
    app.bot_data["state"] = state

    async def notify(where: Where, text: str) -> None:
        place = Place.of(where)
        await Sender(app.bot, state.outboxes(place.chat_id), place.thread_id).text(text)

    manager.notify = notify
    manager.file_sink = file_sink(app.bot, state.outboxes)
    manager.show_claude_turn = lambda delivery: start_view(state, app.bot, delivery, None)
    manager.prompts.listener = PromptMessages(app.bot, state.outboxes)

    def notify_soon(chat_id: int, text: str) -> None:
        Sender(app.bot, state.outboxes(chat_id)).text(text)

    app.add_handler(TypeHandler(Update, make_gate(settings, notify_soon)), group=-1)
    # CommandHandler skips "/cmd@otherbot" in groups; any other /command gets the command layer's "unknown".
    app.add_handler(CommandHandler([spec.name for spec in SPECS], on_command))
    app.add_handler(MessageHandler(filters.COMMAND, on_command))
    app.add_handler(prompt_button_handler(lambda: state.commands))
    app.add_handler(CallbackQueryHandler(on_button))
    app.add_handler(MessageHandler(filters.UpdateType.EDITED, on_edited))
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, on_text))
    app.add_handler(MessageHandler(filters.Document.ALL | filters.PHOTO, on_upload))
    app.add_handler(voice_handler(settings.transcribe, Borrowed(download, save_upload, submit, sender_of, in_line)))
    app.add_handler(TypeHandler(Update, on_raw_update), group=1)
    app.add_error_handler(on_error)
    return app


async def post_init(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Register commands, clean up after a crash, re-deliver queued messages, start the idle timer."""
    state: BotState = app.bot_data["state"]
    await app.bot.set_my_commands([BotCommand(name, text) for name, text in menu()])
    reaped = state.manager.reap_leftovers()
    if reaped:
        logger.warning("stopped %d Claude process(es) left by a previous run: %s", len(reaped), reaped)
    # A message saved before the restart is answered only where today's settings still let the bot talk.
    for delivery in await state.manager.recover(lambda place: place_allowed(place.chat_id, state.settings)):
        start_view(state, app.bot, delivery, None)
    state.manager.start_scheduler()
    logger.info("bot started as @%s; %d allowed user(s)", app.bot.username, len(state.settings.allowed_user_ids))


async def post_stop(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Updates have stopped: end running turns and stop every Claude process while we can still send."""
    state: BotState = app.bot_data["state"]
    logger.info("shutting down: stopping Claude sessions")
    await state.manager.close_all()
    if state.views:
        await asyncio.wait(state.views, timeout=10)


async def post_shutdown(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    state: BotState = app.bot_data["state"]
    for task in list(state.views):
        task.cancel()
    await state.outboxes.close()
    logger.info("shutdown complete")
