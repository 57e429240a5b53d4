"""The chat's active session for a command, made the way a first message makes it: the default session.

One adapter over the sessions layer, so front ends and commands never repeat the steps.
"""

from __future__ import annotations

from claude_bridge.sessions.manager import DEFAULT_SESSION, SessionManager


def ensure_active(manager: SessionManager, chat_id: int) -> tuple[str, str | None]:
    """The chat's active session name, and a notice when the default session was just created or adopted."""
    # When SessionManager.ensure_active(chat_id) exists (sessions helper), this becomes:
    # return manager.ensure_active(chat_id)
    return _ensure_active_with_existing_api(manager, chat_id)


def _ensure_active_with_existing_api(manager: SessionManager, chat_id: int) -> tuple[str, str | None]:
    """The steps SessionManager.send takes for a chat without a session, from its public methods."""
    name = manager.active_session(chat_id)
    if name is not None:
        return name, None
    name = DEFAULT_SESSION
    if manager.exists(name):
        notice = f"Using session “{name}”. /sessions lists all, /new makes another."
    else:
        manager.create(name)
        notice = f"Created session “{name}” and made it active. /new makes another, /switch changes."
    manager.switch(chat_id, name)
    return name, notice
