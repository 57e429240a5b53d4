"""The Telegram front end: allowlist, routing messages and uploads to sessions, command replies as buttons, the app.

It knows Telegram only; sessions come from the sessions layer and the rendering of a turn from streaming.py.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Any

from telegram import (
    BotCommand,
    BotCommandScopeChat,
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

from claude_bridge.commands import menu as claude_menu
from claude_bridge.commands.catalog import SPECS, menu
from claude_bridge.commands.core import Commands, parse
from claude_bridge.commands.limit_wording import queued_line
from claude_bridge.commands.reply import Choice, Reply
from claude_bridge.commands.schedules import Runner
from claude_bridge.commands.wording import claude_turn_title, queued_text
from claude_bridge.errors import BridgeError, TranscriptionError
from claude_bridge.protocol.limits import RateLimit
from claude_bridge.sessions.frontend import ClaudeCommands, FrontEnd
from claude_bridge.sessions.limits import Hold
from claude_bridge.sessions.manager import SessionManager
from claude_bridge.sessions.place import Place
from claude_bridge.sessions.prompts import Prompt
from claude_bridge.sessions.schedules import STORE_NAME, Schedules
from claude_bridge.sessions.store import STATE_DIR
from claude_bridge.sessions.tools import OutgoingFile
from claude_bridge.sessions.worker import Delivery
from claude_bridge.settings import Settings
from claude_bridge.telegram.files import file_sink
from claude_bridge.telegram.gate import make_gate, place_allowed
from claude_bridge.telegram.limits import LimitMessages
from claude_bridge.telegram.outbox import Outboxes
from claude_bridge.telegram.prompts import PromptMessages, prompt_button_handler
from claude_bridge.telegram.reloading import Reloader, resume, take_handover
from claude_bridge.telegram.streaming import ChatPrefs, Sender, TurnView
from claude_bridge.telegram.topics import author_of, open_topic, place_of, place_title, topic_opened
from claude_bridge.telegram.uploads import Attachment, attachment_of, download, image_type
from claude_bridge.telegram.voice import claude_message, not_transcribed, quoted, voice_off, words_of

logger = logging.getLogger(__name__)

# After a reload, what a chat already shows of a delivery: its view's snapshot, or True for a message seen queued.
Resumed = dict[str, Any] | bool | None

PROJECT_DIR = Path(__file__).resolve().parents[2]  # where bot.py is: a reload checks and runs the code there
BUTTONS_PER_ROW = 4
SHORT_LABEL = 12  # characters; longer labels get a row each so Telegram does not cut them


class BotState:
    """What the handlers share; lives in `application.bot_data["state"]`."""

    def __init__(
        self,
        settings: Settings,
        manager: SessionManager,
        outboxes: Outboxes | None = None,
        schedules: Schedules | None = None,
    ) -> None:
        self.settings = settings
        self.manager = manager
        self.schedules = schedules
        self.commands = Commands(manager, schedules=schedules)
        self.outboxes = outboxes or Outboxes()
        self.prefs: dict[int, ChatPrefs] = {}
        self.views: set[asyncio.Task[None]] = set()
        self.turn_views: dict[str, TurnView] = {}  # running views by inbox entry (a reload hands them over)
        self.front_end: TelegramFrontEnd | None = None
        self.download_limit = int(settings.max_download_mb * 1024 * 1024)
        self.drafts: dict[int, Delivery] = {}  # the turn each live draft shows (its Stop button stops that turn)


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
    with contextlib.suppress(TelegramError):  # the outbox logged it; a reply nobody can see needs nothing more
        await future


# ---- messages to Claude ---------------------------------------------------------------------------


async def run_delivery(
    state: BotState,
    bot: Any,
    delivery: Delivery,
    reply_to: int | None,
    resumed: Resumed = None,
    heading: str = "",
) -> None:
    """Show one delivery's turn in its chat (and forum topic); after a reload, go on with what the previous image
    showed (`resumed`: its view's snapshot; `True`: a message the chat already saw queued); `heading` above it (a
    scheduled prompt's)."""
    chat_id = delivery.chat_id
    sender = Sender(bot, state.outboxes(chat_id), delivery.thread_id)
    if heading:
        sender.text(heading)  # plain: a prompt's own * or _ are not Markdown
    if delivery.by_claude and not resumed:
        # Claude's own turn: a message of its own (so the phone notifies) saying what started it (after a reload the
        # chat has it already).
        sender.answer(claude_turn_title(delivery, state.manager.active_session(delivery.place)))
    hold = state.manager.limits.held(delivery.session)  # it waits for the usage limit's reset
    if resumed is not None:
        pass  # after a reload: the chat already saw this message queued (or its answer begin)
    elif hold is not None:
        sender.text(queued_line(hold, time.time(), state.settings.time_zone), reply_to=reply_to)
    elif delivery.position > 0:
        sender.text(f"⏳ {queued_text(delivery.position)}", reply_to=reply_to)
    prefs = state.prefs.setdefault(chat_id, ChatPrefs())
    if isinstance(resumed, dict) and resumed:
        view = TurnView.resume(sender, prefs, resumed)
    else:
        waiting = resumed is not None or hold is not None or delivery.position > 0
        view = TurnView(sender, prefs, reply_to=reply_to, queued=waiting)
    state.turn_views[delivery.entry_id] = view
    state.drafts[view.draft_id] = delivery
    try:
        await view.run(delivery.events(), lambda: delivery.running)
    finally:
        state.drafts.pop(view.draft_id, None)
        if not view.handed_over.is_set():
            state.turn_views.pop(delivery.entry_id, None)


def start_view(
    state: BotState, bot: Any, delivery: Delivery, reply_to: int | None, resumed: Resumed = None, heading: str = ""
) -> None:
    view = run_delivery(state, bot, delivery, reply_to, resumed, heading)
    task = asyncio.create_task(view, name=f"view-{delivery.entry_id}")
    state.views.add(task)
    task.add_done_callback(_view_done(state))


def _view_done(state: BotState) -> Any:
    def done(task: asyncio.Task[None]) -> None:
        state.views.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("showing a turn failed", exc_info=task.exception())

    return done


async def submit(
    update: Update, context: ContextTypes.DEFAULT_TYPE, content: str | list[dict[str, Any]], reserved: Delivery
) -> None:
    """Give a message its content in the place in line it took on arrival, and show the answer as it streams."""
    state = state_of(context)
    message = update.effective_message
    assert message is not None
    delivery = await state.manager.accept(reserved, content)
    logger.debug("%s → session %s: %r", place_of(update).key, delivery.session, content)
    start_view(state, context.bot, delivery, message.message_id)


def in_line(update: Update, context: ContextTypes.DEFAULT_TYPE) -> Any:
    """This message's place in its session's line, taken on arrival: a later text waits for an earlier voice note."""
    return state_of(context).manager.in_line(place_of(update), topic=place_title(update))


async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A plain text message goes to Claude (after any earlier message of the chat that is still being prepared)."""
    assert update.effective_message is not None
    text = update.effective_message.text or ""
    with in_line(update, context) as reserved:
        await submit(update, context, text, reserved)


async def on_edited(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Edits are not forwarded: Claude already read the original."""
    await reply(update, context, "✏️ Edited messages are not sent to Claude; send the change as a new message.")


async def save_attachment(update: Update, context: ContextTypes.DEFAULT_TYPE, attachment: Attachment) -> Path:
    """Stream the message's file into its active session's files/ (the first message creates the session, so the
    file has a home); a BridgeError, which the error handler shows, says why not."""
    state = state_of(context)

    async def folder() -> Path:
        name, notice = state.manager.ensure_active(place_of(update), topic=place_title(update))
        if notice:
            await reply(update, context, f"ℹ️ {notice}")
        return state.manager.files_dir(name)

    return await download(attachment, state.download_limit, folder)


async def on_attachment(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A document, photo, voice note or audio file: saved in the session's files/, then given to Claude (a file
    described, a photo also as an image, a voice note as its transcript)."""
    message = update.effective_message
    assert message is not None
    attachment = attachment_of(message)
    if attachment is None:
        return
    with in_line(update, context) as reserved:  # later texts wait for this one
        path = await save_attachment(update, context, attachment)
        content: str | list[dict[str, Any]] | None
        if attachment.kind in ("voice", "audio"):
            content = await _heard(update, context, path)
        else:
            content = await _described(attachment, path, message.caption or "")
        if content is not None:
            await submit(update, context, content, reserved)


async def _described(attachment: Attachment, path: Path, caption: str) -> str | list[dict[str, Any]]:
    """What Claude reads about a saved file: where it is, the caption, and a photo itself when Claude can see it."""
    note = f"[The user sent a file, saved at {path.relative_to(path.parent.parent)} (absolute path {path}).]"
    text = f"{note}\n{caption}" if caption else note
    data = await asyncio.to_thread(path.read_bytes) if attachment.kind == "photo" else b""
    media_type = image_type(data)
    if media_type is None:
        return text
    image = {"type": "base64", "media_type": media_type, "data": base64.b64encode(data).decode()}
    return [{"type": "image", "source": image}, {"type": "text", "text": text}]


async def _heard(update: Update, context: ContextTypes.DEFAULT_TYPE, path: Path) -> str | None:
    """A saved voice note's transcript, shown quoted with 🎤, as Claude's message; None after saying why not."""
    message = update.effective_message
    assert message is not None
    settings = state_of(context).settings.transcribe
    if not settings.enabled:
        await reply(update, context, voice_off(path))
        return None
    try:
        text = await words_of(path, settings)
    except TranscriptionError as exc:
        logger.warning("chat %s: transcription failed: %s", message.chat_id, exc)
        await reply(update, context, not_transcribed(path, exc))
        return None
    sender_of(context, update).chunk(quoted(text), reply_to=message.message_id)  # it goes before Claude's answer
    return claude_message(text, path, message.caption)


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
    """Any /command: the command layer answers its own; one of the session's Claude commands goes to Claude."""
    message = update.effective_message
    assert message is not None
    line = message.text or ""
    claude_line = _claude_command(update, context, line)
    if claude_line is not None:
        with in_line(update, context) as reserved:
            await submit(update, context, claude_line, reserved)
        return
    place = await _new_topic(update, context, line) or place_of(update)
    try:
        answer = await state_of(context).commands.run(place, line, by=author_of(update))
    except BridgeError:
        if place != place_of(update):  # the new session was refused: its topic goes too
            with contextlib.suppress(TelegramError):
                await context.bot.delete_forum_topic(place.chat_id, place.thread_id or 0)
        raise
    if place != place_of(update):  # /new opened a topic: the answer goes there, and here a pointer to it
        with contextlib.suppress(TelegramError):  # the outbox logged it; the pointer below still goes out
            await sender_for(context, place.chat_id, place.thread_id).text(answer.text)
        answer = Reply(topic_opened(line))
    await show(update, context, answer)


def _claude_command(update: Update, context: ContextTypes.DEFAULT_TYPE, line: str) -> str | None:
    """The line as the active session's Claude command, if it is one (not ours, not for another bot)."""
    name, _ = parse(line)
    addressed = line.strip().split(maxsplit=1)[0].partition("@")[2]
    if state_of(context).commands.knows(name) or (addressed and addressed.lower() != context.bot.username.lower()):
        return None
    return state_of(context).commands.claude_line(place_of(update), line)


async def _new_topic(update: Update, context: ContextTypes.DEFAULT_TYPE, line: str) -> Place | None:
    """/new in a forum's General topic opens a topic for the new session; None where it cannot (and says why)."""
    if state_of(context).commands.refusal(line) is not None:
        return None  # refused /new: answered here, and no empty topic is left behind
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
    try:
        await query.answer()
    except TelegramError as exc:  # "query is too old" (pressed long ago, or across a restart): the command still runs
        logger.info("could not answer a button press: %s", exc)
    try:
        if isinstance(query.message, Message):
            await query.message.edit_reply_markup(None)
    except TelegramError as exc:  # the message is gone or already without buttons
        logger.info("could not remove the buttons of a pressed message: %s", exc)
    await show(update, context, await state_of(context).commands.run(place_of(update), query.data or ""))


async def on_raw_update(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Bot API 10.3 `stopped_message_generation` (the draft's Stop button) interrupts the turn that draft shows."""
    stopped = update.api_kwargs.get("stopped_message_generation") if update.api_kwargs else None
    if not isinstance(stopped, dict):
        return
    state = state_of(context)
    delivery = state.drafts.get(stopped.get("draft_id") or 0)
    if delivery is not None and delivery.chat_id == (stopped.get("chat") or {}).get("id"):
        await state.manager.interrupt_turn(delivery)


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
    sender_of(context, update).text(f"⚠️ Internal error: {error}")  # a failure to send is the outbox's to log


# ---- wiring --------------------------------------------------------------------------------------


class TelegramFrontEnd:
    """The sessions' FrontEnd port over this Application: notices, Claude's own turns, files and prompts, each in
    its place. Handed to the manager when it is built; its turn views share the handlers' state (bot_data)."""

    def __init__(self, app: Application[Any, Any, Any, Any, Any, Any], outboxes: Outboxes, zone: tzinfo = UTC) -> None:
        self.app = app
        self.outboxes = outboxes
        self._files = file_sink(app.bot, outboxes)
        self.prompt_messages = PromptMessages(app.bot, outboxes)
        self._limits = LimitMessages(app.bot, outboxes, zone)
        self._menus: dict[int, tuple[tuple[str, str], ...]] = {}  # what each chat's menu was last set to
        self._menu_calls: set[asyncio.Task[None]] = set()

    async def notify(self, place: Place, text: str) -> None:
        await Sender(self.app.bot, self.outboxes(place.chat_id), place.thread_id).text(text)

    def show_claude_turn(self, delivery: Delivery) -> None:
        start_view(self.app.bot_data["state"], self.app.bot, delivery, None)

    async def send_file(self, outgoing: OutgoingFile) -> None:
        await self._files(outgoing)

    def show_prompt(self, prompt: Prompt) -> None:
        self.prompt_messages(prompt)

    async def show_limit(self, place: Place, hold: Hold, message_id: int | None) -> int | None:
        return await self._limits.show(place, hold, message_id)

    async def warn_limit(self, place: Place, limit: RateLimit) -> None:
        await self._limits.warn(place, limit)

    def show_commands(self, place: Place, session: str, commands: ClaudeCommands) -> None:
        """The chat's menu (setMyCommands, chat scope): the bot's commands and the session's. Telegram has no
        per-topic scope, so a forum's topics share the menu of whichever session spoke last; unchanged ones are
        not sent again."""
        if self.app.bot_data["state"].manager.active_session(place) != session:
            return
        entries = claude_menu.build(commands).commands
        if self._menus.get(place.chat_id) == entries:
            return
        self._menus[place.chat_id] = entries
        task = asyncio.get_running_loop().create_task(self._set_menu(place.chat_id, entries))
        self._menu_calls.add(task)
        task.add_done_callback(self._menu_calls.discard)

    async def _set_menu(self, chat_id: int, entries: tuple[tuple[str, str], ...]) -> None:
        try:
            await self.app.bot.set_my_commands(
                [BotCommand(name, text) for name, text in entries], scope=BotCommandScopeChat(chat_id)
            )
        except TelegramError as exc:  # the menu is a convenience: typed commands work without it
            logger.warning("chat %s: could not set the command menu: %s", chat_id, exc)
            if self._menus.get(chat_id) == entries:
                del self._menus[chat_id]


def build_application(
    settings: Settings, manager_for: Callable[[FrontEnd], SessionManager]
) -> Application[Any, Any, Any, Any, Any, Any]:
    """The PTB Application with every handler, and its session manager (`manager_for` gets the Telegram front end's
    port); no network until it is started."""
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
    outboxes = Outboxes()
    front_end = TelegramFrontEnd(app, outboxes, settings.time_zone)
    manager = manager_for(front_end)
    runner = Runner(manager, lambda delivery, heading: start_view(state, app.bot, delivery, None, heading=heading))
    path = settings.sessions_dir / STATE_DIR / STORE_NAME
    state = BotState(settings, manager, outboxes, Schedules(path, runner, settings.time_zone))
    state.front_end = front_end
    app.bot_data["state"] = state

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
    app.add_handler(MessageHandler(filters.Document.ALL | filters.PHOTO | filters.VOICE | filters.AUDIO, on_attachment))
    app.add_handler(TypeHandler(Update, on_raw_update), group=1)
    app.add_error_handler(on_error)
    return app


async def post_init(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Register commands, clean up after a crash, re-deliver queued messages, start the idle timer."""
    state: BotState = app.bot_data["state"]
    await app.bot.set_my_commands([BotCommand(name, text) for name, text in menu()])
    # A reload's hand-over first: the processes it adopts are no leftovers, their turns no cut-off messages.
    handover = take_handover(state.settings.sessions_dir)
    resumed, adopted = await resume(app, handover) if handover else ([], set())
    reaped = state.manager.reap_leftovers(keep=adopted)
    if reaped:
        logger.warning("stopped %d Claude process(es) left by a previous run: %s", len(reaped), reaped)
    for delivery, snapshot in resumed:
        start_view(state, app.bot, delivery, snapshot.get("reply_to"), snapshot)
    # A message saved before the restart is answered only where today's settings still let the bot talk.
    allowed = lambda place: place_allowed(place.chat_id, state.settings)  # noqa: E731
    for delivery in await state.manager.recover(allowed, announce=handover is None):
        seen = handover.queued if handover else {}
        if delivery.entry_id in seen:
            start_view(state, app.bot, delivery, seen[delivery.entry_id], True)
        else:
            start_view(state, app.bot, delivery, None)
    state.manager.start_scheduler()
    if state.schedules is not None:  # after the recovered messages: a run missed while down queues behind them
        await state.schedules.start()
    Reloader(app, PROJECT_DIR).install()
    if handover is not None:
        logger.info("reloaded: %d session(s) adopted, %d turn(s) going on", len(adopted), len(resumed))
    logger.info("bot started as @%s; %d allowed user(s)", app.bot.username, len(state.settings.allowed_user_ids))


async def post_stop(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Updates have stopped: end running turns and stop every Claude process while we can still send."""
    state: BotState = app.bot_data["state"]
    logger.info("shutting down: stopping Claude sessions")
    if state.schedules is not None:
        await state.schedules.shutdown()
    await state.manager.close_all()
    if state.views:
        await asyncio.wait(state.views, timeout=10)


async def post_shutdown(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    state: BotState = app.bot_data["state"]
    for task in list(state.views):
        task.cancel()
    await state.outboxes.close()
    logger.info("shutdown complete")
