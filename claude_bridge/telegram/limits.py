"""The usage limit in a chat: the one limit message per place (sent, then edited as the hold changes) and the quiet
warning. The words come from the command layer (commands/limit_wording.py); this only sends and edits them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import tzinfo

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Message

from claude_bridge.commands.limit_wording import limit_message, warning_text
from claude_bridge.protocol.limits import RateLimit
from claude_bridge.sessions.limits import Hold
from claude_bridge.sessions.place import Place
from claude_bridge.telegram.outbox import OpKind, Outbox


class LimitMessages:
    """Sends a place's limit message, edits it in place later; warnings go without a notification sound."""

    def __init__(self, bot: Bot, outbox_of: Callable[[int], Outbox], zone: tzinfo) -> None:
        self.bot = bot
        self.outbox_of = outbox_of
        self.zone = zone

    async def show(self, place: Place, hold: Hold, message_id: int | None) -> int | None:
        reply = limit_message(hold, time.time(), self.zone)
        buttons = [InlineKeyboardButton(choice.label, callback_data=choice.command) for choice in reply.choices]
        markup = InlineKeyboardMarkup([buttons]) if buttons else None
        outbox = self.outbox_of(place.chat_id)
        if message_id is not None:
            await outbox.send(
                lambda: self.bot.edit_message_text(
                    reply.text, chat_id=place.chat_id, message_id=message_id, reply_markup=markup
                ),
                kind=OpKind.EDIT,
            )
            return message_id
        sent = await outbox.send(
            lambda: self.bot.send_message(
                place.chat_id, reply.text, reply_markup=markup, message_thread_id=place.thread_id
            )
        )
        return sent.message_id if isinstance(sent, Message) else None

    async def warn(self, place: Place, limit: RateLimit) -> None:
        text = warning_text(limit, time.time(), self.zone)
        await self.outbox_of(place.chat_id).send(
            lambda: self.bot.send_message(
                place.chat_id, text, message_thread_id=place.thread_id, disable_notification=True
            )
        )
