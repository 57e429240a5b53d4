"""The Telegram front end: allowlist, commands, routing messages and uploads to sessions, the Application.

It knows Telegram only; sessions come from the sessions layer and the rendering of a turn from streaming.py.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
import time
from pathlib import Path
from typing import Any

import aiofiles
from telegram import (
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
)
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from claude_bridge.errors import BridgeError
from claude_bridge.sessions.manager import MODEL_ALIASES, Delivery, SessionManager
from claude_bridge.settings import Settings
from claude_bridge.telegram.outbox import Outboxes
from claude_bridge.telegram.streaming import ChatPrefs, Sender, TurnView
from claude_bridge.telegram.voice import Borrowed, voice_handler

logger = logging.getLogger(__name__)

COMMANDS = [
    ("start", "What this bot is"),
    ("help", "Commands and tips"),
    ("new", "New session: /new [name] [persona]"),
    ("switch", "Switch session: /switch [name]"),
    ("sessions", "List sessions"),
    ("model", "Show or set the model: /model [name]"),
    ("persona", "Show or set the persona: /persona [name]"),
    ("stop", "Stop the running answer"),
    ("status", "Session, model, queue, cost, timings"),
    ("delete", "Delete a session: /delete <name>"),
]
HELP = """Send any message and Claude Code answers in the active session (a folder on this machine).

/new [name] [persona] — start a session (and switch to it)
/switch [name] — change the active session (no name: buttons)
/sessions — list sessions
/model [sonnet|opus|haiku|full id|default] — show or change the model
/persona [name] — show or change the persona (system prompt)
/stop — stop the running answer; the session lives on
/status — what the active session is doing
/delete <name> — delete a session (asks first)

Files and photos you send are saved in the session's files/ folder and shown to Claude."""
REFUSAL = "⛔ This is a private bot. Your Telegram user id is {uid}; the owner can add it to ALLOWED_USER_IDS."
SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class BotState:
    """What the handlers share; lives in `application.bot_data["state"]`."""

    def __init__(self, settings: Settings, manager: SessionManager) -> None:
        self.settings = settings
        self.manager = manager
        self.outboxes = Outboxes()
        self.prefs: dict[int, ChatPrefs] = {}
        self.refused_at: dict[int, float] = {}
        self.views: set[asyncio.Task[None]] = set()
        self.download_limit = int(settings.max_download_mb * 1024 * 1024)


def state_of(context: ContextTypes.DEFAULT_TYPE) -> BotState:
    state: BotState = context.application.bot_data["state"]
    return state


def sender_for(context: ContextTypes.DEFAULT_TYPE, chat_id: int) -> Sender:
    return Sender(context.bot, state_of(context).outboxes(chat_id))


async def reply(update: Update, context: ContextTypes.DEFAULT_TYPE, text: str, **kwargs: Any) -> None:
    """A short plain answer to a command, through the chat's outbox."""
    chat = update.effective_chat
    if chat is None:
        return
    message = update.effective_message
    future = sender_for(context, chat.id).text(text, reply_to=message.message_id if message else None, **kwargs)
    with contextlib.suppress(Exception):
        await future


# ---- allowlist: runs before every other handler, for every kind of update ----------------------------


