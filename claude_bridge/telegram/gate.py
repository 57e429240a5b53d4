"""Who may talk to the bot, and where: allowed users in their private chats, and listed groups only.

Runs before every other handler for every update; anything it does not let through stops there. Business
connections, channel posts and update kinds the bot does not use are never answered (and not subscribed to).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from telegram import Update
from telegram.constants import ChatType
from telegram.error import TelegramError
from telegram.ext import ApplicationHandlerStop, ContextTypes

from claude_bridge.settings import Settings

logger = logging.getLogger(__name__)

# What the bot subscribes to (getUpdates allowed_updates). Business messages, channel posts, reactions,
# member updates … are left out on purpose: none of them should ever become a prompt.
ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "stopped_message_generation"]
REFUSAL = "⛔ This is a private bot. Your Telegram user id is {uid}; the owner can add it to ALLOWED_USER_IDS."
GROUP_REFUSAL = "⛔ This bot answers in a group only when its owner lists the group: add {chat_id} to ALLOWED_CHAT_IDS."
REFUSE_EVERY = 60.0
MAX_REMEMBERED = 1024  # strangers' refusal times: bounded, so a flood of new ids cannot grow memory


class Refusals:
    """When each stranger (or unlisted chat) was last told no: at most once a minute, and bounded in size."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, size: int = MAX_REMEMBERED) -> None:
        self._clock = clock
        self._size = size
        self._last: OrderedDict[int, float] = OrderedDict()

    def due(self, key: int) -> bool:
        """True (and remembered) if `key` was not told within the last minute."""
        now = self._clock()
        last = self._last.pop(key, None)
        if last is not None and now - last < REFUSE_EVERY:
            self._last[key] = last
            return False
        self._last[key] = now
        while len(self._last) > self._size:
            self._last.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._last)


def verdict(update: Update, settings: Settings) -> str:
    """'ok', 'stranger', 'unlisted-chat' or 'ignore' for one update."""
    if update.api_kwargs and "stopped_message_generation" in update.api_kwargs:
        stopped = update.api_kwargs["stopped_message_generation"]
        chat_id = (stopped.get("chat") or {}).get("id") if isinstance(stopped, dict) else None
        return "ok" if chat_id in settings.allowed_user_ids else "ignore"  # a private chat's id is its user's id
    message = update.message or update.edited_message
    query = update.callback_query
    if message is None and query is None:
        return "ignore"  # channel posts, business messages, anything we did not subscribe to
    if message is not None and (message.business_connection_id or message.sender_business_bot):
        return "ignore"  # the owner writing to a customer through Telegram Business is not a prompt
    user = update.effective_user
    chat = update.effective_chat
    if user is None or chat is None or user.is_bot:
        return "ignore"
    if user.id not in settings.allowed_user_ids:
        return "stranger"
    if chat.type == ChatType.PRIVATE:
        return "ok" if chat.id == user.id else "ignore"
    if chat.type in (ChatType.GROUP, ChatType.SUPERGROUP):
        return "ok" if chat.id in settings.allowed_chat_ids else "unlisted-chat"
    return "ignore"


def place_allowed(chat_id: int, settings: Settings) -> bool:
    """Whether the gate lets this chat in today: an allowed user's private chat (its id is theirs), a listed group."""
    return chat_id in settings.allowed_user_ids or chat_id in settings.allowed_chat_ids


def make_gate(settings: Settings, tell: Callable[[int, str], Any]) -> Callable[..., Any]:
    """The gate handler: lets allowed updates through, refuses the rest (politely, at most once a minute)."""
    refusals = Refusals()

    async def gate(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Stop every update that is not from an allowed user in an allowed chat."""
        outcome = verdict(update, settings)
        if outcome == "ok":
            return
        user, chat = update.effective_user, update.effective_chat
        if outcome == "stranger" and user is not None:
            logger.warning("refused update from user id %s (@%s)", user.id, user.username or "-")
            if refusals.due(user.id):
                if update.callback_query is not None:
                    with contextlib.suppress(TelegramError):
                        await update.callback_query.answer("Not allowed.")
                if chat is not None and chat.type == ChatType.PRIVATE:
                    tell(chat.id, REFUSAL.format(uid=user.id))
        elif outcome == "unlisted-chat" and chat is not None:
            logger.warning("refused update in chat %s, which is not in ALLOWED_CHAT_IDS", chat.id)
            if refusals.due(chat.id):
                tell(chat.id, GROUP_REFUSAL.format(chat_id=chat.id))
        else:
            logger.debug("ignored an update of a kind the bot does not answer")
        raise ApplicationHandlerStop

    return gate
