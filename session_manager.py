"""The door of the sessions component: `SessionManager` owns the named sessions and their live Claude processes.

Its parts live in `claude_bridge/sessions/`: the façade (manager.py) over the sessions on disk (store.py), the
chat routes, the live-process pool and the per-session queue. Front ends import it from here or from the package.
"""

from claude_bridge.sessions.factory import build_manager
from claude_bridge.sessions.info import SessionInfo
from claude_bridge.sessions.manager import SessionManager
from claude_bridge.sessions.worker import Delivery, Notice

__all__ = ["Delivery", "Notice", "SessionInfo", "SessionManager", "build_manager"]
