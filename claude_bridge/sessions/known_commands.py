"""Claude's commands and skills as a session's last `init` listed them, kept in its state folder.

Kept so that a typed `/compact` after a bot restart is known as Claude's before the session's next `init`
(the CLI says nothing until it gets a message); a session that never started has none, and an unknown `/name`
there is the bot's "unknown command".
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

from claude_bridge.sessions.frontend import ClaudeCommands
from claude_bridge.sessions.store import write_json_atomic

logger = logging.getLogger(__name__)

COMMANDS_FILE = "claude_commands.json"


def load(state_dir: Path) -> ClaudeCommands | None:
    """The commands last saved for the session; None when none were saved or the file is unreadable."""
    try:
        raw = json.loads((state_dir / COMMANDS_FILE).read_text(encoding="utf-8"))
        return ClaudeCommands(
            *(tuple(str(name) for name in raw[key]) for key in ("slash_commands", "skills", "terminal"))
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("%s: unreadable (%s); Claude's commands are learnt again at the next start", state_dir, exc)
        return None


def save(state_dir: Path, commands: ClaudeCommands) -> None:
    """Keep the commands (atomic; no fsync: losing them to a power cut only costs one `init`)."""
    try:
        write_json_atomic(state_dir / COMMANDS_FILE, asdict(commands), durable=False)
    except OSError as exc:
        logger.error("%s: could not keep Claude's commands: %s", state_dir, exc)
