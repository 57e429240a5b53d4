"""The door of the sessions component: `build_manager` (what `bot.py` starts with) and `SessionManager`.

Its parts live in `claude_bridge/sessions/`, named at the top of the façade (manager.py); code inside the package
imports them from there, not through this door.
"""

from claude_bridge.sessions.factory import build_manager
from claude_bridge.sessions.info import SessionInfo
from claude_bridge.sessions.manager import SessionManager
from claude_bridge.sessions.worker import Delivery, Notice

__all__ = ["Delivery", "Notice", "SessionInfo", "SessionManager", "build_manager"]
