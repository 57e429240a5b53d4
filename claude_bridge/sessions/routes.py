"""Which session each chat (or forum topic) talks to: chats.json, a map of place → session name that survives
restarts; keys are "<chat>" or, for a topic, "<chat>:<thread>".

It knows names only (and how a forum topic's title becomes one); whether a session exists is asked of the caller.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from pathlib import Path

from claude_bridge.sessions.place import Place, Where
from claude_bridge.sessions.store import NAME_RE, write_json_atomic

logger = logging.getLogger(__name__)
_CHAT = re.compile(r"-?[0-9]{1,20}(:[0-9]{1,20})?")


class ChatRoutes:
    """Each chat's (and each topic's) active session, written atomically on every change."""

    def __init__(self, path: Path, exists: Callable[[str], bool]) -> None:
        self.path = path
        self._exists = exists
        self._routes = self._load()

    def _load(self) -> dict[str, str]:
        """The routes that can be read; anything else is logged and dropped (the bot starts regardless)."""
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (ValueError, UnicodeDecodeError, OSError) as exc:
            logger.error("%s is unreadable (%s); chats start without an active session", self.path, exc)
            return {}
        if not isinstance(raw, dict):
            logger.error("%s is not a JSON object; chats start without an active session", self.path)
            return {}
        routes: dict[str, str] = {}
        for chat, name in raw.items():
            if _CHAT.fullmatch(chat) and isinstance(name, str) and NAME_RE.fullmatch(name):
                routes[chat] = name
            else:
                logger.error("%s: dropped the unreadable route %r → %r", self.path, chat, name)
        return routes

    def get(self, where: Where) -> str | None:
        """The chat's (or topic's) active session, if it has one that still exists."""
        name = self._routes.get(Place.of(where).key)
        return name if name and self._exists(name) else None

    def set(self, where: Where, name: str) -> None:
        self._routes[Place.of(where).key] = name
        write_json_atomic(self.path, self._routes)

    def forget(self, name: str) -> None:
        """No chat has `name` active any more (it was deleted)."""
        self._routes = {chat: active for chat, active in self._routes.items() if active != name}
        write_json_atomic(self.path, self._routes)


def topic_name(topic: str, thread_id: int, taken: Callable[[str], bool], limit: int) -> str:
    """A free session name from a topic's title ("Bug #12: login" → "bug-12-login"), else from its id."""
    slug = "-".join(re.findall(r"[a-z0-9]+", topic.lower()))[:28].strip("-") or f"topic-{thread_id}"
    candidates = [slug] + [f"{slug[: 28 - len(str(n))]}-{n}" for n in range(2, limit + 2)]
    return next(name for name in candidates if not taken(name))
