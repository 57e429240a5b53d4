"""Claude's questions in the chat: one message per prompt with its buttons, edited as the prompt changes.

The words and choices come from the command layer (commands/asks.py); a press runs its `/answer` command and is
answered with a toast ("expired" when the prompt no longer waits). A plan is shown first as rendered Markdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Message, MessageEntity, Update
from telegram.error import TelegramError
from telegram.ext import CallbackQueryHandler, ContextTypes

from claude_bridge.commands.asks import prompt_reply, tool_choices, tool_prompt
from claude_bridge.commands.core import Commands
from claude_bridge.commands.preview import ToolPreview
from claude_bridge.commands.reply import Choice
from claude_bridge.sessions.prompts import Prompt, PromptKind
from claude_bridge.telegram.outbox import OpKind, Outbox
from claude_bridge.telegram.render import Chunk, utf16_len, utf16_slice
from claude_bridge.telegram.streaming import Sender
from claude_bridge.telegram.topics import place_of

logger = logging.getLogger(__name__)

ANSWER_PATTERN = r"^/answer "
SHORT_LABEL = 14
MESSAGE_LIMIT = 4096
LINE_LIMIT = 300  # a heading or note longer than this (a huge path, a long description) is cut
CUT_MARK = "… (cut: the whole is attached)"


def _clean(text: str) -> str:
    """Lone surrogates (possible in the CLI's JSON) would make Telegram refuse the whole message."""
    return text.encode("utf-8", "replace").decode("utf-8")


def _short(line: str) -> str:
    return line if utf16_len(line) <= LINE_LIMIT else utf16_slice(line, 0, LINE_LIMIT - 1) + "…"


def prompt_chunk(intro: str, preview: ToolPreview, footer: str, limit: int = MESSAGE_LIMIT) -> tuple[Chunk, bool]:
    """A tool approval as one message: its block as a `pre` entity, cut to fit; True when the block was cut.

    Entities instead of parse_mode, so the content (code fences, `<`, backslashes) cannot break the markup; offsets
    and the limit are counted in UTF-16 units, as Telegram counts them."""
    above = "\n".join(_short(_clean(line)) for line in (intro, preview.heading) if line) + "\n"
    below = "\n".join(_short(_clean(line)) for line in (*preview.notes, footer) if line)
    block = _clean(preview.block)
    if not block.strip():
        return Chunk(utf16_slice(above + below, 0, limit)), False
    below = "\n" + below if below else ""
    room = limit - utf16_len(above) - utf16_len(below)
    cut = preview.cut
    if utf16_len(block) > room:
        cut = True
        keep = max(0, room - utf16_len(CUT_MARK) - 1)
        head = utf16_slice(block, 0, keep)
        block = (head[: head.rfind("\n")] if "\n" in head else head) + "\n" + CUT_MARK
        if utf16_len(above) + utf16_len(block) + utf16_len(below) > limit:  # even the mark does not fit
            return Chunk(utf16_slice(above + below, 0, limit)), True
    entity = MessageEntity(MessageEntity.PRE, utf16_len(above), utf16_len(block), language=preview.language or None)
    return Chunk(above + block + below, (entity,)), cut


def prompt_keyboard(choices: tuple[Choice, ...]) -> InlineKeyboardMarkup | None:
    """Short labels three to a row, long ones a row each."""
    if not choices:
        return None
    per_row = 3 if all(len(choice.label) <= SHORT_LABEL for choice in choices) else 1
    buttons = [InlineKeyboardButton(choice.label, callback_data=choice.command) for choice in choices]
    return InlineKeyboardMarkup([buttons[i : i + per_row] for i in range(0, len(buttons), per_row)])


class PromptMessages:
    """The PromptBoard's listener: sends a prompt's message when it opens and edits it on every change."""

    def __init__(self, bot: Bot, outbox_for: Callable[[int], Outbox]) -> None:
        self.bot = bot
        self.outbox_for = outbox_for
        self._sent: dict[str, asyncio.Future[Any]] = {}
        self._reminded: set[str] = set()
        self._previews: dict[str, ToolPreview] = {}  # made once: after an Allow the file no longer matches

    def __call__(self, prompt: Prompt) -> None:
        chunk, choices, whole = self._render(prompt)
        markup = prompt_keyboard(choices) if prompt.waiting else None
        sender = Sender(self.bot, self.outbox_for(prompt.chat_id), prompt.thread_id)
        sent = self._sent.get(prompt.id)
        if sent is None:
            if prompt.kind == PromptKind.PLAN:
                sender.answer(prompt.plan)  # rendered Markdown; a long plan goes as a document
            self._sent[prompt.id] = sender.chunk(chunk, markup=markup)
            if whole is not None:
                sender.document(*whole, caption="The whole change, as a diff.")
            return
        if prompt.reminded and prompt.id not in self._reminded:
            self._reminded.add(prompt.id)
            self._remind(sender.outbox, sent)
        self._edit(sender.outbox, sent, chunk, markup)
        if not prompt.waiting:
            self._sent.pop(prompt.id, None)
            self._reminded.discard(prompt.id)
            self._previews.pop(prompt.id, None)

    def _render(self, prompt: Prompt) -> tuple[Chunk, tuple[Choice, ...], tuple[str, bytes] | None]:
        """The message, its choices, and (name, bytes) of the whole block when the message shows it cut."""
        if prompt.kind != PromptKind.TOOL:
            reply = prompt_reply(prompt)
            return Chunk(utf16_slice(_clean(reply.text), 0, MESSAGE_LIMIT)), reply.choices, None
        intro, preview, footer = tool_prompt(prompt, self._previews.get(prompt.id))
        self._previews.setdefault(prompt.id, preview)
        chunk, cut = prompt_chunk(intro, preview, footer)
        whole = (preview.full_name or "preview.txt", (preview.full or preview.block).encode("utf-8")) if cut else None
        return chunk, tool_choices(prompt), whole

    def sent(self, prompt_id: str) -> asyncio.Future[Any] | None:
        """The message a waiting prompt is shown in (a reload hands it over)."""
        return self._sent.get(prompt_id)

    def reattach(self, prompt_id: str, message: Message) -> None:
        """After a reload: the prompt `prompt_id` is shown in `message` (its changes edit it, nothing new is sent)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(message)
        self._sent[prompt_id] = future

    def _edit(
        self, outbox: Outbox, sent: asyncio.Future[Any], chunk: Chunk, markup: InlineKeyboardMarkup | None
    ) -> None:
        async def edit() -> Any:
            message = await sent
            if not isinstance(message, Message):
                return None
            return await self.bot.edit_message_text(
                chunk.text,
                message.chat_id,
                message.message_id,
                entities=list(chunk.entities) or None,
                parse_mode=None,
                reply_markup=markup,
            )

        outbox.send(edit, kind=OpKind.EDIT)

    def _remind(self, outbox: Outbox, sent: asyncio.Future[Any]) -> None:
        async def remind() -> Any:
            message = await sent
            if not isinstance(message, Message):
                return None
            return await self.bot.send_message(
                message.chat_id,
                "⏰ Claude is still waiting for your answer.",
                reply_to_message_id=message.message_id,
                message_thread_id=message.message_thread_id,
            )

        outbox.send(remind)


def prompt_button_handler(commands: Callable[[], Commands]) -> CallbackQueryHandler[Any, Any]:
    """Presses of prompt buttons (`/answer <id> <action>`); register before the generic button handler."""

    async def on_press(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A prompt's button: the prompt's message shows the decision; a stale press only gets a toast."""
        query = update.callback_query
        chat = update.effective_chat
        if query is None or chat is None:
            return
        reply = await commands().run(place_of(update), query.data or "")  # answered only in the prompt's place
        with contextlib.suppress(TelegramError):
            await query.answer(None if reply.text == "✓" else reply.text[:200])

    return CallbackQueryHandler(on_press, pattern=ANSWER_PATTERN)
