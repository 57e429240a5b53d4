"""Every session has a home: the place (a private chat, a group, a forum topic) that created it.

A place sees and reaches only its own sessions; the first private chat keeps `default`, any other place gets a
session named after it. Claude's own turns (a finished background task) go where the work they report was started:
TaskOrigins remembers the place of the turn that started each background task. No Telegram here.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Iterable

from claude_bridge.sessions.place import Place

DEFAULT_SESSION = "default"
NAME_LENGTH = 28  # leaves room for a "-<n>" suffix within a session name's 32 characters
REMEMBERED_TASKS = 256


def is_private(place: Place) -> bool:
    """A person's own chat (Telegram: a positive id; the console: 0), not a topic of it, not a group."""
    return place.chat_id >= 0 and place.thread_id is None


def in_private_chat(place: Place) -> bool:
    """A person's own chat or one of its topics: nobody else reads it (bypassPermissions may be set there)."""
    return place.chat_id >= 0


CONSOLE_CHAT = 0  # the console's place: a terminal on the bot's machine, the owner's


def belongs(home: Place | None, place: Place, owner: int | None = None) -> bool:
    """Whether `place` may see and reach a session whose home is `home`.

    A session with no home yet (made before homes, never used) is reached only from the owner's private chat (or
    the console), which takes it; with no owner known, from any private chat.
    """
    if home is not None:
        return home == place
    return is_private(place) and (owner is None or place.chat_id in (owner, CONSOLE_CHAT))


def place_name(place: Place, title: str, taken: Callable[[str], bool], limit: int) -> str:
    """A free session name after the place: its title ("Bug #12: login" → "bug-12-login"), else its kind and id."""
    if place.thread_id is not None:
        fallback = f"topic-{place.thread_id}"
    else:
        fallback = f"{'chat' if place.chat_id >= 0 else 'group'}-{abs(place.chat_id)}"
    slug = "-".join(re.findall(r"[a-z0-9]+", title.lower()))[:NAME_LENGTH].strip("-") or fallback[:NAME_LENGTH]
    candidates = [slug] + [f"{slug[: NAME_LENGTH - len(str(n))]}-{n}" for n in range(2, limit + 2)]
    return next(name for name in candidates if name != DEFAULT_SESSION and not taken(name))


class TaskOrigins:
    """The place of the turn that started each background task (the newest few hundred, oldest forgotten)."""

    def __init__(self, size: int = REMEMBERED_TASKS) -> None:
        self._size = size
        self._places: OrderedDict[str, Place] = OrderedDict()

    def started(self, task_id: str, place: Place) -> None:
        self._places[task_id] = place
        self._places.move_to_end(task_id)
        while len(self._places) > self._size:
            self._places.popitem(last=False)

    def place_of(self, task_ids: Iterable[str]) -> Place | None:
        """Where the work a turn reports was started: the place of the first of its tasks that is known."""
        return next((self._places[t] for t in task_ids if t in self._places), None)
