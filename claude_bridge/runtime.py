"""Process-wide plumbing shared by the front ends: logging that never shows the token, one instance per folder.

It knows the operating system and the logging module, nothing of sessions, Claude or Telegram.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sys
from pathlib import Path
from typing import IO

logger = logging.getLogger(__name__)


class RedactToken(logging.Filter):
    """Keeps the bot token out of every log line (it is part of every Bot API URL)."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secret:
            message = record.getMessage()
            if self.secret in message:
                record.msg = message.replace(self.secret, "<token>")
                record.args = None
        return True


def setup_logging(level: str, secret: str = "") -> None:
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactToken(secret))
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def take_instance_lock(sessions_dir: Path) -> IO[str] | None:
    """One bot per sessions directory: two pollers on one token fight (409 Conflict) and share processes."""
    sessions_dir.mkdir(parents=True, exist_ok=True)
    handle = open(sessions_dir / ".bot.lock", "a+")  # noqa: SIM115 - held open for the life of the process
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "unknown"
        logger.error(
            "another instance of the bot (pid %s) is already running with sessions in %s; stop it first "
            "(two copies polling one token fail with 409 Conflict)",
            owner,
            sessions_dir,
        )
        handle.close()
        return None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle
