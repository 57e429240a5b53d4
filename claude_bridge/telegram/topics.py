"""Forum topics: which topic a message is in, the topic's name, and opening a topic for /new (createForumTopic).

A forum supergroup and a private chat with topics (Bot API 9.3+) work alike; outside a topic the place is the chat.
"""

from __future__ import annotations

from telegram import Bot, Chat, Update

from claude_bridge.commands.core import parse
from claude_bridge.sessions.place import Author, Place

NEW_TOPIC_TITLE = "Claude"  # a /new without a name; Telegram needs a title before the session has its name


def place_of(update: Update) -> Place:
    """The update's chat, and its forum topic when the message is in one (a private chat's topic too)."""
    chat, message = update.effective_chat, update.effective_message
    assert chat is not None
    if message is not None and message.is_topic_message and message.message_thread_id is not None:
        return Place(chat.id, message.message_thread_id)
    return Place(chat.id)


def author_of(update: Update) -> Author | None:
    """Who sent the update, named as Telegram shows them (their full name, else @username)."""
    user = update.effective_user
    if user is None:
        return None
    return Author(user.id, user.full_name or (f"@{user.username}" if user.username else str(user.id)))


def topic_title(update: Update) -> str:
    """The topic's name, from its opening service message, which Telegram attaches as the reply ("" if none)."""
    message = update.effective_message
    opening = message.reply_to_message if message else None
    created = opening.forum_topic_created if opening else None
    return created.name if created else ""


def place_title(update: Update) -> str:
    """What a new session of the update's place is named after: the topic's name in a topic, else the group's
    title or the person's name (a private chat)."""
    if place_of(update).thread_id is not None:
        return topic_title(update)
    chat, user = update.effective_chat, update.effective_user
    if chat is not None and chat.title:
        return chat.title
    return (user.username or user.first_name) if user is not None else ""


def topics_allowed(update: Update, bot: Bot) -> bool:
    """A forum supergroup, or a private chat with a bot that has topics enabled (Bot API 9.4)."""
    chat = update.effective_chat
    if chat is None:
        return False
    return bool(chat.is_forum) or (chat.type == Chat.PRIVATE and bool(bot.bot.has_topics_enabled))


def topic_opened(line: str) -> str:
    """What the General topic is told after /new opened a topic for the new session."""
    _, args = parse(line)
    return f"🧵 Opened the topic “{args[0] if args else NEW_TOPIC_TITLE}” for the new session; write there to use it."


async def open_topic(bot: Bot, update: Update, line: str) -> Place | None:
    """For /new in the General topic where topics can be made: a new topic (named like the session) to bind it to.

    None when the command is something else or is already in a topic; TelegramError when Telegram refuses."""
    name, args = parse(line)
    place = place_of(update)
    if name != "new" or place.thread_id is not None or not topics_allowed(update, bot):
        return None
    topic = await bot.create_forum_topic(place.chat_id, args[0] if args else NEW_TOPIC_TITLE)
    return Place(place.chat_id, topic.message_thread_id)