async def gate(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Let allowed users through; refuse strangers once a minute and stop the update here."""
    state = state_of(context)
    user = update.effective_user
    if user is not None and user.id in state.settings.allowed_user_ids:
        return
    chat = update.effective_chat
    if user is None:
        stopped = update.api_kwargs.get("stopped_message_generation") if update.api_kwargs else None
        chat_id = (stopped or {}).get("chat", {}).get("id") if isinstance(stopped, dict) else None
        if chat_id in state.settings.allowed_user_ids:
            return  # a private chat's id is the user's id
        raise ApplicationHandlerStop
    logger.warning("refused update from user id %s (@%s)", user.id, user.username or "-")
    now = time.monotonic()
    if now - state.refused_at.get(user.id, -3600.0) >= 60:
        state.refused_at[user.id] = now
        if update.callback_query is not None:
            with contextlib.suppress(Exception):
                await update.callback_query.answer("Not allowed.")
        if chat is not None:
            sender_for(context, chat.id).text(REFUSAL.format(uid=user.id))
    raise ApplicationHandlerStop


# ---- messages to Claude ---------------------------------------------------------------------------


async def run_delivery(state: BotState, bot: Any, delivery: Delivery, reply_to: int | None) -> None:
    """Show one delivery's turn in its chat."""
    chat_id = delivery.chat_id
    sender = Sender(bot, state.outboxes(chat_id))
    if delivery.position > 0:
        sender.text(
            f"⏳ Queued, #{delivery.position} — Claude answers it after the earlier message(s).", reply_to=reply_to
        )
    view = TurnView(sender, state.prefs.setdefault(chat_id, ChatPrefs()), reply_to=reply_to)
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
    """Hand a message to the chat's active session and show the answer as it streams."""
    state = state_of(context)
    chat = update.effective_chat
    message = update.effective_message
    assert chat is not None and message is not None
    delivery = await state.manager.send(chat.id, content)
    logger.debug("chat %s → session %s: %r", chat.id, delivery.session, content)
    start_view(state, context.bot, delivery, message.message_id)


async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A plain text message goes to Claude."""
    assert update.effective_message is not None
    await submit(update, context, update.effective_message.text or "")


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
    data = await download(update, context, item)
    if data is None:
        return
    path = await save_upload(update, context, original, data)
    caption = message.caption or ""
    note = f"[The user sent a file, saved at {path.relative_to(path.parent.parent)} (absolute path {path}).]"
    text = f"{note}\n{caption}" if caption else note
    content: str | list[dict[str, Any]] = text
    media_type = image_type(data)
    if message.photo and media_type:
        image = {"type": "base64", "media_type": media_type, "data": base64.b64encode(data).decode()}
        content = [{"type": "image", "source": image}, {"type": "text", "text": text}]
    await submit(update, context, content)


async def download(update: Update, context: ContextTypes.DEFAULT_TYPE, item: Any) -> bytes | None:
    """An attachment's bytes, or None after telling the user why not (too big, or the download failed)."""
    limit = state_of(context).download_limit
    if item.file_size and item.file_size > limit:
        await reply(
            update,
            context,
            f"⚠️ That file is {item.file_size / 2**20:.1f} MB; the bot can download at most {limit / 2**20:.0f} MB "
            "(Telegram's limit for bots; a self-hosted Bot API server allows more, see MAX_DOWNLOAD_MB). "
            "Nothing was sent to Claude.",
        )
        return None
    try:
        telegram_file = await item.get_file()
        return bytes(await telegram_file.download_as_bytearray())
    except Exception as exc:
        logger.warning("download of an upload failed: %s", exc)
        await reply(update, context, f"⚠️ Could not download the file from Telegram: {exc}")
        return None


async def save_upload(update: Update, context: ContextTypes.DEFAULT_TYPE, original: str, data: bytes) -> Path:
    """Save an attachment in the active session's files/ (creating the default session first if there is none)."""
    state = state_of(context)
    chat = update.effective_chat
    assert chat is not None
    name = state.manager.active_session(chat.id)
    if name is None:
        # The first message creates the default session; do that now so the file has a home.
        name = "default"
        if not state.manager.exists(name):
            state.manager.create(name)
            await reply(update, context, f"ℹ️ Created session “{name}” and made it active.")
        state.manager.switch(chat.id, name)
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


# ---- commands ------------------------------------------------------------------------------------


async def cmd_start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Greeting."""
    await reply(update, context, "👋 Claude Code, in your pocket. Just write; Claude answers here.\n\n" + HELP)


async def cmd_help(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The command list."""
    await reply(update, context, HELP)


def _chat_id(update: Update) -> int:
    assert update.effective_chat is not None
    return update.effective_chat.id


def _active(update: Update, context: ContextTypes.DEFAULT_TYPE) -> str | None:
    return state_of(context).manager.active_session(_chat_id(update))


async def cmd_new(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/new [name] [persona]: create a session and switch to it."""
    manager = state_of(context).manager
    args = context.args or []
    if len(args) > 2:
        await reply(update, context, "Usage: /new [name] [persona]")
        return
    name = args[0].lower() if args else _next_free_name(manager)
    persona = args[1] if len(args) > 1 else "default"
    manager.create(name, persona)
    info = manager.switch(_chat_id(update), name)
    await reply(update, context, f"✨ New session “{name}” (persona {info.persona}) is now active.")


def _next_free_name(manager: SessionManager) -> str:
    taken = {info.name for info in manager.list_sessions()}
    n = 1
    while f"s{n}" in taken:
        n += 1
    return f"s{n}"


def _session_buttons(manager: SessionManager, prefix: str, current: str | None) -> InlineKeyboardMarkup:
    rows = [
        [InlineKeyboardButton(("• " if i.name == current else "") + i.name, callback_data=f"{prefix}:{i.name}")]
        for i in manager.list_sessions()[:30]
    ]
    return InlineKeyboardMarkup(rows)


async def cmd_switch(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/switch [name]: change the active session; without a name, offer buttons."""
    manager = state_of(context).manager
    args = context.args or []
    if not args:
        if not manager.list_sessions():
            await reply(update, context, "No sessions yet. Send a message, or /new <name>.")
            return
        markup = _session_buttons(manager, "switch", _active(update, context))
        await reply(update, context, "Switch to which session?", markup=markup)
        return
    if len(args) != 1:
        await reply(update, context, "Usage: /switch [name]")
        return
    await _switch(update, context, args[0].lower())


async def _switch(update: Update, context: ContextTypes.DEFAULT_TYPE, name: str) -> None:
    info = state_of(context).manager.switch(_chat_id(update), name)
    await reply(update, context, f"➡️ Active session: “{info.name}” ({info.state}, persona {info.persona}).")


async def cmd_sessions(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """List sessions with their state."""
    manager = state_of(context).manager
    infos = manager.list_sessions()
    if not infos:
        await reply(update, context, "No sessions yet. Send a message, or /new <name>.")
        return
    active = _active(update, context)
    now = time.time()
    lines = ["Sessions:", *(info.line(info.name == active, now) for info in infos)]
    await reply(update, context, "\n".join(lines))


async def _require_active(update: Update, context: ContextTypes.DEFAULT_TYPE) -> str | None:
    name = _active(update, context)
    if name is None:
        await reply(update, context, "No active session yet. Send a message to start one, or /new <name>.")
    return name


async def cmd_model(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/model [name]: show the model (with buttons) or set it for the active session."""
    manager = state_of(context).manager
    name = await _require_active(update, context)
    if name is None:
        return
    args = context.args or []
    if not args:
        info = manager.status(name)
        source = "session override" if info.model_override else "persona / CLI default"
        buttons = [InlineKeyboardButton(alias, callback_data=f"model:{alias}") for alias in MODEL_ALIASES]
        buttons.append(InlineKeyboardButton("default", callback_data="model:default"))
        await reply(
            update,
            context,
            f"Model of “{name}”: {info.model} ({source}). Pick one or /model <full model id>.",
            markup=InlineKeyboardMarkup([buttons]),
        )
        return
    if len(args) != 1:
        await reply(update, context, "Usage: /model [sonnet|opus|haiku|<full model id>|default]")
        return
    await _set_model(update, context, name, args[0])


async def _set_model(update: Update, context: ContextTypes.DEFAULT_TYPE, name: str, model: str) -> None:
    info = await state_of(context).manager.set_model(name, None if model == "default" else model)
    await reply(update, context, f"🧠 Model of “{name}” is now {info.model}.")


async def cmd_persona(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/persona [name]: show personas or set the active session's."""
    manager = state_of(context).manager
    name = await _require_active(update, context)
    if name is None:
        return
    args = context.args or []
    if not args:
        current = manager.status(name).persona
        lines = [f"Persona of “{name}”: {current}. Available:"]
        lines += [f"• {p.name} — {p.description}" for p in manager.personas.values()]
        buttons = [[InlineKeyboardButton(p, callback_data=f"persona:{p}")] for p in sorted(manager.personas)]
        await reply(update, context, "\n".join(lines), markup=InlineKeyboardMarkup(buttons))
        return
    if len(args) != 1:
        await reply(update, context, "Usage: /persona [name]")
        return
    await _set_persona(update, context, name, args[0].lower())


async def _set_persona(update: Update, context: ContextTypes.DEFAULT_TYPE, name: str, persona: str) -> None:
    info = await state_of(context).manager.set_persona(name, persona)
    await reply(update, context, f"🎭 Persona of “{name}” is now {info.persona}; it applies from the next message.")


async def cmd_stop(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Interrupt the running answer; the session and its queue live on."""
    name = await _require_active(update, context)
    if name is None:
        return
    if not await state_of(context).manager.interrupt(name):
        await reply(update, context, f"Nothing is running in “{name}”.")


async def cmd_status(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """What the active session is doing."""
    name = await _require_active(update, context)
    if name is None:
        return
    await reply(update, context, state_of(context).manager.status(name).describe(time.time()))


async def cmd_delete(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/delete <name>: ask for confirmation with a button."""
    manager = state_of(context).manager
    args = context.args or []
    if len(args) != 1:
        await reply(update, context, "Usage: /delete <name>")
        return
    name = args[0].lower()
    manager.status(name)  # an unknown name raises SessionError, which on_error turns into the reply
    markup = InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(f"🗑 Delete {name}", callback_data=f"delete:{name}"),
                InlineKeyboardButton("Cancel", callback_data="cancel:"),
            ]
        ]
    )
    await reply(
        update, context, f"Delete session “{name}” with its folder and files? This cannot be undone.", markup=markup
    )


async def cmd_unknown(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Any other /command."""
    await reply(update, context, "Unknown command. /help lists what I understand.")


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Inline buttons: switch, model, persona, delete confirmation."""
    query = update.callback_query
    assert query is not None
    action, _, value = (query.data or "").partition(":")
    with contextlib.suppress(Exception):
        await query.answer()
    with contextlib.suppress(Exception):
        if isinstance(query.message, Message):
            await query.message.edit_reply_markup(None)
    manager = state_of(context).manager
    if action == "switch":
        await _switch(update, context, value)
    elif action == "model":
        name = await _require_active(update, context)
        if name is not None:
            await _set_model(update, context, name, value)
    elif action == "persona":
        name = await _require_active(update, context)
        if name is not None:
            await _set_persona(update, context, name, value)
    elif action == "delete":
        await manager.delete(value)
        await reply(update, context, f"🗑 Deleted session “{value}”.")
    elif action == "cancel":
        await reply(update, context, "Cancelled.")


async def on_raw_update(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Bot API 10.3 `stopped_message_generation` (the draft's Stop button) interrupts the turn."""
    stopped = update.api_kwargs.get("stopped_message_generation") if update.api_kwargs else None
    if not isinstance(stopped, dict):
        return
    chat_id = (stopped.get("chat") or {}).get("id")
    if not isinstance(chat_id, int):
        return
    manager = state_of(context).manager
    name = manager.active_session(chat_id)
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
        sender_for(context, update.effective_chat.id).text(f"⚠️ Internal error: {error}")


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

    async def notify(chat_id: int, text: str) -> None:
        await Sender(app.bot, state.outboxes(chat_id)).text(text)

    manager.notify = notify
    app.add_handler(TypeHandler(Update, gate), group=-1)
    app.add_handler(CommandHandler("start", cmd_start))
    app.add_handler(CommandHandler("help", cmd_help))
    app.add_handler(CommandHandler("new", cmd_new))
    app.add_handler(CommandHandler("switch", cmd_switch))
    app.add_handler(CommandHandler("sessions", cmd_sessions))
    app.add_handler(CommandHandler("model", cmd_model))
    app.add_handler(CommandHandler("persona", cmd_persona))
    app.add_handler(CommandHandler("stop", cmd_stop))
    app.add_handler(CommandHandler("status", cmd_status))
    app.add_handler(CommandHandler("delete", cmd_delete))
    app.add_handler(MessageHandler(filters.COMMAND, cmd_unknown))
    app.add_handler(CallbackQueryHandler(on_button))
    app.add_handler(MessageHandler(filters.UpdateType.EDITED, on_edited))
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, on_text))
    app.add_handler(MessageHandler(filters.Document.ALL | filters.PHOTO, on_upload))
    app.add_handler(voice_handler(settings.transcribe, Borrowed(download, save_upload, submit, sender_for)))
    app.add_handler(TypeHandler(Update, on_raw_update), group=1)
    app.add_error_handler(on_error)
    return app


async def post_init(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Register commands, clean up after a crash, re-deliver queued messages, start the idle timer."""
    state: BotState = app.bot_data["state"]
    await app.bot.set_my_commands([BotCommand(name, text) for name, text in COMMANDS])
    reaped = state.manager.reap_leftovers()
    if reaped:
        logger.warning("stopped %d Claude process(es) left by a previous run: %s", len(reaped), reaped)
    for delivery in await state.manager.recover():
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
