"""Files Claude sends (the bot's send_file tool) as Telegram photos or documents, through the chat's outbox.

It knows the Bot API's upload calls; which file and why is decided in the sessions layer's tools.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from telegram import Bot
from telegram.error import TelegramError

from claude_bridge.errors import BridgeError
from claude_bridge.sessions.tools import FileSink, OutgoingFile
from claude_bridge.telegram.outbox import Outbox

logger = logging.getLogger(__name__)


def file_sink(bot: Bot, outbox_for: Callable[[int], Outbox]) -> FileSink:
    """Deliver an OutgoingFile; returns once Telegram has it. A photo Telegram rejects goes again as a document."""

    async def deliver(outgoing: OutgoingFile) -> None:
        chat_id, path, caption = outgoing.chat_id, outgoing.path, outgoing.caption or None
        thread_id = outgoing.thread_id

        def document() -> Any:
            return bot.send_document(chat_id, path, caption=caption, filename=path.name, message_thread_id=thread_id)

        def photo() -> Any:
            return bot.send_photo(chat_id, path, caption=caption, message_thread_id=thread_id)

        future = outbox_for(chat_id).send(
            photo if outgoing.as_photo else document, fallback=document if outgoing.as_photo else None
        )
        try:
            await future
        except TelegramError as exc:
            logger.warning("chat %s: Telegram refused %s: %s", chat_id, path.name, exc)
            raise BridgeError(str(exc)) from exc

    return deliver
