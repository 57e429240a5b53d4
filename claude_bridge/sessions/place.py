"""Where in a chat app a conversation happens: a chat, and in a forum (or a private chat with topics) one topic.

`thread_id=None` is the chat itself (a forum's General topic), which is how every chat worked before topics.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Place:
    """A chat, or one topic of it; `key` is how chats.json names it ("<chat>" or "<chat>:<thread>")."""

    chat_id: int
    thread_id: int | None = None

    @property
    def key(self) -> str:
        return str(self.chat_id) if self.thread_id is None else f"{self.chat_id}:{self.thread_id}"

    @property
    def where(self) -> Where:
        """The plain chat id when there is no topic (what code from before topics expects), else the place."""
        return self.chat_id if self.thread_id is None else self

    @classmethod
    def of(cls, where: Where) -> Place:
        """A bare chat id is that chat's own place (no topic)."""
        return where if isinstance(where, Place) else cls(where)


@dataclass(frozen=True)
class Author:
    """Who typed something (a group has several people): the chat app's user id and the name to show for them."""

    user_id: int
    name: str


Where = int | Place  # what callers pass: a chat id means the chat itself, as before topics
