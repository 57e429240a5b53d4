"""Reloading the bot in place: may the code on disk replace the running one, and the exec that replaces it.

It knows processes and Python, not sessions or Telegram: what crosses the exec is the hand-over's business.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from claude_bridge.runtime import SPAWNED

logger = logging.getLogger(__name__)

# Run in a fresh interpreter in the project folder: import the door and every module of the package (a module
# only imported later, at the first voice note say, must not fail after the exec either), then load the settings
# the way bot.py does (the process environment plus .env).
CHECK_SCRIPT = """
import importlib, pkgutil, sys
sys.path.insert(0, sys.argv[1])
import bot, claude_bridge
for module in pkgutil.walk_packages(claude_bridge.__path__, "claude_bridge."):
    importlib.import_module(module.name)
from claude_bridge.settings import load_settings
load_settings()
"""


@dataclass(frozen=True)
class ReloadCheck:
    """Whether the new code may replace the running one; `reason` says why not, in a line or two."""

    ok: bool
    reason: str = ""


async def check_new_code(project_dir: Path, timeout: float = 60.0, *, settings_dir: Path | None = None) -> ReloadCheck:
    """Import the code in `project_dir` and load its settings (`.env` in `settings_dir`, by default the project's)
    in a child process, within `timeout` seconds."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHECK_SCRIPT,
        str(project_dir),
        cwd=settings_dir or project_dir,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    SPAWNED.add(child.pid)  # asyncio waits for it: not an orphan to reap or claim
    try:
        _, stderr = await asyncio.wait_for(child.communicate(), timeout)
    except TimeoutError:
        child.kill()
        await child.wait()
        return ReloadCheck(False, f"the new code did not import within {timeout:g} s")
    finally:
        SPAWNED.discard(child.pid)
    if child.returncode == 0:
        return ReloadCheck(True)
    return ReloadCheck(False, _last_lines(stderr.decode("utf-8", "replace")))


def _last_lines(traceback: str) -> str:
    """The end of a traceback: where it failed and why (a SyntaxError's caret lines included)."""
    lines = [line for line in traceback.strip().splitlines() if line.strip()]
    return "\n".join(lines[-4:]) or "the check failed without saying why"


def reexec(argv: Sequence[str]) -> NoReturn:
    """Replace this process's image with `argv` (same pid, inheritable fds kept); never returns.

    SIGHUP stays blocked across the exec (the mask is inherited): one sent while the new image imports would kill
    it (default action), so it waits until the new image has its handler and unblocks it.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
    for stream in (sys.stdout, sys.stderr):
        stream.flush()  # exec discards Python's buffers
    for handler in logging.getLogger().handlers:
        handler.flush()
    os.execv(argv[0], list(argv))
